//! Certificate-bound tokens (RFC 8705) in process: the certificate from the
//! TLS acceptor (a `ClientCertificate` in the extensions) or, opted into, the
//! RFC 9440 `Client-Cert` header; every entry point; DPoP and certificate
//! bindings together.

use crate::support;

use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{
    AuthError, AuthX, AuthXConfig, ClientCertificate, Dpop, NoExtra, RequestHead, RequireAuthLayer,
    Requirement,
};

const BASE: &str = "https://api.example.com";
const URL: &str = "https://api.example.com/protected";

/// The proxy whose `Client-Cert` header is trusted, when it is.
const PROXY: &str = "10.1.2.3:4000";

fn authx(header: bool) -> AuthX {
    let config = AuthXConfig::from_secret(support::SECRET)
        .unwrap()
        .dpop(Dpop::new(BASE));
    let config = if header {
        let proxy: std::net::SocketAddr = PROXY.parse().unwrap();
        config.danger_client_cert_header_from([proxy.ip()])
    } else {
        config
    };
    AuthX::new(config).unwrap()
}

const CERT: &[u8] = b"the DER of the client's certificate";
const OTHER: &[u8] = b"the DER of another certificate";

/// The status of `GET /protected` with `token` as `scheme`, the certificate
/// the acceptor saw, and headers.
async fn status(
    authx: &AuthX,
    scheme: &str,
    token: &str,
    certificate: Option<&[u8]>,
    headers: &[(&str, String)],
) -> (StatusCode, Option<AuthError>) {
    let service = RequireAuthLayer::new(authx.clone()).layer(service_fn(
        |_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
        },
    ));
    let mut request = Request::get(URL).header("authorization", format!("{scheme} {token}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut request = request.body(Full::default()).unwrap();
    // The connection came from the proxy (its address, as an acceptor puts it).
    let peer: std::net::SocketAddr = PROXY.parse().unwrap();
    request.extensions_mut().insert(peer);
    if let Some(der) = certificate {
        request
            .extensions_mut()
            .insert(ClientCertificate::from_der(der));
    }
    let res = service.oneshot(request).await.unwrap();
    (res.status(), res.extensions().get::<AuthError>().cloned())
}

fn header_of(der: &[u8]) -> String {
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

#[tokio::test]
async fn a_certificate_bound_token_goes_only_with_its_certificate() {
    let authx = authx(false);
    let cert = ClientCertificate::from_der(CERT);
    let bound = authx
        .access_token("u")
        .bound_to_certificate(&cert)
        .issue()
        .unwrap();
    assert_eq!(
        support::payload_of(&bound)["cnf"]["x5t#S256"],
        cert.thumbprint()
    );
    assert_eq!(
        status(&authx, "Bearer", &bound, Some(CERT), &[]).await.0,
        StatusCode::OK
    );
    for (what, certificate) in [("another certificate", Some(OTHER)), ("none", None)] {
        let (status, error) = status(&authx, "Bearer", &bound, certificate, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(error.unwrap().kind(), "certificate_binding", "{what}");
    }
    // The header is not trusted unless opted into: a client cannot claim a certificate.
    let claimed = [("client-cert", header_of(CERT))];
    assert_eq!(
        status(&authx, "Bearer", &bound, None, &claimed).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A token bound to nothing goes with any certificate or none.
    let plain = authx.access_token("u").issue().unwrap();
    assert_eq!(
        status(&authx, "Bearer", &plain, Some(OTHER), &[]).await.0,
        StatusCode::OK
    );
    // Entry points without a connection have no certificate: refused.
    let error = authx
        .verify::<NoExtra>(&bound, &Requirement::access())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "certificate_binding");
    assert!(
        authx
            .verify_offline::<NoExtra>(&bound, &Requirement::access())
            .is_err()
    );
    // The pair of a certificate-bound login is Bearer, and rotation keeps the binding.
    let pair = authx
        .token_pair("u")
        .bound_to_certificate(&cert)
        .issue()
        .unwrap();
    assert_eq!(pair.token_type, "bearer");
    let refresh = support::payload_of(&pair.refresh_token);
    assert_eq!(refresh["cnf"]["x5t#S256"], cert.thumbprint());
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_cert_header_carries_the_certificate() {
    let authx = authx(true);
    let bound = authx
        .access_token("u")
        .bound_to_certificate(&ClientCertificate::from_der(CERT))
        .issue()
        .unwrap();
    let with = |value: String| vec![("client-cert", value)];
    assert_eq!(
        status(&authx, "Bearer", &bound, None, &with(header_of(CERT)))
            .await
            .0,
        StatusCode::OK
    );
    for (what, headers) in [
        ("another certificate", with(header_of(OTHER))),
        (
            "no colons",
            with(base64::engine::general_purpose::STANDARD.encode(CERT)),
        ),
        ("not base64", with(":not base64!:".to_owned())),
        (
            "two headers",
            vec![
                ("client-cert", header_of(CERT)),
                ("client-cert", header_of(CERT)),
            ],
        ),
    ] {
        let (status, error) = status(&authx, "Bearer", &bound, None, &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(error.unwrap().kind(), "certificate_binding", "{what}");
    }
    // The acceptor's certificate wins over a header.
    assert_eq!(
        status(
            &authx,
            "Bearer",
            &bound,
            Some(CERT),
            &with(header_of(OTHER))
        )
        .await
        .0,
        StatusCode::OK
    );
    // `authenticate` reads the head and its extensions: the trusted header
    // serves it too, from the proxy only.
    let mut request = Request::get(URL)
        .header("authorization", format!("Bearer {bound}"))
        .header("client-cert", header_of(CERT))
        .body(())
        .unwrap();
    let refused = authx
        .authenticate::<NoExtra>(RequestHead::of(&request), &Requirement::access())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), "certificate_binding", "no peer address");
    let proxy: std::net::SocketAddr = PROXY.parse().unwrap();
    request.extensions_mut().insert(proxy);
    authx
        .authenticate::<NoExtra>(RequestHead::of(&request), &Requirement::access())
        .await
        .unwrap();
}

/// Issue 38, finding 8: the `Client-Cert` header is trusted only from the
/// configured proxies' addresses (anyone reaching the server directly could
/// set it), and a route can require certificate-bound tokens.
#[tokio::test]
async fn the_header_counts_only_from_a_proxy_and_a_route_can_require_a_bound_token() {
    let authx = authx(true);
    let bound = authx
        .access_token("u")
        .bound_to_certificate(&ClientCertificate::from_der(CERT))
        .issue()
        .unwrap();
    let guard = |requirement: Requirement| {
        authx
            .guard(requirement)
            .unwrap()
            .layer(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
            }))
    };
    let send = |token: &str, peer: Option<&str>, cert: bool| {
        let mut request = Request::get(URL)
            .header("authorization", format!("Bearer {token}"))
            .header("client-cert", header_of(CERT))
            .body(Full::<Bytes>::default())
            .unwrap();
        if let Some(peer) = peer {
            let peer: std::net::SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(peer);
        }
        if cert {
            request
                .extensions_mut()
                .insert(ClientCertificate::from_der(CERT));
        }
        request
    };
    for (what, peer, expected) in [
        ("from the proxy", Some(PROXY), StatusCode::OK),
        (
            "from the proxy, as IPv4-mapped IPv6",
            Some("[::ffff:10.1.2.3]:4000"),
            StatusCode::OK,
        ),
        (
            "from another address",
            Some("10.9.9.9:4000"),
            StatusCode::UNAUTHORIZED,
        ),
        ("without a peer address", None, StatusCode::UNAUTHORIZED),
    ] {
        let res = guard(Requirement::access())
            .oneshot(send(&bound, peer, false))
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "{what}");
    }
    // A route that takes only certificate-bound tokens refuses a bearer token.
    let plain = authx.access_token("u").issue().unwrap();
    let res = guard(Requirement::access().certificate_bound())
        .oneshot(send(&plain, Some(PROXY), true))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let error = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(error.kind(), "certificate_binding");
    assert!(error.to_string().contains("certificate-bound"), "{error}");
    let res = guard(Requirement::access().certificate_bound())
        .oneshot(send(&bound, None, true))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_token_bound_both_ways_needs_both_its_proof_and_its_certificate() {
    let authx = authx(false);
    let client = support::dpop::ProofKey::es256();
    let login = Request::post(format!("{BASE}/login"))
        .header("dpop", client.proof("POST", &format!("{BASE}/login"), None))
        .body(())
        .unwrap();
    let key = authx
        .dpop_key(RequestHead::of(&login))
        .await
        .unwrap()
        .unwrap();
    let both = authx
        .access_token("u")
        .bound_to(&key)
        .bound_to_certificate(&ClientCertificate::from_der(CERT))
        .issue()
        .unwrap();
    let proof = || vec![("dpop", client.proof("GET", URL, Some(&both)))];
    assert_eq!(
        status(&authx, "DPoP", &both, Some(CERT), &proof()).await.0,
        StatusCode::OK
    );
    let (status_no_cert, error) = status(&authx, "DPoP", &both, None, &proof()).await;
    assert_eq!(status_no_cert, StatusCode::UNAUTHORIZED);
    assert_eq!(error.unwrap().kind(), "certificate_binding");
    let (status_no_proof, _) = status(&authx, "Bearer", &both, Some(CERT), &[]).await;
    assert_eq!(status_no_proof, StatusCode::UNAUTHORIZED);
}
