//! A resource server behind real OpenID Providers: panva's `oidc-provider`
//! (npm, `tests/oidc/`) run by node over HTTPS on loopback with a certificate
//! authority made in the test, issuing RFC 9068 JWT access tokens (`typ:
//! at+jwt`, `scope` as one string, `client_id`) with the client credentials
//! grant. Two providers at once (ES256 and RS256), discovery, audience,
//! scopes, a key rotation, a provider down, an untrusted certificate; and the
//! `mcp_server` example with the official TypeScript MCP SDK as its client.
#![cfg(feature = "remote-keys")]

#[path = "../../tests/support/mod.rs"]
mod support;
mod tls;

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{AuthX, AuthXConfig, Issuer, RequireAuthLayer, RequireScopesLayer};

const AUDIENCE: &str = "https://api.example";

/// `tests/oidc/` with its npm packages installed, and node; `None` (a visible
/// skip) where they are missing, which CI does not allow.
fn provider_dir() -> Option<PathBuf> {
    if let Some(dir) = support::oidc_packages() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs node and `npm ci --prefix tests/oidc` (see .ci/run)"
    );
    support::skipped("no node to run panva's oidc-provider (tests/oidc)");
    None
}

/// One running provider; killed when dropped.
struct Provider {
    iss: String,
    _child: Child,
}

async fn start(dir: &std::path::Path, alg: &str, port: u16, files: &Files) -> Provider {
    start_with(dir, alg, port, files, &[]).await
}

/// [`start`] with `env` besides.
async fn start_with(
    dir: &std::path::Path,
    alg: &str,
    port: u16,
    files: &Files,
    env: &[(&str, &std::path::Path)],
) -> Provider {
    let mut child = Command::new("node")
        .arg(dir.join("provider.mjs"))
        .envs(env.iter().copied())
        .env("PORT", port.to_string())
        .env("ALG", alg)
        .env("AUDIENCE", AUDIENCE)
        .env("TLS_CERT", &files.cert)
        .env("TLS_KEY", &files.key)
        .env("KEYS_FILE", files.keys(alg))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let iss = listening(&mut child, "listening on ").await;
    Provider { iss, _child: child }
}

/// What `child` prints after `prefix` on the line that says it is listening.
async fn listening(child: &mut Child, prefix: &str) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Node takes seconds to start on a loaded two-core machine.
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
        panic!("exited before listening");
    })
    .await
    .expect("did not start in time")
}

