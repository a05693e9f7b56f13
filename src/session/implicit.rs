//! [`ImplicitRefresh`]: a browser session's access cookie renewed as it
//! nears its end (AuthX's `implicit_refresh`), on the response to a request
//! a guard admitted with that cookie.
//!
//! Where AuthX's middleware stumbles, this one does not:
//! - it renews only what a guard of the same `AuthX` admitted (every check,
//!   the revocation store's included), never a token it decoded itself;
//! - after the service answered, the store is asked again: a session logged
//!   out meanwhile (by that very request, or by another tab) is never
//!   renewed, and the new token belongs to the same session (`fam`), so a
//!   logout that lands after the renewal ends it too;
//! - a response that sets or deletes the access cookie itself (a login, a
//!   logout) is left as it is;
//! - an absolute session lifetime ends renewals, counted from `auth_time`
//!   (by default the refresh token's lifetime: a cookie used every few
//!   minutes is not renewed forever, and a stolen one ages out);
//! - the include filters include, and exclude wins over include.
//!
//! Two tabs renewing at the same moment each get a new token of the same
//! session; neither is refused (access tokens are not rotated), and the old
//! cookie keeps working until its own `exp`, at most the renewal window.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::SET_COOKIE;
use http::{HeaderMap, Method, Request, Response};
use pin_project_lite::pin_project;
use serde_json::{Map, Value};
use tower_layer::Layer;
use tower_service::Service;

use super::same_session;
use crate::authx::AuthX;
use crate::claims::{Claims, NumericDate, TokenType};
use crate::cookie::cookie_value;
use crate::pipeline::CookieSession;

/// Renews the access cookie of a browser session nearing its end: put it
/// inside a guard (`RequireAuth`, `RequireFresh`, `OptionalAuth`, ...) on the
/// routes you choose. A request the guard admitted with the access cookie,
/// whose token expires within [`within`](Self::within) (default 10 minutes,
/// as AuthX), gets on its response a new access cookie and CSRF cookie: not
/// fresh, same session, same scopes and own claims, same bindings.
///
/// Renewals end [`max_session`](Self::max_session) after the login's
/// `auth_time` (by default the refresh token's lifetime): write it at login
/// (`token_pair(sub).auth_time(NumericDate::now())`). A token without
/// `auth_time` is never renewed, as its session's age is unknown.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_authx::layer::ImplicitRefreshLayer;
/// use tower_authx::{AuthX, AuthXConfig, RequireAuthLayer, TokenLocation};
///
/// let authx = AuthX::new(
///     AuthXConfig::from_secret([7u8; 32])?.token_location([TokenLocation::Cookies]),
/// )?;
/// let service = ServiceBuilder::new()
///     .layer(RequireAuthLayer::new(authx.clone()))
///     .layer(
///         ImplicitRefreshLayer::new(authx)
///             .within(Duration::from_secs(300))
///             .max_session(Duration::from_secs(12 * 3600))
///             .exclude_paths(["/logout"]),
///     )
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ImplicitRefreshLayer {
    authx: AuthX,
    rules: Arc<Rules>,
}

#[derive(Clone, Debug)]
struct Rules {
    within: Duration,
    max_session: Duration,
    include_paths: Vec<String>,
    exclude_paths: Vec<String>,
    include_methods: Vec<Method>,
    exclude_methods: Vec<Method>,
}

impl fmt::Debug for ImplicitRefreshLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImplicitRefreshLayer")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

