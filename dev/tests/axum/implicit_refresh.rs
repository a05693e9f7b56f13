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
