//! Implicit refresh in the axum example over TCP: a cookie session renewed on
//! its guarded routes; a logout racing a renewal never brings the session
//! back; two tabs renewing at the same moment both stay logged in, and the
//! old cookie works only until its own expiry.

use crate::e2e_axum::{cookie_login, cookies, value};
use crate::support::{Reply, Server};

use http::StatusCode;

/// The axum example renewing every cookie request (a window longer than the
/// tokens live), with access tokens living `lifetime` seconds.
async fn renewing_server(lifetime: &str) -> Server {
    Server::start(
        "axum",
        &[
            ("JWT_COOKIE_SECURE", "false"),
            ("ACCESS_TOKEN_LIFETIME_SECS", lifetime),
            ("IMPLICIT_REFRESH_SECS", "3600"),
        ],
    )
    .await
}

/// A browser's state: its access cookie and CSRF value.
#[derive(Clone, Debug)]
struct Tab {
    access: String,
    csrf: String,
}

impl Tab {
    async fn login(server: &Server) -> Tab {
        let jar = cookie_login(server).await;
        Tab {
            access: value(&jar, "access_token_cookie").to_owned(),
            csrf: value(&jar, "csrf_access_token").to_owned(),
        }
    }

    async fn get(&self, server: &Server, path: &str) -> Reply {
        server
            .get(path)
            .header("cookie", format!("access_token_cookie={}", self.access))
            .send()
            .await
    }

    async fn logout(&self, server: &Server) -> Reply {
        server
            .post("/logout")
            .header("cookie", format!("access_token_cookie={}", self.access))
            .header("x-csrf-token", &self.csrf)
            .send()
            .await
    }

    /// The tab after a response: its renewed cookies, if any.
    fn after(&self, reply: &Reply) -> Option<Tab> {
        let jar = cookies(reply);
        let access = jar
            .iter()
            .find(|(n, v, _)| n == "access_token_cookie" && !v.is_empty())?;
        let csrf = jar.iter().find(|(n, _, _)| n == "csrf_access_token")?;
        Some(Tab {
            access: access.1.clone(),
            csrf: csrf.1.clone(),
        })
    }
}

