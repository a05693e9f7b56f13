//! Shared test harness: the example servers as real processes on ephemeral ports,
//! and a real hyper client over TCP.
#![allow(dead_code)]

pub mod dpop;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The status `RequireAuthLayer::new(authx)` answers in process (a service
/// that answers 200 behind it) for a request bearing `token`.
pub async fn guarded_status(authx: &tower_authx::AuthX, token: &str) -> StatusCode {
    use tower::{Layer, ServiceExt};
    let service = tower_authx::RequireAuthLayer::new(authx.clone()).layer(tower::service_fn(
        |_req: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
        },
    ));
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    service.oneshot(request).await.unwrap().status()
}

/// The secret the tests give the example (32 bytes, so no weak-secret warning).
pub const SECRET: &str = "tower-authx-test-secret-32-bytes";

/// A built example, found beside the test binary (`cargo test` builds examples).
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target_profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = target_profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: run through `cargo test`",
        path.display()
    );
    path
}

/// A running example server; killed when dropped.
pub struct Server {
    pub addr: String,
    _child: Option<Child>,
}

impl Server {
    /// Starts `examples/<name>` on 127.0.0.1 with an ephemeral port and waits for
    /// its "listening on http://ADDR" line.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(example_path(name));
        cmd.env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("JWT_SECRET_KEY", SECRET);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn example");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    return addr.to_owned();
                }
            }
            panic!("{name} exited before listening");
        })
        .await
        .expect("example did not start in time");
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server {
            addr,
            _child: Some(child),
        }
    }

    /// The server process's resident memory (KiB, from /proc), if it is ours.
    pub fn resident_kib(&self) -> Option<u64> {
        let pid = self._child.as_ref()?.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// A server somebody else runs at `addr`.
    pub fn at(addr: String) -> Server {
        Server { addr, _child: None }
    }

    pub fn request(&self, method: Method, path: &str) -> Call {
        Call {
            addr: self.addr.clone(),
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    /// Logs in as user1 and returns (fresh access token, refresh token).
    pub async fn login(&self) -> (String, String) {
        let json = self.login_json().await;
        (
            json["fresh_token"].as_str().unwrap().to_owned(),
            json["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Logs in as user1 and returns the fresh access token (all the seed answers).
    pub async fn login_fresh(&self) -> String {
        self.login_json().await["fresh_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn login_json(&self) -> Value {
        self.login_as("user1", "password1").await
    }

    /// Logs in as `username` and returns the login's JSON.
    pub async fn login_as(&self, username: &str, password: &str) -> Value {
        let res = self
            .post("/login")
            .header("content-type", "application/json")
            .body(serde_json::json!({"username": username, "password": password}).to_string())
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()
    }
}

/// One request, sent with a real hyper client over its own TCP connection.
pub struct Call {
    addr: String,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Call {
    /// Appends a header; raw bytes allowed, so hostile values can be sent.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_bytes(value.as_ref()).expect("header value"),
        );
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> Reply {
        let stream = TcpStream::connect(&self.addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::new(Full::new(self.body));
        *req.method_mut() = self.method;
        *req.uri_mut() = self.path.parse().expect("request path");
        *req.headers_mut() = self.headers;
        req.headers_mut()
            .insert("host", HeaderValue::from_str(&self.addr).expect("host"));
        let res = sender.send_request(req).await.expect("response");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn detail(&self) -> String {
        self.json()["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn challenge(&self) -> String {
        self.headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

/// Signs any header and payload JSON with HS256 under `secret`: tokens no
/// well-behaved issuer would write, for the attack cases.
pub fn forge(header: &str, payload: &str, secret: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let message = format!("{}.{}", b64.encode(header), b64.encode(payload));
    format!(
        "{message}.{}",
        b64.encode(hs256(secret, message.as_bytes()))
    )
}

/// The HS256 tag of `message` under `secret` (hmac and sha2 directly, not the
/// crate under test).
pub fn hs256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Now, in Unix seconds with a fraction.
pub fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A standard HS256 header.
pub const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// A Python with authx, flask-jwt-extended, fastapi and uvicorn: the one in
/// `TOWER_AUTHX_PYTHON`; else `python3` if it has them; else the repository's
/// own venv (`target/interop-venv`, as `.ci/run` makes it), made here from
/// `tests/interop/requirements.txt` when `python3` can make one. `None` means
/// skip, which CI (`CI` set) does not allow.
pub fn python() -> Option<PathBuf> {
    let usable = has_interop_packages;
    if let Some(chosen) = std::env::var_os("TOWER_AUTHX_PYTHON").map(PathBuf::from) {
        if usable(&chosen) {
            return Some(chosen);
        }
    } else if usable("python3".as_ref()) {
        return Some("python3".into());
    } else if let Some(venv) = interop_venv()
        && usable(&venv)
    {
        return Some(venv);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs the Python interop packages: set TOWER_AUTHX_PYTHON to a python with authx==1.7.1, \
         flask-jwt-extended==4.7.1, fastapi and uvicorn (see .ci/run)"
    );
    skipped(
        "no python with authx and flask-jwt-extended, and none could be made (set TOWER_AUTHX_PYTHON)",
    );
    None
}

/// @jmondi/oauth2-server's token exchange (`tests/oidc/jmondi_exchange.mjs`)
/// on a free loopback port, signing HS256 with `secret` as `issuer`: the
/// node process (killed when dropped) and its URL. `None` (a visible skip)
/// without node, which CI does not allow.
pub async fn jmondi_exchange(
    secret: &str,
    issuer: &str,
) -> Option<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let Some(dir) = oidc_packages() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs node and tests/oidc's packages"
        );
        skipped("no node to run @jmondi/oauth2-server (tests/oidc)");
        return None;
    };
    let mut node = tokio::process::Command::new("node")
        .arg(dir.join("jmondi_exchange.mjs"))
        .env("PORT", free_port().to_string())
        .env("SECRET", secret)
        .env("ISSUER", issuer)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut lines = tokio::io::BufReader::new(node.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("it says it listens");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    Some((node, url))
}

/// The repository's root (this file is shared by the root's tests and dev/'s).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("tests/interop").exists() {
        manifest
    } else {
        manifest.join("..")
    }
}

/// Whether `python` has the interop packages.
fn has_interop_packages(python: &std::path::Path) -> bool {
    std::process::Command::new(python)
        .args([
            "-c",
            "import authx, flask_jwt_extended, fastapi, uvicorn, websockets, grpc",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The interop venv's python, made once per test process if missing (as
/// `.ci/run` makes it: the pinned requirements from PyPI).
fn interop_venv() -> Option<PathBuf> {
    static MADE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let root = repo_root();
        let venv = root.join("target/interop-venv");
        let python = venv.join("bin/python");
        if has_interop_packages(&python) {
            return Some(python);
        }
        if !python.exists() {
            say("preparing the interop venv (target/interop-venv) from tests/interop/requirements.txt");
            let made = std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
            if !made {
                return None;
            }
        }
        let installed = std::process::Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(root.join("tests/interop/requirements.txt"))
            .status()
            .is_ok_and(|s| s.success());
        installed.then_some(python)
    })
    .clone()
}

/// `tests/oidc` with its node packages installed (from its lockfile, made
/// once per test process when node and npm are there and they are not), or
/// `None`: no node.
pub fn oidc_packages() -> Option<PathBuf> {
    static READY: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let dir = repo_root().join("tests/oidc").canonicalize().ok()?;
            let node = std::process::Command::new("node")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !node {
                return None;
            }
            let ready = |dir: &std::path::Path| {
                [
                    "oidc-provider",
                    "dpop",
                    "@modelcontextprotocol/sdk",
                    "@jmondi/oauth2-server",
                    "jsonwebtoken",
                    "openid-client",
                    "jose",
                    "ws",
                ]
                .iter()
                .all(|package| dir.join("node_modules").join(package).exists())
            };
            if !ready(&dir) {
                say("preparing tests/oidc's node packages (npm ci, from its lockfile)");
                let _ = std::process::Command::new("npm")
                    .args([
                        "ci",
                        "--no-audit",
                        "--no-fund",
                        "--loglevel=error",
                        "--prefix",
                    ])
                    .arg(&dir)
                    .status();
            }
            ready(&dir).then_some(dir)
        })
        .clone()
}

/// An HTTP/1.1 connection over `stream`, for many requests in turn (its
/// driver spawned).
pub async fn http1(stream: TcpStream) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// A line for whoever runs the tests, past libtest's output capture.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Says that the running test skipped, and why, where the test runner does
/// not hide it: straight to stderr, past libtest's output capture, so
/// `cargo test` shows `SKIPPED` beside the test's `ok`. libtest cannot mark a
/// test ignored once it runs, so it counts the test as passed: the skips are
/// also listed again, counted, after libtest's summary (at the process's exit).
pub fn skipped(why: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    let mut skips = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    if skips.is_empty() {
        unsafe extern "C" {
            fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
        }
        // SAFETY: `atexit` is the C library's (always linked); the callback
        // neither panics nor unwinds.
        unsafe { atexit(report_skips) };
    }
    skips.entry(test).or_insert_with(|| why.to_owned());
}

/// The tests that skipped in this process, and why, for the report at its exit.
static SKIPS: std::sync::Mutex<std::collections::BTreeMap<String, String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// After libtest's summary, which counted them as passed: how many tests
/// skipped, and which.
extern "C" fn report_skips() {
    use std::io::Write;
    let skips = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\nSKIPPED {} of the tests counted as passed above (they did not run what they test):",
        skips.len()
    );
    for (test, why) in skips.iter() {
        let _ = writeln!(err, "  {test}: {why}");
    }
}

/// A free loopback port (for servers that cannot report theirs), never handed
/// out before in this process: tests start servers at once, and the OS may
/// give a port just released to the next caller (two Redis Clusters once
/// shared a node that way, and neither came in sync).
pub fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if reserve_port(port) {
            return port;
        }
    }
}

/// Marks `port` as handed out; `false` if it already was.
fn reserve_port(port: u16) -> bool {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port)
}

/// A real `redis-server` on a free loopback port, without persistence; killed
/// when dropped. `None` (skip) when the binary is missing, which CI does not allow.
pub struct Redis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs redis-server (apt-get install redis-server; see .ci/run)"
            );
            skipped("no redis-server on PATH");
            return None;
        }
        let mut redis = Redis {
            port: free_port(),
            child: None,
        };
        redis.restart();
        Some(redis)
    }

    /// Stops (`true`) or resumes the server's process, as a hung machine would.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let _ = std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
        }
    }

    /// `redis-cli` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// A number from `INFO memory` (`used_memory:`, `maxmemory:`, ...).
    pub fn memory(&self, field: &str) -> u64 {
        self.cli(&["INFO", "memory"])
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .unwrap_or_else(|| panic!("no {field} in INFO memory"))
            .trim()
            .parse()
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Makes this server a replica of `primary` and waits until the primary
    /// counts it online.
    pub fn follow(&self, primary: &Redis) {
        let primary_port = primary.port.to_string();
        redis_cli(self.port, &["REPLICAOF", "127.0.0.1", &primary_port]);
        for _ in 0..400 {
            if redis_cli(primary.port, &["INFO", "replication"]).contains("state=online") {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the replica did not come online");
    }

    /// Stops the server (SIGKILL: as abrupt as a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        // Files it writes (a replica's full sync dumps the data set) go to a
        // folder of its own, never into the repository.
        let dir = std::env::temp_dir().join(format!("authx-redis-{}", self.port));
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let mut reply = [0u8; 7];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The JOSE header of `token`, as JSON.
pub fn header_of(token: &str) -> Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    serde_json::from_slice(&b64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

/// The path of a key file under tests/fixtures/keys/.
pub fn key_fixture(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A signing key from a PEM fixture.
pub fn private_key(alg: tower_authx::Algorithm, file: &str) -> tower_authx::Key {
    tower_authx::Key::signing_pem(alg, &std::fs::read(key_fixture(file)).unwrap()).unwrap()
}

/// The payload of `token`, as JSON (unverified: for looking, never for trusting).
pub fn payload_of(token: &str) -> Value {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    serde_json::from_slice(&b64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// A real Redis Cluster on loopback: `masters` primaries, each with
/// `replicas` replicas, made by `redis-cli --cluster create`; every node
/// killed when dropped. `None` (skip) without redis-server and redis-cli,
/// which CI does not allow.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    children: Vec<Option<std::process::Child>>,
    dir: PathBuf,
}

impl RedisCluster {
    pub fn start(masters: usize, replicas: usize) -> Option<RedisCluster> {
        let found = ["redis-server", "redis-cli"].iter().all(|bin| {
            std::process::Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI needs redis-server and redis-cli (apt-get install redis-server; see .ci/run)"
            );
            skipped("no redis-server or redis-cli on PATH");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("authx-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < masters * (1 + replicas) {
            // The cluster bus listens on port + 10000.
            let port = free_port();
            if port < 55000
                && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
                && reserve_port(port + 10000)
            {
                ports.push(port);
            }
        }
        let mut cluster = RedisCluster {
            children: ports.iter().map(|_| None).collect(),
            ports,
            dir,
        };
        for i in 0..cluster.ports.len() {
            cluster.spawn(i);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok();
        cluster.wait_for_replicas(replicas);
        Some(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let port = self.ports[i].to_string();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.children[i] = Some(child);
        for _ in 0..200 {
            if self.cli(self.ports[i], &["PING"]).trim() == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {port}");
    }

    /// Waits until every live node says the cluster is ok.
    pub fn wait_until_ok(&self) {
        for _ in 0..400 {
            let ok = self.live_ports().iter().all(|port| {
                self.cli(*port, &["CLUSTER", "INFO"])
                    .contains("cluster_state:ok")
            });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the cluster did not become ok");
    }

    /// Waits until every primary has `replicas` replicas online and caught
    /// up (each at the primary's offset, acknowledging), and every replica's
    /// link is up with no sync under way: the cluster's state, so that a
    /// write's `WAIT` is answered at once, however loaded the machine.
    pub fn wait_for_replicas(&self, replicas: usize) {
        for _ in 0..600 {
            let synced = self.live_ports().iter().all(|port| {
                let info = self.cli(*port, &["INFO", "replication"]);
                if !info.contains("role:master") {
                    return info.contains("master_link_status:up")
                        && info.contains("master_sync_in_progress:0");
                }
                let offset = info
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("master_repl_offset:"))
                    .unwrap_or("?")
                    .to_owned();
                let slaves: Vec<&str> = info
                    .lines()
                    .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                    .collect();
                info.contains(&format!("connected_slaves:{replicas}"))
                    && slaves.len() == replicas
                    && slaves
                        .iter()
                        .all(|l| l.contains(&format!("offset={offset},")))
            });
            if synced {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the replicas did not come in sync");
    }

    /// `redis-cli -p port args...`, its output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        redis_cli(port, args)
    }

    /// Every node's URL, comma-separated: what `REDIS_URL` takes for a cluster.
    pub fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn live_ports(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.children)
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// The port of the primary that holds `key`.
    pub fn primary_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = self
            .cli(port, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .unwrap();
        for line in self.cli(port, &["CLUSTER", "NODES"]).lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let owns = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
            });
            if owns {
                return node_port(fields[1]);
            }
        }
        panic!("no primary holds slot {slot}");
    }

    /// The port of a replica of the primary that holds `key`.
    pub fn replica_of(&self, key: &str) -> u16 {
        let primary = format!("127.0.0.1:{}@", self.primary_of(key));
        let nodes = self.cli(self.live_ports()[0], &["CLUSTER", "NODES"]);
        let rows: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
        let primary_id = rows
            .iter()
            .find(|row| row[1].starts_with(&primary))
            .expect("the primary is listed")[0];
        let replica = rows
            .iter()
            .find(|row| row[2].contains("slave") && row[3] == primary_id)
            .expect("the primary has a replica");
        node_port(replica[1])
    }

    /// Starts the node on `port` again (it rejoins with its cluster
    /// configuration: a primary replaced meanwhile comes back as a replica).
    pub fn restart(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        self.kill(port);
        self.spawn(i);
    }

    /// Kills the node on `port` (SIGKILL: a crash).
    pub fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).unwrap();
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `redis-cli -p port args...`, its output.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The port in a `CLUSTER NODES` address (`host:port@bus`).
fn node_port(address: &str) -> u16 {
    let addr = address.split('@').next().unwrap();
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The output of a future that is ready at once (in-memory stores, our own
/// keys), without a runtime: for properties and fuzzing-style loops.
pub fn ready_now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the future was not ready at once"),
    }
}

/// A real stream client of `tests/interop/stream_clients.py` (Python's
/// `websockets` or `grpcio`): `kind` at `target` with `token`, running
/// `steps`; one JSON line per event, each with when it happened (`at`).
pub async fn stream_client(kind: &str, target: &str, token: &str, steps: &[String]) -> Vec<Value> {
    let python = python().expect("python with websockets and grpcio");
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/interop/stream_clients.py"))
        .args([kind, target, token])
        .args(steps);
    json_lines(command).await
}

/// Runs `command` (a client that reports one JSON value a line), at most
/// 40 s and killed if dropped; it must succeed. Its lines, read.
pub async fn json_lines(mut command: Command) -> Vec<Value> {
    let output = tokio::time::timeout(Duration::from_secs(40), command.kill_on_drop(true).output())
        .await
        .expect("the client finished")
        .expect("the client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}
