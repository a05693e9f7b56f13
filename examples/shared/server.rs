//! The examples' accept loop: HTTP/1 on every connection, each in its own task,
//! with what a server facing the Internet needs: a cap on open connections,
//! a lower one per client address (so one client cannot hold them all),
//! header and idle timeouts, and an accept loop that backs off on errors (at
//! the file-descriptor limit) and logs them at most once a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A client that never finishes its headers (or sits idle between requests on
/// a kept-alive connection) loses the connection after this long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body that has not fully arrived after this long is refused (408).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Accepts connections while fewer than [`max_connections`] are open, and
/// fewer than [`max_connections_per_client`] from the connecting address;
/// backs off (10 ms doubling to 1 s) after a failed accept, so a process at
/// its descriptor limit neither spins nor floods its log.
pub struct Acceptor {
    listener: TcpListener,
    open: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client_cap: usize,
    last_log: Option<Instant>,
    suppressed: u64,
}

/// What counts an accepted connection as open, overall and for its client,
/// until dropped.
pub struct Permit {
    _open: OwnedSemaphorePermit,
    client: IpAddr,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
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
            per_client: Arc::default(),
            per_client_cap: max_connections_per_client(),
            last_log: None,
            suppressed: 0,
        }
    }

    /// The next connection, with the permit that counts it as open.
    pub async fn accept(&mut self) -> (TcpStream, Permit) {
        let mut backoff = Duration::from_millis(10);
        loop {
            let Ok(open) = self.open.clone().acquire_owned().await else {
                unreachable!("the semaphore is never closed");
            };
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let client = client_of(peer.ip());
                    {
                        let mut counts = self.per_client.lock().unwrap_or_else(|e| e.into_inner());
                        let count = counts.entry(client).or_insert(0);
                        if *count >= self.per_client_cap {
                            // Closed at once: this client holds its share.
                            continue;
                        }
                        *count += 1;
                    }
                    let permit = Permit {
                        _open: open,
                        client,
                        per_client: self.per_client.clone(),
                    };
                    return (stream, permit);
                }
                Err(e) => {
                    drop(open);
                    self.log(&e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
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
        tokio::spawn(async move {
            serve_connection(stream, service).await;
            drop(permit);
        });
    }
}

/// HTTP/1.1 on one accepted connection (plain or TLS), with the header read
/// timeout, until the client is done.
pub async fn serve_connection<I, S, B>(io: I, service: S)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Errors here are the client's (it hung up, sent garbage): nothing to do.
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await;
}