/// Issue 38, finding 7: with no session lifetime of its own, a cookie used
/// continuously is renewed only until the refresh token's lifetime after the
/// login, then refused: a stolen cookie ages out.
#[tokio::test]
async fn a_session_used_continuously_ends_at_the_refresh_tokens_lifetime() {
    let server = Server::start(
        "axum",
        &[
            ("JWT_COOKIE_SECURE", "false"),
            ("ACCESS_TOKEN_LIFETIME_SECS", "3"),
            ("REFRESH_TOKEN_LIFETIME_SECS", "6"),
            ("IMPLICIT_REFRESH_SECS", "3600"),
        ],
    )
    .await;
    let started = std::time::Instant::now();
    let mut tab = Tab::login(&server).await;
    let mut renewed = 0;
    loop {
        let reply = tab.get(&server, "/protected").await;
        if reply.status != StatusCode::OK {
            break;
        }
        if let Some(next) = tab.after(&reply) {
            tab = next;
            renewed += 1;
        }
        assert!(started.elapsed().as_secs() < 30, "the session never ended");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(renewed >= 2, "renewed {renewed} times");
    // What ended it is the session's lifetime, not a renewal that stopped:
    // the last token lives exactly to the login's auth_time + 6 s.
    let claims = crate::support::payload_of(&tab.access);
    let (exp, auth_time) = (
        claims["exp"].as_f64().unwrap(),
        claims["auth_time"].as_f64().unwrap(),
    );
    assert!(
        (5.0..=6.0).contains(&(exp - auth_time)),
        "the last token lived to auth_time + {}",
        exp - auth_time
    );
}

#[tokio::test]
async fn a_cookie_session_is_renewed_on_every_guarded_route_and_not_on_logout() {
    let server = renewing_server("60").await;
    let tab = Tab::login(&server).await;
    for path in ["/protected", "/fresh-required"] {
        let res = tab.get(&server, path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text());
        let renewed = tab
            .after(&res)
            .unwrap_or_else(|| panic!("{path}: not renewed"));
        assert_ne!(renewed.access, tab.access);
        let line = res
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|l| l.starts_with("access_token_cookie="))
            .unwrap();
        assert!(
            line.contains("; HttpOnly") && line.contains("; Path=/"),
            "{line}"
        );
        assert_eq!(
            renewed.get(&server, "/protected").await.status,
            StatusCode::OK
        );
        // Renewed, hence no longer fresh.
        let res = renewed.get(&server, "/fresh-required").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    }
    // A bearer token is not a browser session: nothing is set.
    let (access, _) = server.login().await;
    let res = server.get("/protected").bearer(&access).send().await;
    assert_eq!(res.headers.get_all("set-cookie").iter().count(), 0);
    // Logout clears the cookies; no renewal undoes it.
    let res = tab.logout(&server).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(tab.after(&res).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_racing_a_renewal_never_brings_the_session_back() {
    let server = renewing_server("60").await;
    let mut renewed_first = 0;
    for _ in 0..1000 {
        let tab = Tab::login(&server).await;
        let (page, logout) = tokio::join!(tab.get(&server, "/protected"), tab.logout(&server));
        assert_eq!(logout.status, StatusCode::OK, "{}", logout.text());
        if page.status == StatusCode::OK {
            renewed_first += 1;
        }
        // Whatever the order, nothing of the session works afterwards.
        assert_eq!(
            tab.get(&server, "/protected").await.status,
            StatusCode::UNAUTHORIZED
        );
        if let Some(renewed) = tab.after(&page) {
            let res = renewed.get(&server, "/protected").await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "a renewed cookie outlived its logout"
            );
        }
    }
    println!("1000 races: the page came first (and was renewed) {renewed_first} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_renewing_at_once_both_stay_logged_in() {
    let server = renewing_server("3").await;
    let first = Tab::login(&server).await;
    let mut tab = first.clone();
    let started = std::time::Instant::now();
    for i in 0..1000 {
        let (a, b) = tokio::join!(
            tab.get(&server, "/protected"),
            tab.get(&server, "/protected")
        );
        assert_eq!(
            (a.status, b.status),
            (StatusCode::OK, StatusCode::OK),
            "round {i}"
        );
        let (a, b) = (tab.after(&a).unwrap(), tab.after(&b).unwrap());
        // Each tab goes on with its own renewed cookie: both work.
        assert_eq!(
            b.get(&server, "/protected").await.status,
            StatusCode::OK,
            "round {i}"
        );
        tab = a;
    }
    // The grace: the old cookie worked until its own expiry (3 s), no longer.
    let left = std::time::Duration::from_secs(4).saturating_sub(started.elapsed());
    tokio::time::sleep(left).await;
    assert_eq!(
        first.get(&server, "/protected").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(tab.get(&server, "/protected").await.status, StatusCode::OK);
}

/// The real AuthX 1.7 with its implicit refresh middleware
/// (tests/interop/authx_cookie_session.py), with `env`.
struct AuthxApp {
    server: Server,
    _child: tokio::process::Child,
}

async fn start_authx(python: &std::path::Path, env: &[(&str, &str)]) -> AuthxApp {
    let port = crate::support::free_port();
    let child = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/interop/authx_cookie_session.py"
        ))
        .envs(env.iter().copied())
        .env("PORT", port.to_string())
        .env("JWT_SECRET_KEY", crate::support::SECRET)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the AuthX app");
    let server = Server::at(format!("127.0.0.1:{port}"));
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(&server.addr).await.is_ok() {
            return AuthxApp {
                server,
                _child: child,
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the AuthX app did not start");
}

/// A `Set-Cookie` line as its name and its attributes (lowercased, sorted).
fn shape(line: &str) -> (String, Vec<String>) {
    let mut parts = line.split(';').map(str::trim);
    let name = parts.next().unwrap().split('=').next().unwrap().to_owned();
    let mut attributes: Vec<String> = parts.map(str::to_ascii_lowercase).collect();
    attributes.sort();
    (name, attributes)
}

fn renewal_shapes(reply: &Reply) -> Vec<(String, Vec<String>)> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| shape(v.to_str().unwrap()))
        .collect()
}

/// The same browser-like script against AuthX and against the axum example,
/// both renewing within 2 s of a 4 s lifetime: neither renews at first, both
/// renew once in the window, with the same cookie names and attributes; and
/// each accepts the other's renewed cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_refresh_side_by_side_with_authx() {
    let Some(python) = crate::support::python() else {
        return;
    };
    let env = [
        ("JWT_COOKIE_SECURE", "false"),
        ("ACCESS_TOKEN_LIFETIME_SECS", "4"),
        ("IMPLICIT_REFRESH_SECS", "2"),
    ];
    let ours = Server::start("axum", &env).await;
    let theirs = start_authx(&python, &env).await;
    let theirs = &theirs.server;
    let (our_tab, their_tab) = (Tab::login(&ours).await, Tab::login(theirs).await);

    let (a, b) = (
        our_tab.get(&ours, "/protected").await,
        their_tab.get(theirs, "/protected").await,
    );
    assert_eq!(
        (a.status, b.status),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.text(),
        b.text()
    );
    assert!(
        renewal_shapes(&a).is_empty() && renewal_shapes(&b).is_empty(),
        "not yet"
    );

    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (a, b) = (
        our_tab.get(&ours, "/protected").await,
        their_tab.get(theirs, "/protected").await,
    );
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    let (ours_shape, theirs_shape) = (renewal_shapes(&a), renewal_shapes(&b));
    assert_eq!(ours_shape.len(), 2, "{ours_shape:?}");
    assert_eq!(
        ours_shape, theirs_shape,
        "the same cookies, the same attributes"
    );

    // Each takes the other's renewed cookie.
    let (our_renewed, their_renewed) = (our_tab.after(&a).unwrap(), their_tab.after(&b).unwrap());
    let res = our_renewed.get(theirs, "/protected").await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "AuthX refused ours: {}",
        res.text()
    );
    let res = their_renewed.get(&ours, "/protected").await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "we refused AuthX's: {}",
        res.text()
    );
}

