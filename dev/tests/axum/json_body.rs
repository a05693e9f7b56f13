//! Tokens in a JSON body over TCP (the axum example with
//! `JWT_TOKEN_LOCATION=headers,json`): the handler reads the very body the
//! token came in; oversized and non-JSON bodies; a pipelined request after
//! one whose body was read for its token is unaffected.

use crate::support::Server;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn json_server() -> Server {
    Server::start("axum", &[("JWT_TOKEN_LOCATION", "headers,json")]).await
}

#[tokio::test]
async fn the_token_and_the_handlers_fields_travel_in_one_body() {
    let server = json_server().await;
    let (fresh, refresh) = server.login().await;
    let res = server
        .post("/account/password")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"access_token":"{fresh}","new_password":"s3cret"}}"#
        ))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["username"], "user1");
    // The refresh route reads the refresh member.
    let res = server
        .post("/refresh")
        .header("content-type", "application/json")
        .body(format!(r#"{{"refresh_token":"{refresh}"}}"#))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert!(res.json()["refresh_token"].is_string());
}

#[tokio::test]
async fn oversized_and_non_json_bodies_get_their_documented_answers() {
    let server = json_server().await;
    let (fresh, _) = server.login().await;
    // Said to be 2 MiB: refused before the body is read (the server does not
    // wait for it, so the client sends only its start).
    let head = format!(
        "POST /account/password HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{{\"access_token\":\"{fresh}\",\"pad\":\"",
        2 << 20
    );
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let res = server
        .post("/account/password")
        .header("content-type", "text/plain")
        .body(format!(
            r#"{{"access_token":"{fresh}","new_password":"x"}}"#
        ))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    let res = server
        .post("/account/password")
        .header("content-type", "application/json")
        .body(r#"{"access_token": 42}"#)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
}

#[tokio::test]
async fn a_pipelined_request_after_a_json_token_body_is_unaffected() {
    let server = json_server().await;
    let (fresh, _) = server.login().await;
    let body = format!(r#"{{"access_token":"{fresh}","new_password":"pipelined"}}"#);
    let first = format!(
        "POST /account/password HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let second = "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let mut stream = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    stream
        .write_all(format!("{first}{second}").as_bytes())
        .await
        .unwrap();
    let mut answers = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut answers),
    )
    .await
    .expect("both answered")
    .unwrap();
    assert_eq!(
        answers.matches("HTTP/1.1 200 OK\r\n").count(),
        2,
        "{answers}"
    );
    assert_eq!(answers.matches("HTTP/1.1 ").count(), 2, "{answers}");
    assert!(
        answers.contains(r#""message":"Password changed""#),
        "{answers}"
    );
    assert!(
        answers.contains("Welcome to AuthX Fresh Token Example"),
        "{answers}"
    );
}