/// The provider's TLS files and key files, in a folder of this test's own.
struct Files {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new(pki: &tls::TestPki, name: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("authx-oidc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &pki.cert_pem).unwrap();
        std::fs::write(&key, &pki.key_pem).unwrap();
        Files { dir, cert, key }
    }

    fn keys(&self, alg: &str) -> PathBuf {
        self.dir.join(format!("keys-{alg}.json"))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An access token from `iss` by the client credentials grant.
async fn token(tls: &rustls::ClientConfig, iss: &str, scope: &str, resource: &str) -> String {
    token_with(tls, iss, scope, resource, None).await.0
}

/// An access token and its `token_type`, bound to the key of `dpop` (a
/// proof for the token endpoint) when there is one.
async fn token_with(
    tls: &rustls::ClientConfig,
    iss: &str,
    scope: &str,
    resource: &str,
    dpop: Option<&str>,
) -> (String, String) {
    let form = format!("scope={scope}&resource={resource}");
    token_request(tls, iss, &form, ("api-client", "api-secret"), dpop).await
}

/// An access token whose claims are laid out as the identity provider
/// `layout` lays them out (the test provider's client `layout-<layout>`).
async fn token_in_layout(
    tls: &rustls::ClientConfig,
    iss: &str,
    scope: &str,
    layout: &str,
) -> String {
    let form = format!("scope={scope}&resource={AUDIENCE}");
    let client = format!("layout-{layout}");
    token_request(tls, iss, &form, (&client, "layout-secret"), None)
        .await
        .0
}

/// The client credentials grant as `client` (id, secret) with `form` besides.
async fn token_request(
    tls: &rustls::ClientConfig,
    iss: &str,
    form: &str,
    client: (&str, &str),
    dpop: Option<&str>,
) -> (String, String) {
    let form = format!("grant_type=client_credentials&{form}");
    let (_, json) = post_form(tls, &format!("{iss}/token"), client, &form, dpop).await;
    let token = json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {json}"))
        .to_owned();
    (
        token,
        json["token_type"].as_str().unwrap_or_default().to_owned(),
    )
}

/// `POST url` with `form`, authenticated as `client` (id, secret) by HTTP
/// Basic, over HTTPS with `tls`: the status and the JSON answer (`null` for
/// none).
async fn post_form(
    tls: &rustls::ClientConfig,
    url: &str,
    (id, secret): (&str, &str),
    form: &str,
    dpop: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    use base64::Engine;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(connector);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut request = Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"));
    if let Some(proof) = dpop {
        request = request.header("dpop", proof);
    }
    let request = request
        .body(Full::new(Bytes::from(form.to_owned())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The status a guard answers for `token`.
async fn status<L>(guard: L, token: &str) -> StatusCode
where
    L: Layer<
        tower::util::ServiceFn<
            fn(
                Request<Full<Bytes>>,
            ) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
        >,
    >,
    L::Service: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<tower_authx::layer::EitherBody<Full<Bytes>>>,
        >,
    <L::Service as tower::Service<Request<Full<Bytes>>>>::Error: std::fmt::Debug,
{
    fn ok(
        _req: Request<Full<Bytes>>,
    ) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
        std::future::ready(Ok(Response::new(Full::default())))
    }
    let service = guard.layer(service_fn(
        ok as fn(
            Request<Full<Bytes>>,
        ) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
    ));
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    service.oneshot(request).await.unwrap().status()
}

async fn discovered(iss: &str, tls: &rustls::ClientConfig) -> Issuer {
    let found = Issuer::discover_with(iss, tls.clone()).await.unwrap();
    let keys = found
        .keys()
        .clone()
        .min_refetch_interval(Duration::from_secs(1));
    Issuer::new(found.iss(), keys).audience(AUDIENCE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_two_real_openid_providers() {
    let Some(dir) = provider_dir() else { return };
    let pki = tls::pki();
    let files = Files::new(&pki, "two");
    let tls = tls::client_trusting(pki.ca_der.clone());
    let es_port = free_port();
    let mut es = start(&dir, "ES256", es_port, &files).await;
    let rs = start(&dir, "RS256", free_port(), &files).await;

    let authx = AuthX::new(AuthXConfig::from_issuers([
        discovered(&es.iss, &tls).await,
        discovered(&rs.iss, &tls).await,
    ]))
    .unwrap();
    let any = || RequireAuthLayer::new(authx.clone());
    let read = || RequireScopesLayer::all(authx.clone(), ["read"]);
    let admin = || RequireScopesLayer::all(authx.clone(), ["admin:users"]);

    // Discovery, at+jwt, the scope string, from both providers.
    let es_read = token(&tls, &es.iss, "read", AUDIENCE).await;
    let rs_read = token(&tls, &rs.iss, "read", AUDIENCE).await;
    assert_eq!(status(any(), &es_read).await, StatusCode::OK);
    assert_eq!(status(read(), &es_read).await, StatusCode::OK);
    assert_eq!(status(read(), &rs_read).await, StatusCode::OK);
    assert_eq!(status(admin(), &es_read).await, StatusCode::FORBIDDEN);
    // Health per issuer, from the handle, for a readiness probe.
    let health = authx.keys_health();
    assert_eq!(health.len(), 2);
    assert_eq!(health[0].0, es.iss);
    assert_eq!(health[1].0, rs.iss);
    for (iss, keys) in &health {
        assert!(
            keys.last_success.is_some() && keys.keys == 1,
            "{iss}: {keys:?}"
        );
    }
    let es_admin = token(&tls, &es.iss, "read admin:users", AUDIENCE).await;
    assert_eq!(status(admin(), &es_admin).await, StatusCode::OK);
    // A token for another API is refused.
    let elsewhere = token(&tls, &es.iss, "read", "https://billing.example").await;
    assert_eq!(status(any(), &elsewhere).await, StatusCode::UNAUTHORIZED);

    // Rotation: the ES256 provider restarts with a new key. Its new tokens
    // verify (after the one refetch they cause), its old ones no longer.
    drop(es);
    std::fs::remove_file(files.keys("ES256")).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    es = start(&dir, "ES256", es_port, &files).await;
    let rotated = token(&tls, &es.iss, "read", AUDIENCE).await;
    assert_eq!(status(read(), &rotated).await, StatusCode::OK);
    assert_eq!(status(read(), &es_read).await, StatusCode::UNAUTHORIZED);

    // The RS256 provider down: its known key keeps serving.
    drop(rs);
    assert_eq!(status(read(), &rs_read).await, StatusCode::OK);
    drop(es);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_provider_certificate_gives_nothing() {
    let Some(dir) = provider_dir() else { return };
    let pki = tls::pki();
    let files = Files::new(&pki, "untrusted");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    // The platform's roots do not know the test CA: discovery fails, so no
    // guard is ever built on it, and no token passes.
    assert!(Issuer::discover(&provider.iss).await.is_err());
}

/// The root package's example binary `name`, when this run built it (the
/// README's `cargo test --all-features` does; CI insists).
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent()?.parent()?.join("examples").join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} not built: run the whole workspace's tests",
        path.display()
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED the {name} example's test: not built (run `cargo test --all-features` in the repository's root)"
    );
    None
}

/// A test CA, its provider's files in a folder named for `name`, and the CA's
/// certificate written there (what `SSL_CERT_FILE` names).
fn with_ca(name: &str) -> (tls::TestPki, Files, PathBuf) {
    let pki = tls::pki();
    let files = Files::new(&pki, name);
    let ca = files.dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    (pki, files, ca)
}

/// The resource server example behind `provider`, trusting `ca`, with `env`
/// besides; the running child and its address.
async fn resource_server(
    binary: &std::path::Path,
    provider: &Provider,
    ca: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, String) {
    let base = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("OIDC_ISSUER", provider.iss.as_str()),
        ("AUDIENCE", AUDIENCE),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    run_example(binary, &[&base[..], env].concat()).await
}

/// An example binary started with `env`; the running child and the address
/// (host and port) it says it listens on, over HTTP or HTTPS.
/// The `mcp_server` example trusting `iss` (its TLS root `ca`) on a free
/// port: the process, its address and its resource identifier.
async fn mcp_example(
    binary: &std::path::Path,
    iss: &str,
    ca: &std::path::Path,
) -> (Child, String, String) {
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let port_env = port.to_string();
    let (child, addr) = run_example(
        binary,
        &[
            ("PORT", &port_env),
            ("PUBLIC_URL", &resource),
            ("OIDC_ISSUER", iss),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ],
    )
    .await;
    (child, addr, resource)
}

async fn run_example(binary: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(binary)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = listening(&mut child, "listening on ").await;
    let addr = url.split_once("://").map_or(url.as_str(), |(_, addr)| addr);
    (child, addr.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_server_example_behind_a_real_provider() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("example");
    let provider = start(&dir, "RS256", free_port(), &files).await;
    // OIDC_ISSUER, AUDIENCE and SSL_CERT_FILE, as the README says.
    let (_child, addr) = resource_server(&binary, &provider, &ca, &[]).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let reader = token(&tls, &provider.iss, "read", AUDIENCE).await;
    let get = |path: &'static str, token: String| {
        send(addr.clone(), path, format!("Bearer {token}"), None)
    };
    let (status, body) = get("/protected", reader.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("api-client"), "{body}");
    assert_eq!(get("/read", reader.clone()).await.0, StatusCode::OK);
    let (status, body) = get("/admin", reader).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let elsewhere = token(&tls, &provider.iss, "read", "https://billing.example").await;
    assert_eq!(get("/read", elsewhere).await.0, StatusCode::UNAUTHORIZED);

    // DPoP: a token the provider bound to panva's `dpop` client's key.
    let Some(mut client) = support::dpop::ProofClient::node("ES256").await else {
        return;
    };
    let proof = client
        .proof("POST", &format!("{}/token", provider.iss), None, None)
        .await;
    let (bound, token_type) = token_with(&tls, &provider.iss, "read", AUDIENCE, Some(&proof)).await;
    assert_eq!(token_type, "DPoP");
    assert_eq!(
        support::payload_of(&bound)["cnf"]["jkt"],
        client.jkt.as_str()
    );
    let url = format!("http://{addr}/read");
    let proof = client.proof("GET", &url, Some(&bound), None).await;
    let (status, body) = send(addr.clone(), "/read", format!("DPoP {bound}"), Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Replayed, as Bearer, or with another key's proof: refused.
    let (status, body) = send(addr.clone(), "/read", format!("DPoP {bound}"), Some(&proof)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        get("/read", bound.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let thief = support::dpop::ProofKey::es256().proof("GET", &url, Some(&bound));
    let (status, _) = send(addr.clone(), "/read", format!("DPoP {bound}"), Some(&thief)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `GET path` on the example at `addr` with `authorization` (and a `DPoP` proof).
async fn send(
    addr: String,
    path: &str,
    authorization: String,
    proof: Option<&str>,
) -> (StatusCode, String) {
    let (status, _, body) = exchange(&addr, path, &authorization, proof).await;
    (status, body)
}

/// [`send`] with the answer's `WWW-Authenticate` challenges (no
/// `Authorization` header when `authorization` is empty).
async fn exchange(
    addr: &str,
    path: &str,
    authorization: &str,
    proof: Option<&str>,
) -> (StatusCode, Vec<String>, String) {
    let (status, headers, body) = answer(addr, path, authorization, proof).await;
    let challenges = headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    (status, challenges, body)
}

/// A GET of `path` from the example at `addr`: the answer's status, headers
/// and body (no `Authorization` header when `authorization` is empty).
async fn answer(
    addr: &str,
    path: &str,
    authorization: &str,
    proof: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut sender = support::http1(stream).await;
    let mut request = Request::get(path).header("host", addr);
    if !authorization.is_empty() {
        request = request.header("authorization", authorization);
    }
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let request = request.body(Full::<Bytes>::default()).unwrap();
    let (head, body) = sender.send_request(request).await.unwrap().into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        head.status,
        head.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// How many key fetches the example has made (its `/metrics`).
async fn fetches(addr: &str) -> u64 {
    let (status, body) = send(addr.to_owned(), "/metrics", String::new(), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.lines()
        .filter(|line| line.starts_with("authx_jwks_fetches_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Garbage is a 401, never an outage, and a rotation is learned by a client
/// that honours `Retry-After` on its first retry; a start-up error names its
/// cause. Over TCP against the example, behind a real provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_real_provider_garbage_is_401_and_retry_after_holds() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("retry");
    let port = free_port();
    let provider = start(&dir, "ES256", port, &files).await;

    // Without the test CA, the example refuses to start and says why.
    let refused = Command::new(&binary)
        .env("PORT", "0")
        .env("OIDC_ISSUER", &provider.iss)
        .env("SSL_CERT_FILE", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        said.contains("UnknownIssuer") || said.contains("unknown issuer"),
        "{said}"
    );

    let (_child, addr) =
        resource_server(&binary, &provider, &ca, &[("JWKS_MIN_REFETCH_SECS", "3")]).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let get = |token: String| send(addr.clone(), "/protected", format!("Bearer {token}"), None);
    let good = token(&tls, &provider.iss, "read", AUDIENCE).await;
    assert_eq!(get(good).await.0, StatusCode::OK);
    let fetched = fetches(&addr).await;
    assert!(fetched >= 1);

    // Tokens no key of the provider can verify: 401 at once, nothing fetched.
    let payload = format!(
        r#"{{"iss":"{}","aud":"{AUDIENCE}","sub":"x","iat":{},"exp":{}}}"#,
        provider.iss,
        support::now(),
        support::now() + 60
    );
    let b64 = |text: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    };
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&payload));
    let no_kid = support::forge(r#"{"alg":"ES256"}"#, &payload, b"attacker");
    let hs = support::forge(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, b"attacker");
    for _ in 0..3 {
        for (what, garbage) in [("alg none", &none), ("no kid", &no_kid), ("HS256", &hs)] {
            let (status, body) = get(garbage.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        }
    }
    assert_eq!(fetches(&addr).await, fetched, "garbage fetched keys");

    // The provider rotates its key. Its first token under the new kid: 200 at
    // once, or 503 whose Retry-After a client honours and then gets 200.
    drop(provider);
    std::fs::remove_file(files.keys("ES256")).unwrap();
    let provider = start(&dir, "ES256", port, &files).await;
    let rotated = token(&tls, &provider.iss, "read", AUDIENCE).await;
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut sender = support::http1(stream).await;
    let request = Request::get("/protected")
        .header("host", &addr)
        .header("authorization", format!("Bearer {rotated}"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let first = sender.send_request(request).await.unwrap();
    if first.status() == StatusCode::SERVICE_UNAVAILABLE {
        let retry_after: u64 = first.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3).contains(&retry_after), "Retry-After {retry_after}");
        tokio::time::sleep(Duration::from_secs(retry_after)).await;
        let (status, body) = get(rotated).await;
        assert_eq!(status, StatusCode::OK, "on the first retry: {body}");
    } else {
        assert_eq!(first.status(), StatusCode::OK);
    }
}

/// What the TypeScript MCP SDK did, as `tests/oidc/mcp_client.mjs` reports
/// it: each HTTP exchange with the server, each token response, each step.
struct McpRun {
    lines: Vec<serde_json::Value>,
}

impl McpRun {
    fn step(&self, name: &str) -> &serde_json::Value {
        self.lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no step {name}: {:?}", self.lines))
    }

    fn exchanges(&self) -> Vec<&serde_json::Value> {
        self.lines.iter().filter_map(|l| l.get("http")).collect()
    }

    fn tokens(&self) -> Vec<&serde_json::Value> {
        self.lines.iter().filter_map(|l| l.get("token")).collect()
    }
}

/// Runs the official MCP client against `server` as `api-client` asking for
/// `scope`; in `mode` `dpop` (DPoP-bound tokens) or `stream` (watching the
/// GET stream) when given.
async fn mcp_client(
    dir: &std::path::Path,
    ca: &std::path::Path,
    server: &str,
    iss: &str,
    scope: &str,
    mode: Option<&str>,
) -> McpRun {
    let mut command = Command::new("node");
    command
        .arg(dir.join("mcp_client.mjs"))
        .args([server, "api-client", "api-secret", iss, scope])
        .env("NODE_EXTRA_CA_CERTS", ca)
        .stderr(Stdio::null());
    command.args(mode);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the MCP client finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    McpRun {
        lines: stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect(),
    }
}

/// The `mcp_server` example behind a real provider, reached by the official
/// TypeScript MCP SDK that knows nothing but its URL: 401 → metadata →
/// authorization server → token for the resource → tools; the 403 scope
/// challenge for `admin_reset`; DPoP-bound tokens with the same client; and
/// the refusals a protected resource owes (another resource's token, an
/// issuer not among its authorization servers, a token in the query, a
/// DPoP-bound token without its proof).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_server_example_with_the_official_typescript_sdk() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("mcp_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("mcp");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let (_child, addr, resource) = mcp_example(&binary, &provider.iss, &ca).await;
    let metadata_url = format!("http://{addr}/.well-known/oauth-protected-resource/mcp");
    let pointer = format!("resource_metadata=\"{metadata_url}\"");

    // The metadata names the resource byte for byte, and the provider.
    let (status, _, body) =
        exchange(&addr, "/.well-known/oauth-protected-resource/mcp", "", None).await;
    assert_eq!(status, StatusCode::OK);
    let metadata: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metadata["resource"], resource.as_str());
    assert_eq!(
        metadata["authorization_servers"],
        serde_json::json!([provider.iss])
    );
    assert_eq!(
        metadata["bearer_methods_supported"],
        serde_json::json!(["header"])
    );

    // A client allowed only mcp:tools: in, whoami names it, admin_reset is
    // refused with the scope challenge (the SDK retries once, then gives up).
    let run = mcp_client(&dir, &ca, &resource, &provider.iss, "mcp:tools", None).await;
    let first = run.exchanges()[0];
    assert_eq!(first["status"], 401);
    let challenge = first["challenge"].as_str().unwrap();
    assert!(challenge.contains(&pointer), "{challenge}");
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    assert_eq!(
        run.exchanges()[1]["path"],
        "/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(run.step("connect")["ok"], true, "{:?}", run.lines);
    assert_eq!(
        run.step("list_tools")["result"],
        serde_json::json!(["admin_reset", "whoami"])
    );
    let whoami = &run.step("whoami")["result"];
    assert_eq!(whoami["sub"], "api-client");
    assert_eq!(whoami["scopes"], serde_json::json!(["mcp:tools"]));
    assert_eq!(run.step("admin_reset")["ok"], false);
    let step_up = run
        .exchanges()
        .into_iter()
        .find(|e| e["status"] == 403)
        .expect("a 403 scope challenge");
    let challenge = step_up["challenge"].as_str().unwrap();
    for part in [
        "error=\"insufficient_scope\"",
        "scope=\"mcp:tools mcp:admin\"",
        &pointer,
    ] {
        assert!(challenge.contains(part), "{challenge} lacks {part}");
    }

    // A tool the guard does not list (a typo of admin_reset) is refused
    // with 403 before the server runs it (issue 38, finding 6).
    let unlisted = run.step("unlisted_tool");
    assert_eq!(unlisted["ok"], false, "{:?}", run.lines);
    // The exchanges of that step: those printed after the step before it.
    let after = run
        .lines
        .iter()
        .position(|l| l["step"] == "whoami_after")
        .unwrap();
    let statuses: Vec<_> = run.lines[after..]
        .iter()
        .filter_map(|l| l.get("http"))
        .map(|e| e["status"].clone())
        .collect();
    assert!(
        statuses.contains(&serde_json::json!(403)),
        "the unlisted tool was not refused by the guard: {statuses:?}"
    );

    // With a token that has mcp:admin, admin_reset succeeds.
    let run = mcp_client(
        &dir,
        &ca,
        &resource,
        &provider.iss,
        "mcp:tools mcp:admin",
        None,
    )
    .await;
    assert_eq!(
        run.step("admin_reset")["result"],
        "reset",
        "{:?}",
        run.lines
    );

    // DPoP: the same client, its fetch binding every token to its key.
    let run = mcp_client(
        &dir,
        &ca,
        &resource,
        &provider.iss,
        "mcp:tools mcp:admin",
        Some("dpop"),
    )
    .await;
    assert!(
        run.tokens().iter().all(|t| t["token_type"] == "DPoP"),
        "{:?}",
        run.lines
    );
    assert_eq!(
        run.step("admin_reset")["result"],
        "reset",
        "{:?}",
        run.lines
    );
    let authorized: Vec<_> = run
        .exchanges()
        .into_iter()
        .filter(|e| !e["scheme"].is_null())
        .collect();
    assert!(
        !authorized.is_empty()
            && authorized
                .iter()
                .all(|e| e["scheme"] == "DPoP" && e["status"].as_u64() < Some(300))
    );

    // Refusals: 401 with the metadata pointer, never 200.
    let tls = tls::client_trusting(pki.ca_der.clone());
    let refused = |authorization: String, path: String| {
        let addr = addr.clone();
        async move { exchange(&addr, &path, &authorization, None).await }
    };
    let good = token(&tls, &provider.iss, "mcp:tools", &resource).await;
    let other_resource = token(
        &tls,
        &provider.iss,
        "mcp:tools",
        "https://other.example/mcp",
    )
    .await;
    let other = start(&dir, "RS256", free_port(), &files).await;
    let other_issuer = token(&tls, &other.iss, "mcp:tools", &resource).await;
    let client = support::dpop::ProofClient::node("ES256").await;
    let mcp = "/mcp".to_owned();
    let mut cases = vec![
        (
            "another resource's token",
            format!("Bearer {other_resource}"),
            mcp.clone(),
        ),
        (
            "an issuer not among the servers",
            format!("Bearer {other_issuer}"),
            mcp.clone(),
        ),
        (
            "a token in the query",
            String::new(),
            format!("/mcp?access_token={good}"),
        ),
    ];
    if let Some(mut client) = client {
        let proof = client
            .proof("POST", &format!("{}/token", provider.iss), None, None)
            .await;
        let (bound, _) =
            token_with(&tls, &provider.iss, "mcp:tools", &resource, Some(&proof)).await;
        cases.push((
            "a DPoP-bound token as Bearer",
            format!("Bearer {bound}"),
            mcp.clone(),
        ));
        cases.push((
            "a DPoP-bound token without its proof",
            format!("DPoP {bound}"),
            mcp.clone(),
        ));
    }
    for (what, authorization, path) in cases {
        let (status, challenges, body) = refused(authorization, path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(
            !challenges.is_empty() && challenges.iter().all(|c| c.contains(&pointer)),
            "{what}: {challenges:?}"
        );
    }
    // The right token passes the guard (rmcp then wants its own headers).
    let (status, _, body) = refused(format!("Bearer {good}"), mcp).await;
    assert!(
        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
        "{status} {body}"
    );
}

/// The MCP example's standalone GET stream, opened by the official
/// TypeScript SDK with a token that lives three seconds: it ends within a
/// second of `exp` with a last `credential-ended` event saying why, and
/// the SDK opens the stream again with a new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_get_stream_ends_with_its_token() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("mcp_server") else {
        return;
    };
    let (_pki, files, ca) = with_ca("mcp-stream");
    let ttl = std::path::Path::new("3");
    let provider = start_with(
        &dir,
        "ES256",
        free_port(),
        &files,
        &[("CLIENT_CREDENTIALS_TTL", ttl)],
    )
    .await;
    let (_child, _addr, resource) = mcp_example(&binary, &provider.iss, &ca).await;
    let run = mcp_client(
        &dir,
        &ca,
        &resource,
        &provider.iss,
        "mcp:tools",
        Some("stream"),
    )
    .await;
    assert_eq!(run.step("connect")["ok"], true, "{:?}", run.lines);
    let events: Vec<&serde_json::Value> = run.lines.iter().filter_map(|l| l.get("sse")).collect();
    let ended = run
        .lines
        .iter()
        .find_map(|l| l.get("sse_end"))
        .unwrap_or_else(|| panic!("the GET stream never ended: {:?}", run.lines));
    let last = events
        .iter()
        .rfind(|e| e["exp"] == ended["exp"])
        .unwrap_or_else(|| panic!("no event before the end: {:?}", run.lines));
    assert_eq!(last["event"], "credential-ended", "{:?}", run.lines);
    let data: serde_json::Value = serde_json::from_str(last["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["reason"], "expired");
    let (exp, at) = (
        ended["exp"].as_f64().unwrap(),
        ended["at"].as_f64().unwrap(),
    );
    assert!(
        at >= exp && at < exp + 1.0,
        "ended {:.2} s after exp",
        at - exp
    );
    // The SDK came back: a GET with a new token, answered with a stream.
    let gets: Vec<_> = run
        .exchanges()
        .into_iter()
        .filter(|e| e["method"] == "GET" && e["path"] == "/mcp")
        .collect();
    assert!(
        gets.iter().filter(|e| e["status"] == 200).count() >= 2,
        "the SDK reopened the stream: {:?}",
        run.lines
    );
}

/// The resource server example reads roles where `ROLES_PRESET` says each
/// identity provider puts them, in tokens a real provider issues with that
/// provider's layout: `/staff` (a role), `/orders` (a scope or a role), a
/// wrongly typed roles claim refused, another provider's layout granting
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_server_reads_roles_where_each_provider_puts_them() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("roles");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    for (preset, layout, other) in [
        ("keycloak:my-app", "keycloak", "auth0"),
        ("auth0", "auth0", "entra"),
        ("entra", "entra", "okta"),
        ("okta", "okta", "cognito"),
        ("cognito", "cognito", "keycloak"),
        ("authx", "authx", "okta"),
    ] {
        let (_child, addr) =
            resource_server(&binary, &provider, &ca, &[("ROLES_PRESET", preset)]).await;
        let get = |path: &'static str, token: String| {
            send(addr.clone(), path, format!("Bearer {token}"), None)
        };
        let staff = token_in_layout(&tls, &provider.iss, "read", layout).await;
        let (status, body) = get("/staff", staff.clone()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{preset}: {body} {}",
            support::payload_of(&staff)
        );
        assert!(body.contains("\"staff\""), "{preset}: {body}");
        let stranger = token_in_layout(&tls, &provider.iss, "read", other).await;
        let (status, body) = get("/staff", stranger).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{preset} reading {other}: {body}"
        );
        assert!(body.contains("Missing required permissions"), "{body}");
        // /orders: scope orders:write or role admin (only Keycloak's layout
        // gives this client the admin client role).
        let (status, _) = get("/orders", staff).await;
        let expected = if layout == "keycloak" {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "{preset} /orders by role");
        let writer = token_in_layout(&tls, &provider.iss, "orders:write", other).await;
        assert_eq!(
            get("/orders", writer).await.0,
            StatusCode::OK,
            "{preset} /orders by scope"
        );
    }
    // A number where role names belong: the token is refused, not guessed at.
    let (_child, addr) =
        resource_server(&binary, &provider, &ca, &[("ROLES_PRESET", "authx")]).await;
    let wrong = token_in_layout(&tls, &provider.iss, "read", "wrongly_typed").await;
    let (status, body) = send(addr, "/protected", format!("Bearer {wrong}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("roles"), "{body}");
}

/// `GET url` over HTTPS with `tls` (which may present a client certificate).
async fn https_get(tls: &rustls::ClientConfig, url: &str, authorization: &str) -> StatusCode {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(connector);
    let request = Request::get(url)
        .header("authorization", authorization)
        .body(Full::default())
        .unwrap();
    client.request(request).await.unwrap().status()
}

/// Certificate-bound tokens (RFC 8705) end to end: the provider binds a token
/// to the client certificate its token request came with; the resource
/// server example, serving HTTPS with optional client certificates from the
/// test CA, takes it only on a connection with that certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_go_only_with_their_certificate() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("mtls");
    let provider = start_with(&dir, "ES256", free_port(), &files, &[("CLIENT_CA", &ca)]).await;
    let (alice, mallory) = (pki.client("alice"), pki.client("mallory"));
    let as_alice = pki.client_config(&alice);
    let form = format!("scope=read&resource={AUDIENCE}");
    let (bound, token_type) = token_request(
        &as_alice,
        &provider.iss,
        &form,
        ("mtls-client", "mtls-secret"),
        None,
    )
    .await;
    assert_eq!(token_type, "Bearer");
    assert_eq!(
        support::payload_of(&bound)["cnf"]["x5t#S256"],
        tower_authx::ClientCertificate::from_der(&alice.der).thumbprint()
    );

    let tls_env = [
        ("TLS_CERT", files.cert.to_str().unwrap()),
        ("TLS_KEY", files.key.to_str().unwrap()),
        ("TLS_CLIENT_CA", ca.to_str().unwrap()),
    ];
    let (_child, addr) = resource_server(&binary, &provider, &ca, &tls_env).await;
    let url = format!("https://{addr}/read");
    let bearer = format!("Bearer {bound}");
    assert_eq!(https_get(&as_alice, &url, &bearer).await, StatusCode::OK);
    let as_mallory = pki.client_config(&mallory);
    assert_eq!(
        https_get(&as_mallory, &url, &bearer).await,
        StatusCode::UNAUTHORIZED
    );
    let anonymous = tls::client_trusting(pki.ca_der.clone());
    assert_eq!(
        https_get(&anonymous, &url, &bearer).await,
        StatusCode::UNAUTHORIZED
    );
    // A token bound to nothing goes with any certificate or none.
    let plain = token(&anonymous, &provider.iss, "read", AUDIENCE).await;
    let plain = format!("Bearer {plain}");
    assert_eq!(https_get(&as_mallory, &url, &plain).await, StatusCode::OK);
    assert_eq!(https_get(&anonymous, &url, &plain).await, StatusCode::OK);
    // A route that takes only certificate-bound tokens (issue 38, finding 8)
    // refuses the unbound one, whatever certificate comes with it.
    let bound_only = format!("https://{addr}/bound");
    assert_eq!(
        https_get(&as_alice, &bound_only, &bearer).await,
        StatusCode::OK
    );
    assert_eq!(
        https_get(&as_alice, &bound_only, &plain).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        https_get(&anonymous, &bound_only, &plain).await,
        StatusCode::UNAUTHORIZED
    );
}

/// An opaque access token from the provider (the client `opaque-client`).
async fn opaque_token(tls: &rustls::ClientConfig, iss: &str) -> String {
    let form = format!("scope=read&resource={AUDIENCE}");
    let (token, _) = token_request(tls, iss, &form, ("opaque-client", "opaque-secret"), None).await;
    assert!(!token.contains('.'), "an opaque token: {token}");
    token
}

/// How many introspection requests the provider has answered.
async fn introspections(tls: &rustls::ClientConfig, iss: &str) -> u64 {
    let json = provider_json(tls, &format!("{iss}/test/introspections")).await;
    json["count"].as_u64().unwrap()
}

/// A token the provider issues at `path` (`/test/id_token`, `/test/logout_token`).
async fn test_token(tls: &rustls::ClientConfig, iss: &str, path: &str) -> String {
    let json = provider_json(tls, &format!("{iss}{path}")).await;
    json["token"].as_str().expect("a token").to_owned()
}

/// The JSON the provider answers a GET of `url` (its test routes).
async fn provider_json(tls: &rustls::ClientConfig, url: &str) -> serde_json::Value {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(connector);
    let request = Request::get(url).body(Full::default()).unwrap();
    let body = client.request(request).await.unwrap().into_body();
    serde_json::from_slice(&body.collect().await.unwrap().to_bytes()).unwrap()
}

/// Issue 38, finding 4: an ID token and a back-channel logout token the
/// provider issues to a client that is also the API (their `aud` is ours)
/// are refused by the resource_server example, on a plain and a scoped
/// route, while its access tokens get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_id_and_logout_tokens_are_not_access_tokens() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("example-id-tokens");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let (_child, addr) = resource_server(&binary, &provider, &ca, &[]).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let access = token(&tls, &provider.iss, "read", AUDIENCE).await;
    let (status, body) = send(addr.clone(), "/read", format!("Bearer {access}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in ["/test/id_token", "/test/logout_token"] {
        let token = test_token(&tls, &provider.iss, path).await;
        let claims = support::payload_of(&token);
        assert_eq!(claims["aud"], AUDIENCE, "{path}: {claims}");
        for route in ["/protected", "/read"] {
            let (status, body) = send(addr.clone(), route, format!("Bearer {token}"), None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{path} on {route}: {body}"
            );
            // Refused for what it is (the logout token's header, `logout+jwt`,
            // already says it is no access token).
            let why = if path == "/test/id_token" {
                "not an access token"
            } else {
                "typ"
            };
            assert!(body.contains(why), "{path} on {route}: {body}");
        }
    }
}

/// Issue 38, finding 3: a client whose id is a user's name (`user1`, as
/// dynamic registration lets a client choose) gets client-credentials tokens
/// whose `sub` is `user1`; the resource_server's user route refuses them,
/// and `/protected` shows no user's email for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_named_like_a_user_is_not_that_user_over_tcp() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("example-client-named-user");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let (_child, addr) = resource_server(&binary, &provider, &ca, &[]).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let form = format!("scope=read&resource={AUDIENCE}");
    let (token, _) =
        token_request(&tls, &provider.iss, &form, ("user1", "user1-secret"), None).await;
    assert_eq!(support::payload_of(&token)["sub"], "user1");
    let (status, body) = send(addr.clone(), "/me", format!("Bearer {token}"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = send(addr.clone(), "/protected", format!("Bearer {token}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["username"], "user1");
    assert!(
        body["email"].is_null(),
        "a client got a user's email: {body}"
    );
}

/// Issue 43, item 7: the resource_server example starts while its
/// provider is down; the provider's tokens get 503 with a Retry-After that
/// holds, and once panva's oidc-provider is up, 200, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_server_starts_while_its_provider_is_down() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("example-provider-later");
    let port = free_port();
    let iss = format!("https://127.0.0.1:{port}");
    let env = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("OIDC_ISSUER", iss.as_str()),
        ("AUDIENCE", AUDIENCE),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("JWKS_MIN_REFETCH_SECS", "2"),
    ];
    let (_child, addr) = run_example(&binary, &env).await;
    // A token naming the provider, while it is down: 503, Retry-After.
    let b64 = |json: serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    };
    let named = format!(
        "{}.{}.c2ln",
        b64(serde_json::json!({"alg": "ES256", "kid": "k1"})),
        b64(serde_json::json!({"iss": iss, "sub": "x", "aud": AUDIENCE, "exp": 4_000_000_000u64})),
    );
    let (status, headers, body) = answer(&addr, "/read", &format!("Bearer {named}"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let provider = start(&dir, "ES256", port, &files).await;
    assert_eq!(provider.iss, iss);
    let tls = tls::client_trusting(pki.ca_der.clone());
    let token = token(&tls, &provider.iss, "read", AUDIENCE).await;
    // Within the first refetch interval, or right away: 503 with a
    // Retry-After a client honours, then 200.
    let mut answers = Vec::new();
    for _ in 0..10 {
        let (status, headers, body) =
            answer(&addr, "/read", &format!("Bearer {token}"), None).await;
        answers.push(status);
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    assert_eq!(answers.last(), Some(&StatusCode::OK), "{answers:?}");
}

/// A resource server introspecting at `provider` (discovered) with `introspection`.
async fn introspecting(
    provider: &Provider,
    tls: &rustls::ClientConfig,
    introspection: tower_authx::Introspection,
) -> AuthX {
    let issuer = Issuer::discover_with(&provider.iss, tls.clone())
        .await
        .unwrap()
        .audience(AUDIENCE)
        .introspection(introspection);
    AuthX::new(AuthXConfig::from_issuers([issuer])).unwrap()
}

/// Opaque tokens (RFC 7662) from the real provider, introspected: active,
/// revoked at the provider (RFC 7009) with and without the cache, the
/// provider down and back, private_key_jwt, one call for a hundred
/// concurrent requests, and a flood of random tokens held to the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_introspected_at_a_real_provider() {
    use tower_authx::{ClientAuth, Introspection};
    let Some(dir) = provider_dir() else { return };
    let (pki, files, _ca) = with_ca("introspection");
    let rs_key = tls::fixture_key(tower_authx::Algorithm::ES256, "ec256_private.pem");
    let rs_jwks = files.dir.join("rs-jwks.json");
    std::fs::write(
        &rs_jwks,
        AuthX::new(AuthXConfig::new(rs_key.clone())).unwrap().jwks(),
    )
    .unwrap();
    let port = free_port();
    let env = [("RS_JWKS_FILE", rs_jwks.as_path())];
    let provider = start_with(&dir, "ES256", port, &files, &env).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let basic = || ClientAuth::secret_basic("resource-server", "rs-secret");
    let uncached = introspecting(&provider, &tls, Introspection::discovered(basic())).await;
    let cached = introspecting(
        &provider,
        &tls,
        Introspection::discovered(basic()).cache(Duration::from_secs(2)),
    )
    .await;

    // Active: its claims, the scopes a route asks for.
    let token = opaque_token(&tls, &provider.iss).await;
    let claims: tower_authx::Claims<serde_json::Value> = uncached
        .verify(&token, &tower_authx::Requirement::access())
        .await
        .unwrap();
    assert_eq!(
        claims.sub, "opaque-client",
        "a client's token speaks for it"
    );
    assert_eq!(claims.iss.as_deref(), Some(provider.iss.as_str()));
    assert_eq!(claims.extra["client_id"], "opaque-client");
    assert_eq!(
        status(RequireScopesLayer::all(uncached.clone(), ["read"]), &token).await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            RequireScopesLayer::all(uncached.clone(), ["admin:users"]),
            &token
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(RequireAuthLayer::new(cached.clone()), &token).await,
        StatusCode::OK
    );

    // Revoked at the provider: refused at once without the cache, and once
    // the entry ends with it.
    let form = format!("token={token}&token_type_hint=access_token");
    let revocation = format!("{}/token/revocation", provider.iss);
    let (revoked, _) = post_form(
        &tls,
        &revocation,
        ("opaque-client", "opaque-secret"),
        &form,
        None,
    )
    .await;
    assert_eq!(revoked, StatusCode::OK);
    assert_eq!(
        status(RequireAuthLayer::new(uncached.clone()), &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(RequireAuthLayer::new(cached.clone()), &token).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        status(RequireAuthLayer::new(cached.clone()), &token).await,
        StatusCode::UNAUTHORIZED
    );

    // Signed answers (RFC 9701), verified with the provider's keys.
    let signed = introspecting(
        &provider,
        &tls,
        Introspection::discovered(basic()).signed_answers(),
    )
    .await;
    let token = opaque_token(&tls, &provider.iss).await;
    assert_eq!(
        status(RequireAuthLayer::new(signed.clone()), &token).await,
        StatusCode::OK
    );
    assert_eq!(
        status(RequireAuthLayer::new(signed), "made-up").await,
        StatusCode::UNAUTHORIZED
    );

    // private_key_jwt (RFC 7523).
    let jwt_client = introspecting(
        &provider,
        &tls,
        Introspection::discovered(
            ClientAuth::private_key_jwt("resource-server-jwt", rs_key).unwrap(),
        ),
    )
    .await;
    let token = opaque_token(&tls, &provider.iss).await;
    assert_eq!(
        status(RequireAuthLayer::new(jwt_client.clone()), &token).await,
        StatusCode::OK
    );
    // A client the provider does not know gets no answer: 503, not 401.
    let stranger = introspecting(
        &provider,
        &tls,
        Introspection::discovered(ClientAuth::secret_basic("resource-server", "wrong")),
    )
    .await;
    assert_eq!(
        status(RequireAuthLayer::new(stranger), &token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // A hundred concurrent requests with one new token: one call (those
    // that arrive while it is under way share it, later ones find it
    // cached; tests/in_process/introspection.rs holds every request inside
    // the call, without a cache).
    let token = opaque_token(&tls, &provider.iss).await;
    let before = introspections(&tls, &provider.iss).await;
    let mut tasks = Vec::new();
    let together = std::sync::Arc::new(tokio::sync::Barrier::new(100));
    for _ in 0..100 {
        let (authx, token, together) = (cached.clone(), token.clone(), together.clone());
        tasks.push(tokio::spawn(async move {
            let guard = RequireAuthLayer::new(authx);
            together.wait().await;
            status(guard, &token).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(introspections(&tls, &provider.iss).await - before, 1);

    // 10,000 distinct random tokens: the provider sees no more calls than
    // the bound allows; the rest are answered 503 at once.
    let bounded = introspecting(
        &provider,
        &tls,
        Introspection::discovered(basic())
            .max_calls_per_second(40)
            .max_in_flight(8),
    )
    .await;
    let before = introspections(&tls, &provider.iss).await;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..20 {
        let authx = bounded.clone();
        tasks.push(tokio::spawn(async move {
            let mut shed = 0;
            for i in 0..500 {
                let token = format!("{:032x}", rand_token(worker, i));
                match status(RequireAuthLayer::new(authx.clone()), &token).await {
                    StatusCode::UNAUTHORIZED => {}
                    StatusCode::SERVICE_UNAVAILABLE => shed += 1,
                    other => panic!("{other}"),
                }
            }
            shed
        }));
    }
    let mut shed = 0;
    for task in tasks {
        shed += task.await.unwrap();
    }
    let seconds = started.elapsed().as_secs() + 1;
    let calls = introspections(&tls, &provider.iss).await - before;
    println!("10,000 random tokens: {calls} introspections in {seconds} s, {shed} answered 503");
    assert!(calls <= 40 * seconds, "{calls} calls in {seconds} s");
    assert_eq!(calls + shed, 10_000);

    // The provider down: 503 (fail closed), and back once it is.
    drop(provider);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status(RequireAuthLayer::new(uncached.clone()), &token).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let provider = start_with(&dir, "ES256", port, &files, &env).await;
    // Its tokens lived in its memory: a new one.
    let token = opaque_token(&tls, &provider.iss).await;
    assert_eq!(
        status(RequireAuthLayer::new(uncached), &token).await,
        StatusCode::OK
    );
}

/// A token-shaped random value, distinct for each (worker, i).
fn rand_token(worker: u64, i: u64) -> u128 {
    let seed = (u128::from(worker) << 64 | u128::from(i))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
    seed ^ u128::from(std::process::id())
}

/// Issue 38, finding 2: two providers behind one resource server, the
/// operator's rule naming the one whose opaque tokens are introspected
/// (INTROSPECTION_ISSUER): provider B never receives A's tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_providers_and_an_opaque_token_goes_to_one_endpoint_only() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files_a, ca) = with_ca("two-issuers-a");
    let files_b = Files::new(&pki, "two-issuers-b");
    let a = start(&dir, "ES256", free_port(), &files_a).await;
    let b = start(&dir, "ES256", free_port(), &files_b).await;
    let issuers = format!("{},{}", a.iss, b.iss);
    let base = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("OIDC_ISSUER", issuers.as_str()),
        ("AUDIENCE", AUDIENCE),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
        ("INTROSPECTION_CLIENT_ID", "resource-server"),
        ("INTROSPECTION_CLIENT_SECRET", "rs-secret"),
        ("INTROSPECTION_ISSUER", a.iss.as_str()),
    ];
    let (_child, addr) = run_example(&binary, &base).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let (a_before, b_before) = (
        introspections(&tls, &a.iss).await,
        introspections(&tls, &b.iss).await,
    );
    for _ in 0..3 {
        let opaque = opaque_token(&tls, &a.iss).await;
        let (status, body) = send(addr.clone(), "/read", format!("Bearer {opaque}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // B's JWTs still verify with B's keys, without a call anywhere.
    let jwt = token(&tls, &b.iss, "read", AUDIENCE).await;
    let (status, body) = send(addr.clone(), "/read", format!("Bearer {jwt}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(introspections(&tls, &a.iss).await - a_before >= 3);
    assert_eq!(
        introspections(&tls, &b.iss).await - b_before,
        0,
        "provider B received A's tokens"
    );
}

/// The resource_server example introspects what is not a JWT, with
/// INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_server_example_introspects_opaque_tokens() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("example-introspection");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let env = [
        ("INTROSPECTION_CLIENT_ID", "resource-server"),
        ("INTROSPECTION_CLIENT_SECRET", "rs-secret"),
        ("INTROSPECTION_CACHE_SECS", "30"),
    ];
    let (_child, addr) = resource_server(&binary, &provider, &ca, &env).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let opaque = opaque_token(&tls, &provider.iss).await;
    let (status, body) = send(addr.clone(), "/read", format!("Bearer {opaque}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("opaque-client"), "{body}");
    let (status, _) = send(addr.clone(), "/admin", format!("Bearer {opaque}"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // JWTs still verify with the keys; garbage is refused.
    let jwt = token(&tls, &provider.iss, "read", AUDIENCE).await;
    assert_eq!(
        send(addr.clone(), "/read", format!("Bearer {jwt}"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(addr.clone(), "/read", "Bearer not-a-token".into(), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// Issue 43, item 1, over TCP: 16 connections from one address send made-up
/// opaque tokens to the resource_server example as fast as it answers, for
/// 8 s; beside them a client from another address presents new (uncached)
/// opaque tokens from the provider, and at least 95% of its probes are
/// answered 200: the flood spends only its own share of the introspection
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_introspection_flood_from_one_address_leaves_another_clients_tokens_answered() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("introspection-flood");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let env = [
        ("INTROSPECTION_CLIENT_ID", "resource-server"),
        ("INTROSPECTION_CLIENT_SECRET", "rs-secret"),
    ];
    let (_child, addr) = resource_server(&binary, &provider, &ca, &env).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for worker in 0..16u64 {
        let (addr, stop) = (addr.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let mut sender = support::http1(stream).await;
            let (mut sent, mut shed) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let token = format!("{:032x}", rand_token(worker, sent));
                let request = Request::get("/read")
                    .header("host", &addr)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Full::<Bytes>::default())
                    .unwrap();
                let Ok(res) = sender.send_request(request).await else {
                    break;
                };
                shed += u64::from(res.status() == StatusCode::SERVICE_UNAVAILABLE);
                let _ = res.into_body().collect().await;
                sent += 1;
            }
            (sent, shed)
        }));
    }
    let flooded = std::time::Instant::now();
    let (mut probes, mut answered) = (0, 0);
    while flooded.elapsed() < Duration::from_secs(8) {
        let token = opaque_token(&tls, &provider.iss).await;
        let stream = tokio::net::TcpSocket::new_v4().unwrap();
        stream.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let stream = stream.connect(addr.parse().unwrap()).await.unwrap();
        let mut sender = support::http1(stream).await;
        let request = Request::get("/read")
            .header("host", &addr)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let status = sender.send_request(request).await.unwrap().status();
        probes += 1;
        answered += u32::from(status == StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut sent, mut shed) = (0, 0);
    for worker in flood {
        let (s, d) = worker.await.unwrap();
        sent += s;
        shed += d;
    }
    println!(
        "flood: {sent} made-up tokens, {shed} shed (503); probes: {answered} of {probes} answered 200"
    );
    assert!(shed > 0, "the flood never reached its share: no test");
    assert!(
        answered * 100 >= probes * 95,
        "{answered} of {probes} probes answered 200 during the flood"
    );
}

/// Issue 43, item 7: with `JWKS_SAVE_DIR`, the resource_server example keeps
/// its provider's last good keys in a file; restarted while the provider is
/// down, it serves the provider's tokens from them (200) where a restart
/// without the file answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_while_the_provider_is_down_serves_from_the_saved_keys() {
    let Some(dir) = provider_dir() else { return };
    let Some(binary) = example("resource_server") else {
        return;
    };
    let (pki, files, ca) = with_ca("saved-keys");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let saved = std::env::temp_dir().join(format!("authx-saved-keys-{}", std::process::id()));
    std::fs::create_dir_all(&saved).unwrap();
    let save = [("JWKS_SAVE_DIR", saved.to_str().unwrap())];
    let tls = tls::client_trusting(pki.ca_der.clone());
    let token = token(&tls, &provider.iss, "read", AUDIENCE).await;
    let read = |addr: String| {
        let bearer = format!("Bearer {token}");
        async move { send(addr, "/read", bearer, None).await }
    };
    {
        let (_first, addr) = resource_server(&binary, &provider, &ca, &save).await;
        let (status, body) = read(addr).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let started = std::time::Instant::now();
        while std::fs::read_dir(&saved).unwrap().count() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no key file written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let iss = provider.iss.clone();
    drop(provider);
    let down = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("OIDC_ISSUER", iss.as_str()),
        ("AUDIENCE", AUDIENCE),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    let (_restarted, addr) = run_example(&binary, &[&down[..], &save[..]].concat()).await;
    let (status, body) = read(addr).await;
    assert_eq!(status, StatusCode::OK, "from the saved keys: {body}");
    let (_without, addr) = run_example(&binary, &down).await;
    let (status, _) = read(addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "without them");
    let _ = std::fs::remove_dir_all(&saved);
}

// Token exchange (RFC 8693): a service (A) calls another (B) on its caller's
// behalf with a token exchanged at the provider, never the caller's own.

/// The downstream service's name at the provider: the exchanged token's `aud`.
const ORDERS: &str = "https://orders.example";

/// The gateway's exchange at `iss`'s discovered token endpoint, as client
/// `gateway`, shaped by `shape` (audience, scope, actor, DPoP).
async fn gateway_exchange(
    iss: &str,
    tls: &rustls::ClientConfig,
    shape: impl FnOnce(tower_authx::exchange::ExchangeConfig) -> tower_authx::exchange::ExchangeConfig,
) -> tower_authx::exchange::TokenExchange {
    let config = tower_authx::exchange::ExchangeConfig::discover_with_tls(
        iss,
        tower_authx::ClientAuth::secret_basic("gateway", "gateway-secret"),
        tls.clone(),
    )
    .await
    .unwrap();
    tower_authx::exchange::TokenExchange::new(shape(config)).unwrap()
}

/// A plain-HTTP hyper client whose requests go through `exchange`'s layer.
type ExchangingClient = tower_authx::exchange::TokenExchangeService<
    hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
>;

fn exchanging_client(exchange: &tower_authx::exchange::TokenExchange) -> ExchangingClient {
    tower::ServiceBuilder::new()
        .layer(exchange.layer())
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        )
}

/// `token` of `iss`, verified, as the caller a gateway exchanges for.
async fn caller_of(
    iss: &str,
    tls: &rustls::ClientConfig,
    token: &str,
) -> tower_authx::exchange::Caller {
    let verifier = AuthX::new(AuthXConfig::from_issuers([discovered(iss, tls).await])).unwrap();
    let claims: tower_authx::Claims = verifier
        .verify(token, &tower_authx::Requirement::access())
        .await
        .unwrap();
    tower_authx::exchange::Caller::new(token, &claims)
}

/// `GET url` for `caller`, through `client`.
async fn get_for(
    client: &ExchangingClient,
    url: String,
    caller: &tower_authx::exchange::Caller,
) -> Result<Response<hyper::body::Incoming>, tower_authx::exchange::BoxError> {
    let mut call = Request::get(url).body(Full::<Bytes>::default()).unwrap();
    call.extensions_mut().insert(caller.clone());
    client.clone().oneshot(call).await
}

/// The form of RFC 8693 2.1 as a server received it: a delegation of
/// `subject` for [`ORDERS`], scope `read`, with an actor token.
fn assert_delegation_form(last: &serde_json::Value, subject: &str) {
    assert_eq!(
        last["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(last["subject_token"], subject);
    let access_token = "urn:ietf:params:oauth:token-type:access_token";
    assert_eq!(last["subject_token_type"], access_token);
    assert_eq!(last["actor_token_type"], access_token);
    assert_eq!(last["audience"], ORDERS);
    assert_eq!(last["scope"], "read");
}

/// Serves `service` over TCP on loopback (HTTP/1.1); its base URL.
async fn serve<S, B>(service: S) -> String
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, service)
}

/// [`serve`] on `listener`, bound by the caller (who needed its address).
fn serve_on<S, B>(listener: tokio::net::TcpListener, service: S) -> String
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| service.clone().oneshot(req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// B: takes only tokens for [`ORDERS`] from `iss` that the gateway acts
/// with (`act.sub`, and no other actor in the chain); answers each token's
/// payload as JSON and counts what it was sent.
async fn orders_service(
    iss: &str,
    tls: &rustls::ClientConfig,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    let found = Issuer::discover_with(iss, tls.clone()).await.unwrap();
    let authx = AuthX::new(AuthXConfig::from_issuers([Issuer::new(
        found.iss(),
        found.keys().clone(),
    )
    .audience(ORDERS)]))
    .unwrap();
    let echo = service_fn(move |req: Request<hyper::body::Incoming>| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let token = req.headers()["authorization"].to_str().unwrap();
            let token = token.strip_prefix("Bearer ").unwrap();
            let payload = support::payload_of(token);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(payload.to_string()))))
        }
    });
    // The guard counts nothing: B's own count is of what passed the guard.
    let requirement = tower_authx::Requirement::access()
        .actor("gateway")
        .rule(tower_authx::Rule::actors_among(["gateway"]));
    let counted = authx.guard(requirement).unwrap().layer(echo);
    serve(counted).await
}

/// A: guarded for [`AUDIENCE`]; `GET /relay` calls B's `/read` through
/// `exchange`'s layer and answers B's status and body (502 and the error
/// when there is no exchanged token).
async fn gateway_service(
    iss: &str,
    tls: &rustls::ClientConfig,
    exchange: tower_authx::exchange::TokenExchange,
    downstream: String,
) -> String {
    let authx = AuthX::new(AuthXConfig::from_issuers([discovered(iss, tls).await])).unwrap();
    let client = exchanging_client(&exchange);
    let handler_authx = authx.clone();
    let relay = service_fn(move |req: Request<hyper::body::Incoming>| {
        let (authx, client, downstream) =
            (handler_authx.clone(), client.clone(), downstream.clone());
        async move {
            let caller = authx
                .caller::<tower_authx::NoExtra>(tower_authx::RequestHead::of(&req))
                .expect("the guard admitted a caller");
            let mut call = Request::get(format!("{downstream}/read"))
                .body(Full::<Bytes>::default())
                .unwrap();
            call.extensions_mut().insert(caller);
            Ok::<_, Infallible>(match client.oneshot(call).await {
                Ok(answer) => {
                    let status = answer.status();
                    let body = answer.into_body().collect().await.unwrap().to_bytes();
                    Response::builder()
                        .status(status)
                        .body(Full::new(body))
                        .unwrap()
                }
                Err(error) => Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(Full::new(Bytes::from(error.to_string())))
                    .unwrap(),
            })
        }
    });
    serve(RequireAuthLayer::new(authx).layer(relay)).await
}

/// `GET url` with `token` as Bearer (none when empty): the status and the body.
async fn get_with(url: &str, token: &str) -> (StatusCode, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut request = Request::get(url);
    if !token.is_empty() {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::default()).unwrap();
    let answer = client.request(request).await.unwrap();
    let status = answer.status();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Issue 40, over TCP against panva's oidc-provider with an RFC 8693 grant
/// registered through its `registerGrantType`: the form the provider
/// receives; the audience switched (B takes the exchanged token, refuses the
/// caller's); `act` names the gateway; a hundred concurrent requests of one
/// caller make one exchange; the provider down is an error to the handler and
/// nothing reaches B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_calls_another_on_its_callers_behalf_with_an_exchanged_token() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let Some(dir) = provider_dir() else { return };
    let pki = tls::pki();
    let files = Files::new(&pki, "exchange");
    let tls = tls::client_trusting(pki.ca_der.clone());
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let iss = provider.iss.clone();

    let b_calls = Arc::new(AtomicUsize::new(0));
    let b = orders_service(&iss, &tls, b_calls.clone()).await;
    let exchange = gateway_exchange(&iss, &tls, |config| {
        config.audience(ORDERS).scope("read").act_as_client(None)
    })
    .await;
    let a = gateway_service(&iss, &tls, exchange, b.clone()).await;

    let caller = token(&tls, &iss, "read", AUDIENCE).await;
    // The caller's own token is not B's.
    assert_eq!(
        get_with(&format!("{b}/read"), &caller).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(b_calls.load(Ordering::SeqCst), 0);

    let (status, body) = get_with(&format!("{a}/relay"), &caller).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["aud"], ORDERS, "{sent}");
    assert_eq!(sent["sub"], support::payload_of(&caller)["sub"], "{sent}");
    assert_eq!(sent["act"]["sub"], "gateway", "{sent}");
    assert_eq!(sent["scope"], "read", "{sent}");

    // RFC 8693 2.1's form, as the provider received it.
    let seen = provider_json(&tls, &format!("{iss}/test/exchanges")).await;
    assert_delegation_form(&seen["last"], &caller);
    assert_ne!(seen["last"]["actor_token"], caller.as_str());
    assert_eq!(seen["count"], 1);

    // Impersonation, not delegation (no actor token): B refuses it.
    let plain = gateway_exchange(&iss, &tls, |config| config.audience(ORDERS)).await;
    let impersonating = plain
        .exchange(&caller_of(&iss, &tls, &caller).await)
        .await
        .unwrap();
    assert_eq!(
        support::payload_of(impersonating.token())["aud"],
        ORDERS,
        "a token for B"
    );
    let (status, _) = get_with(&format!("{b}/read"), impersonating.token()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no act: refused");
    let seen = provider_json(&tls, &format!("{iss}/test/exchanges")).await;
    assert_eq!(seen["count"], 2);

    // Cached: the same caller again makes no exchange.
    assert_eq!(
        get_with(&format!("{a}/relay"), &caller).await.0,
        StatusCode::OK
    );
    // A hundred concurrent requests of a new caller: one exchange.
    let other = token(&tls, &iss, "read", AUDIENCE).await;
    let relays = (0..100).map(|_| {
        let (a, other) = (a.clone(), other.clone());
        tokio::spawn(async move { get_with(&format!("{a}/relay"), &other).await.0 })
    });
    for relay in relays {
        assert_eq!(relay.await.unwrap(), StatusCode::OK);
    }
    let seen = provider_json(&tls, &format!("{iss}/test/exchanges")).await;
    assert_eq!(seen["count"], 3, "one exchange per caller");

    // The provider down: an error to the handler, and nothing reaches B.
    let stranded = token(&tls, &iss, "read", AUDIENCE).await;
    drop(provider);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b_calls.load(Ordering::SeqCst);
    let (status, body) = get_with(&format!("{a}/relay"), &stranded).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("token exchange unavailable"), "{body}");
    assert_eq!(
        b_calls.load(Ordering::SeqCst),
        before,
        "nothing sent downstream"
    );
}

/// Issue 40's examples, over TCP against the provider: `on_behalf_of` relays
/// a caller's `GET /relay` to `resource_server`'s `/read` (run with
/// `REQUIRE_ACTOR=gateway`) with an exchanged token; the downstream refuses
/// the caller's own token and a token for it in which no one acts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_behalf_of_example_calls_the_resource_server_example_with_an_exchanged_token() {
    let Some(dir) = provider_dir() else { return };
    let (Some(gateway), Some(downstream)) = (example("on_behalf_of"), example("resource_server"))
    else {
        return;
    };
    let (pki, files, ca) = with_ca("on-behalf-of");
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let tls = tls::client_trusting(pki.ca_der.clone());
    let (_orders, orders) = resource_server(
        &downstream,
        &provider,
        &ca,
        &[("AUDIENCE", ORDERS), ("REQUIRE_ACTOR", "gateway")],
    )
    .await;
    let (_gateway, gateway) = run_example(
        &gateway,
        &[
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("OIDC_ISSUER", provider.iss.as_str()),
            ("AUDIENCE", AUDIENCE),
            ("SSL_CERT_FILE", ca.to_str().unwrap()),
            ("DOWNSTREAM_URL", &format!("http://{orders}")),
            ("EXCHANGE_CLIENT_ID", "gateway"),
            ("EXCHANGE_CLIENT_SECRET", "gateway-secret"),
            ("EXCHANGE_AUDIENCE", ORDERS),
            ("EXCHANGE_SCOPE", "read"),
        ],
    )
    .await;
    let caller = token(&tls, &provider.iss, "read", AUDIENCE).await;
    let (status, body) = get_with(&format!("http://{gateway}/relay"), &caller).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["actor"], "gateway", "{answer}");
    assert_eq!(answer["subject"], "api-client", "{answer}");
    assert_eq!(answer["scopes"], serde_json::json!(["read"]), "{answer}");
    // Without a token, nothing is exchanged.
    let (status, _) = get_with(&format!("http://{gateway}/relay"), "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The caller's own token, and a token for the downstream in which no one
    // acts, are refused there.
    let (status, _) = get_with(&format!("http://{orders}/read"), &caller).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let undelegated = token(&tls, &provider.iss, "read", ORDERS).await;
    let (status, body) = get_with(&format!("http://{orders}/read"), &undelegated).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The provider down: 502, the caller's token never sent.
    let other = token(&tls, &provider.iss, "read", AUDIENCE).await;
    drop(provider);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get_with(&format!("http://{gateway}/relay"), &other).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
}

/// Issue 40: a downstream 401 `invalid_token` (the exchanged token revoked
/// there, say) drops the cached token, and the request goes once more with a
/// new one; a second refusal is the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_refusal_of_the_exchanged_token_is_retried_once_with_a_new_one() {
    use std::sync::{Arc, Mutex};

    let Some(dir) = provider_dir() else { return };
    let pki = tls::pki();
    let files = Files::new(&pki, "exchange-retry");
    let tls = tls::client_trusting(pki.ca_der.clone());
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let iss = provider.iss.clone();
    // Refuses the first token it is sent (as if revoked there); with
    // `refuse_all`, every token.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let refuse_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let downstream = {
        let (seen, refuse_all) = (seen.clone(), refuse_all.clone());
        serve(service_fn(move |req: Request<hyper::body::Incoming>| {
            let token = req.headers()["authorization"].to_str().unwrap().to_owned();
            let mut seen = seen.lock().unwrap();
            let first = seen.first().is_none_or(|revoked| *revoked == token);
            seen.push(token);
            let refuse = first || refuse_all.load(std::sync::atomic::Ordering::SeqCst);
            let answer = if refuse {
                Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header("www-authenticate", r#"Bearer error="invalid_token""#)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            } else {
                Response::new(Full::new(Bytes::from_static(b"{}")))
            };
            async move { Ok::<_, Infallible>(answer) }
        }))
        .await
    };
    let exchange = gateway_exchange(&iss, &tls, |config| config.audience(ORDERS)).await;
    let client = exchanging_client(&exchange);
    let token = token(&tls, &iss, "read", AUDIENCE).await;
    let caller = caller_of(&iss, &tls, &token).await;
    let call = || get_for(&client, format!("{downstream}/read"), &caller);
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_ne!(seen[0], seen[1], "a new token the second time");
        assert!(
            !seen.iter().any(|sent| sent.contains(&token)),
            "never the caller's"
        );
    }
    let exchanges = provider_json(&tls, &format!("{iss}/test/exchanges")).await;
    assert_eq!(exchanges["count"], 2);
    // Refused again after the retry: the refusal is the answer, one retry only.
    refuse_all.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(call().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(seen.lock().unwrap().len(), 4);
    let exchanges = provider_json(&tls, &format!("{iss}/test/exchanges")).await;
    assert_eq!(exchanges["count"], 3);
}

/// Issue 40, independently: the same exchange against @jmondi/oauth2-server's
/// own TokenExchangeGrant (`tests/oidc/jmondi_exchange.mjs`), whose answers
/// carry no `issued_token_type`. The caller's token is one tower-authx
/// issued (HS256, shared with the server); the downstream takes only the
/// exchanged token, for it, with the gateway acting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_works_against_jmondi_oauth2_server_too() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower_authx::exchange::{Caller, ExchangeConfig, TokenExchange};
    use tower_authx::{ClientAuth, Requirement};

    const SECRET: &str = "a shared secret of thirty-two bytes or more";
    const ISSUER: &str = "https://authx.example";
    let Some((_node, server)) = support::jmondi_exchange(SECRET, ISSUER).await else {
        return;
    };

    let users = AuthX::new(AuthXConfig::from_secret(SECRET).unwrap().issuer(ISSUER)).unwrap();
    let orders = AuthX::new(
        AuthXConfig::from_secret(SECRET)
            .unwrap()
            .issuer(ISSUER)
            .audience(ORDERS),
    )
    .unwrap();
    let b_calls = Arc::new(AtomicUsize::new(0));
    let b = {
        let calls = b_calls.clone();
        let echo = service_fn(move |req: Request<hyper::body::Incoming>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let token = req.headers()["authorization"].to_str().unwrap().to_owned();
            let payload = support::payload_of(token.strip_prefix("Bearer ").unwrap());
            async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(payload.to_string()))))
            }
        });
        let guard = orders
            .guard(Requirement::access().actor("gateway"))
            .unwrap();
        serve(guard.layer(echo)).await
    };
    let config = || {
        ExchangeConfig::at(
            &format!("{server}/token"),
            ClientAuth::secret_basic("gateway", "gateway-secret"),
        )
        .unwrap()
        .audience(ORDERS)
        .scope("read")
    };
    let delegating = TokenExchange::new(config().act_as_client(None)).unwrap();
    let client = tower::ServiceBuilder::new()
        .layer(delegating.layer())
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let caller_of = |user: &str| {
        let token = users.access_token(user).issue().unwrap();
        let claims: tower_authx::Claims = users
            .verify_offline(&token, &Requirement::access())
            .unwrap();
        (token.clone(), Caller::new(&token, &claims))
    };
    let call = |caller: Caller| {
        let mut call = Request::get(format!("{b}/read"))
            .body(Full::<Bytes>::default())
            .unwrap();
        call.extensions_mut().insert(caller);
        client.clone().oneshot(call)
    };

    let (alice_token, alice) = caller_of("alice");
    assert_eq!(
        get_with(&format!("{b}/read"), &alice_token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let answer = call(alice.clone()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent["aud"], ORDERS, "{sent}");
    assert_eq!(sent["sub"], "alice", "{sent}");
    assert_eq!(sent["act"]["sub"], "gateway", "{sent}");
    assert_eq!(sent["scope"], "read", "{sent}");

    let seen = provider_json_http(&format!("{server}/test/exchanges")).await;
    assert_delegation_form(&seen["last"], &alice_token);
    assert_eq!(seen["count"], 1);

    // Fifty concurrent calls for a new caller: one exchange.
    let (_, bob) = caller_of("bob");
    let calls: Vec<_> = (0..50).map(|_| tokio::spawn(call(bob.clone()))).collect();
    for one in calls {
        assert_eq!(one.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    let seen = provider_json_http(&format!("{server}/test/exchanges")).await;
    assert_eq!(seen["count"], 2);

    // Without an actor token the server impersonates: the downstream refuses it.
    let impersonating = TokenExchange::new(config())
        .unwrap()
        .exchange(&alice)
        .await
        .unwrap();
    assert_eq!(
        get_with(&format!("{b}/read"), impersonating.token())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // A caller the server does not trust: refused there, nothing sent downstream.
    let stranger = AuthX::new(AuthXConfig::from_secret([9u8; 32]).unwrap().issuer(ISSUER)).unwrap();
    let token = stranger.access_token("mallory").issue().unwrap();
    let claims: tower_authx::Claims = stranger
        .verify_offline(&token, &Requirement::access())
        .unwrap();
    let before = b_calls.load(Ordering::SeqCst);
    let error = call(Caller::new(&token, &claims)).await.unwrap_err();
    let refusal = error
        .downcast_ref::<tower_authx::exchange::ExchangeError>()
        .unwrap();
    assert!(
        matches!(refusal, tower_authx::exchange::ExchangeError::Refused { error, .. } if error == "invalid_grant"),
        "{refusal:?}"
    );
    assert_eq!(b_calls.load(Ordering::SeqCst), before);
}

/// The JSON a plain-HTTP test server answers a GET of `url`.
async fn provider_json_http(url: &str) -> serde_json::Value {
    let (status, body) = get_with(url, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Issue 40, sender-constrained downstream: the exchange carries a DPoP
/// proof of the gateway's key (the provider first asks for a nonce), the
/// provider binds the exchanged token to it, and the downstream (DPoP
/// required, with nonces of its own) takes it with a fresh proof on each call
/// and refuses it without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanged_token_bound_to_the_gateways_dpop_key_goes_with_a_proof() {
    use tower_authx::{Algorithm, Dpop, DpopSigner};

    let Some(dir) = provider_dir() else { return };
    let pki = tls::pki();
    let files = Files::new(&pki, "exchange-dpop");
    let tls = tls::client_trusting(pki.ca_der.clone());
    let nonce = std::path::Path::new("as-nonce-1");
    let provider = start_with(
        &dir,
        "ES256",
        free_port(),
        &files,
        &[("EXCHANGE_DPOP_NONCE", nonce)],
    )
    .await;
    let iss = provider.iss.clone();

    // B: DPoP required, nonces of its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_url = format!("http://{}", listener.local_addr().unwrap());
    let found = Issuer::discover_with(&iss, tls.clone()).await.unwrap();
    let orders = AuthX::new(
        AuthXConfig::from_issuers(
            [Issuer::new(found.iss(), found.keys().clone()).audience(ORDERS)],
        )
        .dpop(Dpop::new(b_url.clone()).required(true).nonces(
            b"the downstream's nonce secret, 32+ bytes",
            Duration::from_secs(300),
        )),
    )
    .unwrap();
    let echo = service_fn(|req: Request<hyper::body::Incoming>| async move {
        let token = req.headers()["authorization"].to_str().unwrap().to_owned();
        let payload = support::payload_of(token.strip_prefix("DPoP ").unwrap());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(payload.to_string()))))
    });
    let b = serve_on(listener, RequireAuthLayer::new(orders).layer(echo));

    let signer =
        DpopSigner::new(support::private_key(Algorithm::ES256, "ec256_private.pem")).unwrap();
    let jkt = signer.thumbprint().to_owned();
    let exchange =
        gateway_exchange(&iss, &tls, |config| config.audience(ORDERS).dpop(signer)).await;
    let client = exchanging_client(&exchange);
    let token = token(&tls, &iss, "read", AUDIENCE).await;
    let caller = caller_of(&iss, &tls, &token).await;
    let call = || get_for(&client, format!("{b}/read"), &caller);
    for round in 0..3 {
        let answer = call().await.unwrap();
        let status = answer.status();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            status,
            StatusCode::OK,
            "round {round}: {}",
            String::from_utf8_lossy(&body)
        );
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["cnf"]["jkt"], jkt.as_str(), "{sent}");
        assert_eq!(sent["aud"], ORDERS, "{sent}");
    }
    let seen = provider_json(&tls, &format!("{iss}/test/exchanges")).await;
    assert_eq!(seen["count"], 2, "one request for the nonce, one with it");

    // The bound token alone, as DPoP without a proof or as Bearer: refused.
    let bound = exchange.exchange(&caller).await.unwrap();
    assert!(bound.authorization().to_str().unwrap().starts_with("DPoP "));
    let (status, _) = get_with(&format!("{b}/read"), bound.token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Issue 40: an exchanged token is never used past its end (less a margin
/// of 5 s): with the provider's tokens living 7 s, the second call within the
/// first seconds is a cache hit, and one past 2 s exchanges again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanged_token_is_not_used_past_its_end() {
    let Some(dir) = provider_dir() else { return };
    let pki = tls::pki();
    let files = Files::new(&pki, "exchange-ttl");
    let tls = tls::client_trusting(pki.ca_der.clone());
    let ttl = std::path::Path::new("7");
    let provider = start_with(&dir, "ES256", free_port(), &files, &[("EXCHANGE_TTL", ttl)]).await;
    let iss = provider.iss.clone();
    let exchange = gateway_exchange(&iss, &tls, |config| config.audience(ORDERS)).await;
    let token = token(&tls, &iss, "read", AUDIENCE).await;
    let caller = caller_of(&iss, &tls, &token).await;
    let count = || async {
        provider_json(&tls, &format!("{iss}/test/exchanges")).await["count"]
            .as_u64()
            .unwrap()
    };
    let first = exchange.exchange(&caller).await.unwrap();
    let exp = support::payload_of(first.token())["exp"].as_u64().unwrap();
    let again = exchange.exchange(&caller).await.unwrap();
    assert_eq!(again.token(), first.token());
    assert_eq!(count().await, 1);
    // Past exp - 5 s: a new one.
    while support::now() + 5 < exp {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let later = exchange.exchange(&caller).await.unwrap();
    assert_ne!(later.token(), first.token());
    assert_eq!(count().await, 2);
}

/// Issue 42: a sample of the resource-server checks run once behind panva's
/// oidc-provider and once behind the crate's `MockIssuer`, with the same
/// outcomes: a client's token on a plain, a scoped and an admin route, a
/// token for another audience, garbage, and no token.
#[cfg(feature = "test-util")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_issuer_and_oidc_provider_give_the_same_outcomes() {
    use tower_authx::testing::MockIssuer;

    let Some(dir) = provider_dir() else { return };
    let pki = tls::pki();
    let files = Files::new(&pki, "sample");
    let tls = tls::client_trusting(pki.ca_der.clone());
    let provider = start(&dir, "ES256", free_port(), &files).await;
    let mock = MockIssuer::start(AUDIENCE).await.unwrap();

    /// The statuses of the sample, for one issuer's tokens.
    async fn outcomes(authx: AuthX, read: String, elsewhere: String) -> Vec<StatusCode> {
        let any = || RequireAuthLayer::new(authx.clone());
        let scoped = || RequireScopesLayer::all(authx.clone(), ["read"]);
        let admin = || RequireScopesLayer::all(authx.clone(), ["admin:users"]);
        vec![
            status(any(), &read).await,
            status(scoped(), &read).await,
            status(admin(), &read).await,
            status(any(), &elsewhere).await,
            status(any(), "abc.def.ghi").await,
            status(any(), "").await,
        ]
    }
    let behind_provider = AuthX::new(AuthXConfig::from_issuers([
        discovered(&provider.iss, &tls).await
    ]))
    .unwrap();
    let from_provider = outcomes(
        behind_provider,
        token(&tls, &provider.iss, "read", AUDIENCE).await,
        token(&tls, &provider.iss, "read", "https://billing.example").await,
    )
    .await;
    let behind_mock = AuthX::new(AuthXConfig::from_issuers([mock.issuer().unwrap()])).unwrap();
    let from_mock = outcomes(
        behind_mock,
        mock.token().subject("api-client").scope("read").issue(),
        mock.token()
            .scope("read")
            .audience("https://billing.example")
            .issue(),
    )
    .await;
    assert_eq!(
        from_provider,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::FORBIDDEN,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::BAD_REQUEST,
        ]
    );
    assert_eq!(from_mock, from_provider);
}
