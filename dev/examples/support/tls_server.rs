//! HTTPS for the dev examples, with optional client certificates from one
//! CA (RFC 8705): each request carries its connection's certificate as a
//! `ClientCertificate`, which the guards check certificate-bound tokens
//! against. Not an example itself (no `main`).

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower_authx::ClientCertificate;

use crate::shared::server::{Acceptor, serve_connection};

/// The handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS configuration from `TLS_CERT` and `TLS_KEY` (PEM), asking for an
/// optional client certificate from the CA in `TLS_CLIENT_CA`; `None`
/// without `TLS_CERT` (plain HTTP).
pub fn from_env() -> Result<Option<TlsAcceptor>, Box<dyn std::error::Error>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Ok(cert) = std::env::var("TLS_CERT") else {
        return Ok(None);
    };
    let key = std::env::var("TLS_KEY").map_err(|_| "TLS_CERT needs TLS_KEY")?;
    let chain = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| format!("TLS_CERT={cert}: {e}"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("TLS_KEY={key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match std::env::var("TLS_CLIENT_CA") {
        Ok(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca)
                .map_err(|e| format!("TLS_CLIENT_CA={ca}: {e}"))?
            {
                roots.add(cert?)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        Err(_) => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Serves `service` over TLS on every connection `listener` accepts, with
/// each request's `ClientCertificate` (when the client presented one).
pub async fn serve<S, B>(listener: TcpListener, tls: TlsAcceptor, service: S)
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
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
        let (tls, service) = (tls.clone(), service.clone());
        tokio::spawn(async move {
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
            else {
                return;
            };
            let certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| ClientCertificate::from_der(leaf));
            let with_certificate = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                if let Some(certificate) = &certificate {
                    req.extensions_mut().insert(certificate.clone());
                }
                if let Some(peer) = peer {
                    req.extensions_mut().insert(peer);
                }
                service.call(req)
            });
            serve_connection(stream, with_certificate, permit).await;
        });
    }
}
