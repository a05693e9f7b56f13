//! [`LiveCredential`]: the credential of an open connection (a WebSocket),
//! for its handler: when it ends, and its renewal in band.

use std::future::poll_fn;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use serde::Deserialize;

use crate::authx::AuthX;
use crate::claims::{Claims, NumericDate};
use crate::error::{AuthError, InvalidToken};
use crate::mtls::ClientCertificate;
use crate::pipeline::ClaimsExtra;
use crate::request::RequestHead;
use crate::source::TokenLocation;
use crate::stream::{Credential, Ended, Required, Slot};

/// The credential a guarded connection was opened with, in the request's
/// extensions behind [`EndWithCredentialLayer`](super::EndWithCredentialLayer)
/// (axum: `Extension<LiveCredential>`). A WebSocket handler closes the socket
/// with [`Ended::close_code`] (1008) and [`Ended::reason`] when
/// [`ended`](Self::ended) resolves: at the token's expiry, on its revocation,
/// or after a refused renewal. Clones watch the same credential.
///
/// **Renewal in band**: before the end, the client may send a text message
/// `{"type":"authx.renew","access_token":"<token>"}` (with `"dpop":"<proof>"`
/// for a DPoP-bound token, a proof for the upgrade request's method and
/// URL); [`Renewal::parse`] tells it from the application's own messages and
/// [`renew`](Self::renew) checks it exactly as a new request would be (every
/// stage, every guard's requirement, the stores), and requires the same
/// issuer, subject and session. A renewal that passes moves the end to the
/// new token's; one that fails ends the connection.
///
/// ```no_run
/// # use tower_authx::layer::{LiveCredential, Renewal};
/// # async fn socket_loop(live: LiveCredential) {
/// loop {
///     let message: String = // tokio::select! on the socket and on `live.ended()`
/// #       String::new();
///     if let Some(renewal) = Renewal::parse(&message) {
///         if live.renew::<tower_authx::NoExtra>(&renewal).await.is_err() {
///             // `live.ended()` resolves now: close with 1008.
///         }
///         continue;
///     }
///     // ... the application's own message
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct LiveCredential {
    slot: Arc<Slot>,
    opened: Arc<Opened>,
}

/// The upgrade request as a renewal replays it.
struct Opened {
    authx: AuthX,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    extensions: http::Extensions,
    required: Vec<crate::policy::Requirement>,
    /// When a renewal was last checked.
    last_renewal: std::sync::Mutex<Option<std::time::Instant>>,
}

/// At most one renewal is checked per connection in this long.
const RENEWAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl std::fmt::Debug for LiveCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCredential")
            .field("expires", &self.expires())
            .field("ended", &self.has_ended())
            .finish_non_exhaustive()
    }
}

