//! The client side: outgoing requests leave with a token exchanged for the
//! [`Caller`] they carry, never with the caller's own.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use super::{Caller, ExchangeError, TokenExchange};

/// What the service returns when it fails: an [`ExchangeError`] (no token to
/// send, so nothing was sent) or the inner service's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a client (any `Service<http::Request<B>>`) so that each request
/// carrying a [`Caller`] in its extensions is sent with a token exchanged for
/// it ([`TokenExchange::exchange`]) in `Authorization`; a request without one
/// fails with [`ExchangeError::NoCaller`] and is not sent. Any
/// `Authorization` the request had is replaced, so the caller's own token
/// never leaves. When the downstream service answers 401 `invalid_token` to a
/// request without a body, the exchanged token is forgotten and the request
/// sent once more with a new one.
#[derive(Clone, Debug)]
pub struct TokenExchangeLayer {
    exchange: TokenExchange,
}

impl TokenExchangeLayer {
    /// The layer for `exchange`.
    pub fn new(exchange: TokenExchange) -> Self {
        TokenExchangeLayer { exchange }
    }
}

impl<S> Layer<S> for TokenExchangeLayer {
    type Service = TokenExchangeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenExchangeService {
            inner,
            exchange: self.exchange.clone(),
        }
    }
}

/// The service [`TokenExchangeLayer`] makes.
#[derive(Clone, Debug)]
pub struct TokenExchangeService<S> {
    inner: S,
    exchange: TokenExchange,
}

/// The answer of a [`TokenExchangeService`]: the exchange (a network call,
/// or a cache hit), then the downstream call. Boxed: it waits on the token
/// endpoint, whose round trip dwarfs one allocation.
pub struct TokenExchangeFuture<R> {
    inner: Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>,
}

impl<R> std::fmt::Debug for TokenExchangeFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchangeFuture")
            .finish_non_exhaustive()
    }
}

impl<R> Future for TokenExchangeFuture<R> {
    type Output = Result<R, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<S, B, ResB> Service<Request<B>> for TokenExchangeService<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Default + Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = TokenExchangeFuture<Response<ResB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was made ready goes with this request (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let exchange = self.exchange.clone();
        TokenExchangeFuture {
            inner: Box::pin(async move {
                let Some(caller) = request.extensions().get::<Caller>().cloned() else {
                    return Err(ExchangeError::NoCaller.into());
                };
                let token = exchange.exchange(&caller).await?;
                // A request without a body can be sent again as it was.
                let again = request.body().is_end_stream().then(|| head_of(&request));
                let uri = request.uri().clone();
                let response = inner
                    .call(exchange.present(request, &token)?)
                    .await
                    .map_err(Into::into)?;
                let new_nonce = exchange.note_nonce(&uri, response.headers());
                let Some(again) = again else {
                    return Ok(response);
                };
                let token = if refuses_the_token(&response) {
                    // Revoked or rotated away there: a new one, once.
                    exchange.forget(&caller);
                    exchange.exchange(&caller).await?
                } else if new_nonce && asks_for(&response, "use_dpop_nonce") {
                    // The same token, with a proof that carries the nonce.
                    token
                } else {
                    return Ok(response);
                };
                std::future::poll_fn(|cx| inner.poll_ready(cx))
                    .await
                    .map_err(Into::into)?;
                let request = Request::from_parts(again, B::default());
                inner
                    .call(exchange.present(request, &token)?)
                    .await
                    .map_err(Into::into)
            }),
        }
    }
}

/// A copy of `request`'s head, to send it again.
fn head_of<B>(request: &Request<B>) -> http::request::Parts {
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = request.headers().clone();
    *head.extensions_mut() = request.extensions().clone();
    head.into_parts().0
}

/// Whether the downstream service refused the token itself (RFC 6750 3.1
/// `invalid_token`), as it does for a token revoked or rotated away.
fn refuses_the_token<B>(response: &Response<B>) -> bool {
    asks_for(response, "invalid_token")
}

/// Whether `response` is a 401 whose challenge names `error`.
fn asks_for<B>(response: &Response<B>, error: &str) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .any(|value| {
                value
                    .as_bytes()
                    .windows(error.len())
                    .any(|w| w == error.as_bytes())
            })
}
