//! The examples' accept loop: HTTP/1 on every connection, each in its own task,
//! with what a server facing the Internet needs: a cap on open connections,
//! a lower one per client address (so one client cannot hold them all),
//! header and idle timeouts, and an accept loop that backs off on errors (at
//! the file-descriptor limit) and logs them at most once a second.
//!
//! At the cap, a new connection is not left waiting behind idle ones: the
//! loop closes one to make room, first a connection that has not sent a full
//! request within `GRACE`, then the unauthenticated connection idle longest.
//! A connection with a request under way, or on which a guard admitted a
//! credential ([`authenticated`]), keeps its place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// A client that never finishes its headers (or sits idle between requests on
/// a kept-alive connection) loses the connection after this long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body that has not fully arrived after this long is refused (408).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// At the connection cap, a connection silent (or idle and unauthenticated)
/// this long may be closed to make room for a new one.
pub const GRACE: Duration = Duration::from_secs(1);

/// `future`, a request's answer, or 408 past `BODY_TIMEOUT` and a little: for
/// what reads a body before the handlers do (`JsonTokenLayer`).
pub async fn in_time<B, E>(
    future: impl std::future::Future<Output = Result<Response<B>, E>>,
) -> Result<Response<Either<B, Full<Bytes>>>, E> {
    match tokio::time::timeout(BODY_TIMEOUT + Duration::from_secs(5), future).await {
        Ok(answer) => answer.map(|res| res.map(Either::Left)),
        Err(_) => {
            let slow = super::responses::detail(http::StatusCode::REQUEST_TIMEOUT, super::TOO_SLOW);
            Ok(slow.map(Either::Right))
        }
    }
}

/// `MAX_CONNECTIONS` (default 1024): connections open at once; more wait in
/// the kernel's backlog until one closes.
pub fn max_connections() -> usize {
    std::env::var("MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1024)
}

/// `MAX_CONNECTIONS_PER_CLIENT` (default: a sixteenth of [`max_connections`],
/// at least 1): connections one client address (an IPv6 /64) may hold open;
/// past it, its new connections are closed at once.
pub fn max_connections_per_client() -> usize {
    std::env::var("MAX_CONNECTIONS_PER_CLIENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or((max_connections() / 16).max(1))
}

/// Accepts connections while fewer than [`max_connections`] are open (past
/// it, closing one to make room when one may be closed), and fewer than
/// [`max_connections_per_client`] from the connecting address; backs off
/// (10 ms doubling to 1 s) after a failed accept, so a process at its
/// descriptor limit neither spins nor floods its log.
pub struct Acceptor {
    listener: TcpListener,
    open: Arc<Semaphore>,
    registry: Arc<Mutex<Registry>>,
    per_client_cap: usize,
    last_log: Option<Instant>,
    suppressed: u64,
}

/// The open connections, and how many each client address holds.
#[derive(Default)]
struct Registry {
    next: u64,
    open: HashMap<u64, Arc<Connection>>,
    per_client: HashMap<IpAddr, usize>,
}

/// One open connection, as the accept loop weighs it under pressure.
pub struct Connection {
    opened: Instant,
    /// Requests whose head arrived (for tonic: 1 once the client spoke).
    requests: AtomicU32,
    /// Requests whose answer (body included) is not done.
    in_flight: AtomicU32,
    /// When the last request ended, in ms after `opened`.
    idle_since_ms: AtomicU64,
    authenticated: AtomicBool,
    closing: AtomicBool,
    close: Notify,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            opened: Instant::now(),
            requests: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            authenticated: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    /// The client spoke, on a connection whose requests are not seen here
    /// (tonic's HTTP/2): it is kept from now on, as if a request were always
    /// under way.
    pub fn spoke(&self) {
        if self.requests.swap(1, Ordering::Relaxed) == 0 {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Resolves when the accept loop wants this connection closed.
    pub async fn closed(&self) {
        self.close.notified().await;
    }

    fn idle_for(&self) -> Duration {
        let at = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        self.opened.elapsed().saturating_sub(at)
    }

    /// How soon this connection goes when room is needed: `None` keeps it.
    fn eviction_rank(&self) -> Option<(u8, Duration)> {
        if self.closing.load(Ordering::Relaxed)
            || self.in_flight.load(Ordering::Relaxed) > 0
            || self.authenticated.load(Ordering::Relaxed)
        {
            return None;
        }
        let idle = self.idle_for();
        if idle < GRACE {
            return None;
        }
        // Silent ones first, then the idle longest.
        let spoke = self.requests.load(Ordering::Relaxed) > 0;
        Some((u8::from(!spoke), idle))
    }
}

/// The connection a request came on, in its extensions.
#[derive(Clone)]
struct OnConnection(Arc<Connection>);

/// A guard admitted a credential on the connection this request came on:
/// the connection keeps its place under pressure. Called where the handlers
/// read the verified claims.
pub fn authenticated(extensions: &http::Extensions) {
    if let Some(OnConnection(connection)) = extensions.get::<OnConnection>() {
        connection.authenticated.store(true, Ordering::Relaxed);
    }
}

/// [`authenticated`], as a `map_request` function to put inside a guard.
pub fn marked<B>(req: Request<B>) -> Request<B> {
    authenticated(req.extensions());
    req
}

/// What counts an accepted connection as open, overall and for its client,
/// until dropped.
pub struct Permit {
    _open: OwnedSemaphorePermit,
    id: u64,
    client: IpAddr,
    connection: Arc<Connection>,
    registry: Arc<Mutex<Registry>>,
}

impl Permit {
    /// The connection this permit counts.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.open.remove(&self.id);
        release(&mut registry.per_client, self.client);
    }
}

fn release(per_client: &mut HashMap<IpAddr, usize>, client: IpAddr) {
    if let Some(count) = per_client.get_mut(&client) {
        *count -= 1;
        if *count == 0 {
            per_client.remove(&client);
        }
    }
}

/// Who a connection comes from, for the per-client cap: an IPv4 address, or
/// the /64 of an IPv6 one (a client is handed a whole /64).
fn client_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
        v4 => v4,
    }
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Acceptor {
        Acceptor {
            listener,
            open: Arc::new(Semaphore::new(max_connections())),
            registry: Arc::default(),
            per_client_cap: max_connections_per_client(),
            last_log: None,
            suppressed: 0,
        }
    }

    /// The next connection, with the permit that counts it as open.
    pub async fn accept(&mut self) -> (TcpStream, Permit) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    self.log(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(10);
            let client = client_of(peer.ip());
            {
                let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                let count = registry.per_client.entry(client).or_insert(0);
                if *count >= self.per_client_cap {
                    // Closed at once: this client holds its share.
                    continue;
                }
                *count += 1;
            }
            let open = self.room().await;
            let connection = Arc::new(Connection::new());
            let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            let id = registry.next;
            registry.next += 1;
            registry.open.insert(id, connection.clone());
            drop(registry);
            let permit = Permit {
                _open: open,
                id,
                client,
                connection,
                registry: self.registry.clone(),
            };
            return (stream, permit);
        }
    }

    /// A place among the open connections: a free one, or one made by
    /// closing the connection that goes first; while none may go, waits for
    /// one to close, looking again as connections age.
    async fn room(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(open) = self.open.clone().try_acquire_owned() {
                return open;
            }
            let victim = {
                let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                registry
                    .open
                    .values()
                    .filter_map(|c| c.eviction_rank().map(|rank| (rank, c)))
                    .max_by_key(|(rank, _)| *rank)
                    .map(|(_, c)| c.clone())
            };
            if let Some(victim) = victim {
                victim.closing.store(true, Ordering::Relaxed);
                victim.close.notify_one();
            }
            tokio::select! {
                open = self.open.clone().acquire_owned() => {
                    let Ok(open) = open else { unreachable!("the semaphore is never closed") };
                    return open;
                }
                () = tokio::time::sleep(GRACE / 4) => {}
            }
        }
    }

    fn log(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        eprintln!(
            "accept failed: {e} ({} more since the last report)",
            self.suppressed
        );
        self.last_log = Some(now);
        self.suppressed = 0;
    }
}