/// The headers a renewal's checks read besides the token's own: the host,
/// and the client certificate a trusted proxy forwards (RFC 9440); the rest
/// is not kept (memory per open connection stays small).
fn kept_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [&http::header::HOST, &crate::mtls::CLIENT_CERT] {
        for value in headers.get_all(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

impl LiveCredential {
    pub(super) fn new<B>(slot: Arc<Slot>, authx: &AuthX, request: &Request<B>) -> Self {
        // What the pipeline reads of a request besides its head: the
        // connection's peer and certificate.
        let mut extensions = http::Extensions::new();
        if let Some(peer) = request.extensions().get::<std::net::SocketAddr>() {
            extensions.insert(*peer);
        }
        if let Some(certificate) = request.extensions().get::<ClientCertificate>() {
            extensions.insert(certificate.clone());
        }
        LiveCredential {
            slot,
            opened: Arc::new(Opened {
                authx: authx.clone(),
                method: request.method().clone(),
                uri: request.uri().clone(),
                headers: kept_headers(request.headers()),
                extensions,
                required: request
                    .extensions()
                    .get::<Required>()
                    .map(|required| required.0.clone())
                    .unwrap_or_default(),
                last_renewal: Default::default(),
            }),
        }
    }

    /// Resolves when the credential ends, with why.
    pub async fn ended(&self) -> Ended {
        poll_fn(|cx| match self.slot.ended(cx.waker()) {
            Some(why) => std::task::Poll::Ready(why),
            None => std::task::Poll::Pending,
        })
        .await
    }

    /// Why the credential ended, if it has.
    pub fn has_ended(&self) -> Option<Ended> {
        self.slot.has_ended()
    }

    /// When the credential now in force expires (its `exp`).
    pub fn expires(&self) -> NumericDate {
        self.slot.credential().exp
    }

    /// Checks `renewal`'s token as a new request on this connection would be
    /// (every stage of the pipeline and every guard's requirement), and that
    /// it is of the same issuer, subject and session; then the connection
    /// lives until the new token's end. A refusal ends the connection
    /// ([`Ended::RenewalRefused`]) and says why. One renewal a second is
    /// checked; another within the second is answered
    /// [`AuthError::InvalidRequest`] unchecked, and the connection goes on
    /// (a flood of renewals costs a check a second, not one a message).
    pub async fn renew<E: ClaimsExtra>(&self, renewal: &Renewal) -> Result<Claims<E>, AuthError> {
        if let Some(ended) = self.has_ended() {
            return Err(match ended {
                Ended::Revoked => AuthError::Revoked,
                _ => AuthError::InvalidToken(InvalidToken::Expired),
            });
        }
        {
            let mut last = self
                .opened
                .last_renewal
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < RENEWAL_INTERVAL) {
                // Not checked, so not refused: the connection goes on.
                return Err(AuthError::InvalidRequest(
                    "at most one renewal a second on a connection",
                ));
            }
            *last = Some(std::time::Instant::now());
        }
        let checked = self.check::<E>(renewal).await;
        match &checked {
            Ok(claims) => self.slot.renew(Credential::of(claims)),
            Err(_) => self.slot.end(Ended::RenewalRefused),
        }
        checked
    }

    async fn check<E: ClaimsExtra>(&self, renewal: &Renewal) -> Result<Claims<E>, AuthError> {
        let opened = &*self.opened;
        let pipeline = opened.authx.pipeline();
        let (headers, uri) = replayed(opened, renewal)?;
        let head = RequestHead {
            method: &opened.method,
            uri: &uri,
            headers: &headers,
            extensions: Some(&opened.extensions),
        };
        let mut required = opened.required.iter();
        let first = required
            .next()
            .cloned()
            .unwrap_or(crate::policy::Requirement::access());
        let claims: Claims<E> = opened.authx.authenticate(head, &first).await?;
        let now = NumericDate::now();
        for requirement in required {
            requirement.check(&claims, now, pipeline.fresh_max_age)?;
        }
        let before = self.slot.credential();
        if claims.iss != before.iss || claims.sub != before.sub || claims.fam != before.fam {
            return Err(AuthError::InvalidToken(InvalidToken::Claims(
                "a renewal must be of the same issuer, subject and session".into(),
            )));
        }
        Ok(claims)
    }
}

/// The upgrade request's head (as kept) with `renewal`'s token where this
/// `AuthX` reads one: its header, else its access cookie.
fn replayed(opened: &Opened, renewal: &Renewal) -> Result<(HeaderMap, Uri), AuthError> {
    let sources = &opened.authx.pipeline().sources;
    let mut headers = opened.headers.clone();
    let bad = |_| AuthError::InvalidToken(InvalidToken::Malformed("the renewal's token".into()));
    if sources.order.contains(&TokenLocation::Headers) {
        let value = match (&renewal.dpop, sources.header.scheme.as_str()) {
            (Some(_), _) => format!("DPoP {}", renewal.token),
            (None, "") => renewal.token.clone(),
            (None, scheme) => format!("{scheme} {}", renewal.token),
        };
        headers.insert(
            sources.header.name.clone(),
            HeaderValue::from_str(&value).map_err(bad)?,
        );
        if let Some(proof) = &renewal.dpop {
            headers.insert(
                crate::dpop::DPOP.clone(),
                HeaderValue::from_str(proof).map_err(bad)?,
            );
        }
    } else if sources.order.contains(&TokenLocation::Cookies) {
        let cookie = format!("{}={}", sources.cookies.access_name, renewal.token);
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&cookie).map_err(bad)?,
        );
    } else {
        return Err(AuthError::InvalidRequest(
            "renewal in band needs tokens read from a header or a cookie",
        ));
    }
    // A token in the query is the old one: the renewal's is in the header.
    let uri = if sources.order.contains(&TokenLocation::Query) {
        Uri::builder()
            .path_and_query(opened.uri.path())
            .build()
            .unwrap_or_else(|_| opened.uri.clone())
    } else {
        opened.uri.clone()
    };
    Ok((headers, uri))
}

/// A client's in-band renewal of a WebSocket's credential: the text message
/// `{"type":"authx.renew","access_token":"<token>"}`, with `"dpop":"<proof>"`
/// for a DPoP-bound token.
#[derive(Clone, Deserialize)]
pub struct Renewal {
    #[serde(rename = "access_token")]
    token: String,
    #[serde(default)]
    dpop: Option<String>,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never in logs.
        f.debug_struct("Renewal")
            .field("dpop", &self.dpop.is_some())
            .finish_non_exhaustive()
    }
}

/// The longest renewal message read (a token and a proof, with room).
const MAX_RENEWAL: usize = 64 * 1024;

impl Renewal {
    /// The renewal in `message`, or `None` when it is not one (the
    /// application's own message, or too long to be one).
    pub fn parse(message: &str) -> Option<Renewal> {
        #[derive(Deserialize)]
        struct Message {
            #[serde(rename = "type")]
            kind: String,
            #[serde(flatten)]
            renewal: Renewal,
        }
        if message.len() > MAX_RENEWAL || !message.contains("authx.renew") {
            return None;
        }
        let message: Message = serde_json::from_str(message).ok()?;
        (message.kind == "authx.renew").then_some(message.renewal)
    }

    /// A renewal with `token` (and a DPoP `proof` for a bound one), as a
    /// client library would send it.
    pub fn new(token: impl Into<String>, proof: Option<String>) -> Self {
        Renewal {
            token: token.into(),
            dpop: proof,
        }
    }

    /// The message a client sends.
    pub fn to_message(&self) -> String {
        let mut message = serde_json::json!({
            "type": "authx.renew",
            "access_token": self.token,
        });
        if let Some(proof) = &self.dpop {
            message["dpop"] = proof.clone().into();
        }
        message.to_string()
    }
}