/// Chromium (Debian's package), or `None` with a visible skip (CI has it).
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("CHROMIUM").map_or_else(|| "chromium".into(), Into::into);
    let found = std::process::Command::new(&path)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs chromium (apt-get install chromium; see .ci/run)"
    );
    crate::support::skipped("no chromium (apt-get install chromium)");
    None
}

/// The example's `/demo` page in a headless browser for `seconds`: what it
/// reports (logged in, polled, renewals seen, logged out).
async fn browse(browser: &std::path::Path, server: &Server, seconds: u64) -> serde_json::Value {
    let url = format!("http://{}/demo?seconds={seconds}", server.addr);
    let profile = std::env::temp_dir().join(format!(
        "authx-chromium-{}-{}",
        std::process::id(),
        server.addr.replace([':', '.'], "-")
    ));
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(seconds + 60),
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(&url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished")
    .expect("the browser ran");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    let result = dom
        .split("<pre id=\"result\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in the page: {dom}"));
    serde_json::from_str(&result.replace("&quot;", "\"").replace("&amp;", "&"))
        .unwrap_or_else(|e| panic!("{e}: {result}"))
}

/// A real browser on a page of the axum example: logged in with cookies, it
/// stays on the page past the access token's lifetime (2 s) while it polls,
/// renewed implicitly, never refused; logged out, it is refused. Without
/// renewal the same page is refused once the token expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_browser_stays_logged_in_past_the_token_lifetime() {
    let Some(browser) = chromium() else { return };
    let renewing = Server::start(
        "axum",
        &[
            ("JWT_COOKIE_SECURE", "false"),
            ("ACCESS_TOKEN_LIFETIME_SECS", "2"),
            ("IMPLICIT_REFRESH_SECS", "1"),
        ],
    )
    .await;
    let outcome = browse(&browser, &renewing, 6).await;
    assert_eq!(outcome["login"], 200, "{outcome}");
    assert_eq!(outcome["refused_while_logged_in"], 0, "{outcome}");
    assert!(outcome["renewals"].as_u64().unwrap() >= 3, "{outcome}");
    assert_eq!(outcome["logout"], 200, "{outcome}");
    assert_eq!(outcome["after_logout"], 401, "{outcome}");

    let expiring = Server::start(
        "axum",
        &[
            ("JWT_COOKIE_SECURE", "false"),
            ("ACCESS_TOKEN_LIFETIME_SECS", "2"),
        ],
    )
    .await;
    let outcome = browse(&browser, &expiring, 4).await;
    assert_eq!(outcome["renewals"], 0, "{outcome}");
    assert!(
        outcome["refused_while_logged_in"].as_u64().unwrap() > 0,
        "{outcome}"
    );
}