impl ImplicitRefreshLayer {
    /// Renews within 10 minutes of expiry, on every route and method it
    /// wraps, for at most the refresh token's lifetime after the login.
    pub fn new(authx: AuthX) -> Self {
        let max_session = authx.issuing().refresh_lifetime;
        ImplicitRefreshLayer {
            authx,
            rules: Arc::new(Rules {
                within: Duration::from_secs(600),
                max_session,
                include_paths: Vec::new(),
                exclude_paths: Vec::new(),
                include_methods: Vec::new(),
                exclude_methods: Vec::new(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Rules)) -> Self {
        change(Arc::make_mut(&mut self.rules));
        self
    }

    /// How close to its expiry a token is renewed (AuthX's
    /// `JWT_IMPLICIT_REFRESH_DELTATIME`; default 10 minutes).
    pub fn within(self, window: Duration) -> Self {
        self.with(|r| r.within = window)
    }

    /// No renewal past this long after the user logged in (the token's
    /// `auth_time`), and no renewed token outlives it: the session then ends
    /// as its token expires (default: the refresh token's lifetime). A token
    /// without `auth_time` is not renewed.
    pub fn max_session(self, lifetime: Duration) -> Self {
        self.with(|r| r.max_session = lifetime)
    }

    /// Only these paths (exact) are renewed on (default: all). AuthX's
    /// `JWT_IMPLICIT_REFRESH_ROUTE_INCLUDE`, which there does not restrict.
    pub fn include_paths<I: IntoIterator<Item = S>, S: Into<String>>(self, paths: I) -> Self {
        self.with(|r| r.include_paths.extend(paths.into_iter().map(Into::into)))
    }

    /// Never on these paths (exact), whatever the includes say.
    pub fn exclude_paths<I: IntoIterator<Item = S>, S: Into<String>>(self, paths: I) -> Self {
        self.with(|r| r.exclude_paths.extend(paths.into_iter().map(Into::into)))
    }

    /// Only these methods are renewed on (default: all). AuthX's
    /// `JWT_IMPLICIT_REFRESH_METHOD_INCLUDE`, which there excludes them.
    pub fn include_methods<I: IntoIterator<Item = Method>>(self, methods: I) -> Self {
        self.with(|r| r.include_methods.extend(methods))
    }

    /// Never on these methods, whatever the includes say.
    pub fn exclude_methods<I: IntoIterator<Item = Method>>(self, methods: I) -> Self {
        self.with(|r| r.exclude_methods.extend(methods))
    }
}

impl Rules {
    fn applies_to<B>(&self, req: &Request<B>) -> bool {
        let path = req.uri().path();
        let method = req.method();
        !self.exclude_paths.iter().any(|p| p == path)
            && !self.exclude_methods.contains(method)
            && (self.include_paths.is_empty() || self.include_paths.iter().any(|p| p == path))
            && (self.include_methods.is_empty() || self.include_methods.contains(method))
    }
}

impl<S> Layer<S> for ImplicitRefreshLayer {
    type Service = ImplicitRefresh<S>;

    fn layer(&self, inner: S) -> ImplicitRefresh<S> {
        ImplicitRefresh {
            inner,
            authx: self.authx.clone(),
            rules: self.rules.clone(),
        }
    }
}

/// The service [`ImplicitRefreshLayer`] makes.
#[derive(Clone)]
pub struct ImplicitRefresh<S> {
    inner: S,
    authx: AuthX,
    rules: Arc<Rules>,
}

impl<S: fmt::Debug> fmt::Debug for ImplicitRefresh<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImplicitRefresh")
            .field("inner", &self.inner)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// A session to renew once the service answered: the verified claims of
/// its access cookie.
struct Renewal {
    authx: AuthX,
    claims: Claims<Map<String, Value>>,
    /// The renewed token's lifetime, when the session's end is nearer.
    lifetime: Option<Duration>,
}

impl<S> ImplicitRefresh<S> {
    /// What to renew for `req`, if anything: an access cookie a guard of
    /// this `AuthX` admitted, near its end, of a session still within its
    /// lifetime.
    fn renewal<B>(&self, req: &Request<B>) -> Option<Renewal> {
        let pipeline = self.authx.pipeline();
        let admitted = req.extensions().get::<CookieSession>()?;
        let now = NumericDate::now();
        if admitted.pipeline != pipeline.id
            || admitted.exp.as_secs_f64() - now.as_secs_f64() > self.rules.within.as_secs_f64()
            || !self.rules.applies_to(req)
        {
            return None;
        }
        // Read again with every claim kept, to carry them over (a second
        // signature check, only for the few requests that renew).
        let (name, _) = pipeline.sources.cookies.names(TokenType::Access);
        let token = cookie_value(req.headers(), name).ok()??;
        let token = std::str::from_utf8(token).ok()?;
        // The guard checked it against the request (binding included).
        let claims: Claims<Map<String, Value>> = pipeline.issued_claims(token).ok()?;
        // The very token the guard admitted, of a session (a token of no
        // session could not be logged out with its successor).
        if claims.jti != admitted.jti || claims.fam.is_none() {
            return None;
        }
        // The session's end: its login's time plus the longest session.
        let started = claims.auth_time?.as_secs_f64();
        let left = started + self.rules.max_session.as_secs_f64() - now.as_secs_f64();
        if left <= 0.0 {
            return None;
        }
        let lifetime = Some(
            Duration::try_from_secs_f64(left)
                .unwrap_or(Duration::MAX)
                .min(self.authx.issuing().access_lifetime),
        );
        Some(Renewal {
            authx: self.authx.clone(),
            claims,
            lifetime,
        })
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ImplicitRefresh<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ImplicitRefreshFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let renewal = self.renewal(&req);
        ImplicitRefreshFuture {
            state: State::Calling {
                future: self.inner.call(req),
                renewal,
            },
        }
    }
}

/// The renewal under way: the new cookies' `Set-Cookie` lines, or none.
type Renewing = Pin<Box<dyn Future<Output = Option<HeaderMap>> + Send>>;

pin_project! {
    /// Response future of [`ImplicitRefresh`]: the service's answer, then,
    /// for a session to renew, the store's word and the new cookies.
    pub struct ImplicitRefreshFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Calling { #[pin] future: F, renewal: Option<Renewal> },
        Renewing { renewing: Renewing, response: Option<Response<B>> },
    }
}

impl<F, B, E> Future for ImplicitRefreshFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Calling { future, renewal } => {
                    let response = ready!(future.poll(cx))?;
                    let Some(renewal) = renewal.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    if sets_access_cookie(&renewal.authx, response.headers()) {
                        return Poll::Ready(Ok(response));
                    }
                    State::Renewing {
                        renewing: Box::pin(renewal.renew()),
                        response: Some(response),
                    }
                }
                StateProj::Renewing { renewing, response } => {
                    let cookies = ready!(renewing.as_mut().poll(cx));
                    let Some(mut response) = response.take() else {
                        unreachable!("a renewal is finished once");
                    };
                    for line in cookies.iter().flat_map(|c| c.get_all(SET_COOKIE)) {
                        response.headers_mut().append(SET_COOKIE, line.clone());
                    }
                    return Poll::Ready(Ok(response));
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

impl Renewal {
    /// The new access cookie and its CSRF cookie, once the store still
    /// vouches for the session.
    async fn renew(self) -> Option<HeaderMap> {
        self.authx.check_revocation(&self.claims).await.ok()?;
        let family = self.claims.fam.as_deref()?;
        let mut builder = same_session(
            self.authx.access_token(self.claims.sub.clone()),
            &self.claims,
            family,
        )
        .fresh(false);
        if let Some(at) = self.claims.auth_time {
            builder = builder.auth_time(at);
        }
        if let Some(lifetime) = self.lifetime {
            builder = builder.lifetime(lifetime);
        }
        let token = match builder.issue() {
            Ok(token) => token,
            Err(error) => {
                tracing::error!(%error, "tower-authx: cannot issue the renewed access token");
                return None;
            }
        };
        // Written as a login's cookies are.
        let mut cookies = HeaderMap::new();
        self.authx.set_access_cookies(&token, &mut cookies).ok()?;
        tracing::debug!(sub = %self.claims.sub, "tower-authx: access cookie renewed");
        Some(cookies)
    }
}

/// Whether the service's response sets (or deletes) the access cookie itself.
fn sets_access_cookie(authx: &AuthX, headers: &HeaderMap) -> bool {
    let (name, _) = authx.pipeline().sources.cookies.names(TokenType::Access);
    headers.get_all(SET_COOKIE).iter().any(|line| {
        line.as_bytes()
            .strip_prefix(name.as_bytes())
            .is_some_and(|rest| rest.first() == Some(&b'='))
    })
}

impl<F, B> fmt::Debug for ImplicitRefreshFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImplicitRefreshFuture")
            .finish_non_exhaustive()
    }
}