/// Serves `service` on every connection `listener` accepts, forever.
pub async fn serve<S, B>(listener: TcpListener, service: S)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut acceptor = Acceptor::new(listener);
    loop {
        let (stream, permit) = acceptor.accept().await;
        let peer = stream.peer_addr().ok();
        let service = service.clone();
        // Each request knows its connection's client address (a
        // `SocketAddr` in its extensions: what the guards read to share
        // introspection calls fairly between clients).
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            if let Some(peer) = peer {
                req.extensions_mut().insert(peer);
            }
            hyper::service::Service::call(&service, req)
        });
        tokio::spawn(serve_connection(stream, service, permit));
    }
}

/// HTTP/1.1 on one accepted connection (plain or TLS), with the header read
/// timeout, until the client is done or the accept loop needs its place
/// (then it closes once no request is under way).
pub async fn serve_connection<I, S, B>(io: I, service: S, permit: Permit)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connection = permit.connection().clone();
    let tracked = Tracked {
        inner: service,
        connection: connection.clone(),
    };
    // The permit goes with the socket: an upgraded connection (a WebSocket)
    // keeps its place under the caps until it closes.
    let io = Holding {
        io,
        _permit: permit,
    };
    let serving = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), tracked)
        // A WebSocket leaves this connection once upgraded.
        .with_upgrades();
    tokio::pin!(serving);
    // Errors here are the client's (it hung up, sent garbage): nothing to do.
    tokio::select! {
        _ = serving.as_mut() => {}
        () = connection.closed() => {
            serving.as_mut().graceful_shutdown();
            let _ = serving.await;
        }
    }
}

/// A socket and its place under the connection caps, released together.
struct Holding<I> {
    io: I,
    _permit: Permit,
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Holding<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Holding<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// `inner`, counting each request on its connection from its head to the
/// end of its answer's body, and telling the request its connection.
struct Tracked<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<InFlightBody<B>>;
    type Error = S::Error;
    type Future = InFlightFuture<S::Future>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let connection = &self.connection;
        connection.requests.fetch_add(1, Ordering::Relaxed);
        connection.in_flight.fetch_add(1, Ordering::Relaxed);
        req.extensions_mut()
            .insert(OnConnection(connection.clone()));
        InFlightFuture {
            inner: self.inner.call(req),
            guard: Some(InFlight(connection.clone())),
        }
    }
}

/// Counts one request in flight on its connection until dropped.
struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let connection = &self.0;
        let now = connection.opened.elapsed().as_millis() as u64;
        connection.idle_since_ms.store(now, Ordering::Relaxed);
        connection.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A request's answer on its way; its in-flight count passes to the body.
    pub struct InFlightFuture<F> {
        #[pin]
        inner: F,
        guard: Option<InFlight>,
    }
}

impl<F, B, E> std::future::Future for InFlightFuture<F>
where
    F: std::future::Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<InFlightBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(answer.map(|res| {
            res.map(|body| InFlightBody {
                inner: body,
                _guard: guard,
            })
        }))
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, counting its request in flight until it is done.
    pub struct InFlightBody<B> {
        #[pin]
        inner: B,
        _guard: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
