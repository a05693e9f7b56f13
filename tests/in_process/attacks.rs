//! The attack battery: RFC 8725 (JWT BCP), published JWT CVEs and hostile
//! headers, each case run twice, through the layer in process (the inner service
//! must never run) and over real TCP against `examples/fresh_token.rs`. Every case
//! states its exact outcome: status, challenge error, detail; and nothing answered
//! may echo the token.

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use support::{HS256, SECRET, Server, forge, now};
use tower::{Layer, ServiceExt, service_fn};
use tower_authx::{AuthX, AuthXConfig, Claims, Key, RequireAuthLayer};

/// One hostile request: its `Authorization` values and the exact refusal.
struct Case {
    name: String,
    authorization: Vec<Vec<u8>>,
    status: u16,
    /// The challenge's `error`, or `None` for a bare `Bearer` challenge.
    error: Option<&'static str>,
    detail: String,
}

fn case(name: &str, token: &str, status: u16, error: Option<&'static str>, detail: &str) -> Case {
    Case {
        name: name.to_owned(),
        authorization: vec![format!("Bearer {token}").into_bytes()],
        status,
        error,
        detail: detail.to_owned(),
    }
}

fn invalid(name: &str, token: &str, detail: &str) -> Case {
    case(name, token, 401, Some("invalid_token"), detail)
}

const SIGNATURE: &str = "Signature verification failed";
const ALGORITHM: &str = "Invalid token: The specified alg value is not allowed";
const MISSING: &str = "Missing 'Bearer' in 'Authorization' header.";

fn b64(s: &str) -> String {
    B64.encode(s)
}

/// Claims our example accepts on /protected, with `extra` members appended.
fn claims_with(extra: &str) -> String {
    let t = now();
    format!(
        r#"{{"sub":"user1","jti":"j","type":"access","fresh":false,"csrf":"c","iat":{t},"exp":{}{extra}}}"#,
        t + 600
    )
}

/// A payload with one claim replaced by raw JSON (or removed, with `None`).
fn claims_where(name: &str, value: Option<&str>) -> String {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&claims_with("")).unwrap();
    map.remove(name);
    let mut json = serde_json::Value::Object(map).to_string();
    if let Some(value) = value {
        json.pop();
        json.push_str(&format!(r#","{name}":{value}}}"#));
    }
    json
}

fn signed(payload: &str) -> String {
    forge(HS256, payload, SECRET.as_bytes())
}

fn cases() -> Vec<Case> {
    let good = signed(&claims_with(""));
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let t = now();
    let mut cases = Vec::new();

    // The header itself.
    let raw = |name: &str, values: &[&[u8]], status, error, detail: &str| Case {
        name: name.to_owned(),
        authorization: values.iter().map(|v| v.to_vec()).collect(),
        status,
        error,
        detail: detail.to_owned(),
    };
    let no_token = "Invalid request: the credential header has a scheme but no token";
    let junk = "Invalid request: the token contains whitespace or non-ASCII bytes";
    cases.extend([
        raw("no header", &[], 401, None, MISSING),
        raw("empty header", &[b""], 401, None, MISSING),
        raw(
            "basic scheme",
            &[b"Basic dXNlcjE6cGFzc3dvcmQx"],
            401,
            None,
            MISSING,
        ),
        raw(
            "token without scheme",
            &[good.as_bytes()],
            401,
            None,
            MISSING,
        ),
        raw(
            "glued scheme",
            &[format!("Bearer{good}").as_bytes()],
            401,
            None,
            MISSING,
        ),
        raw(
            "scheme only",
            &[b"Bearer"],
            400,
            Some("invalid_request"),
            no_token,
        ),
        raw(
            "scheme and spaces",
            &[b"Bearer   "],
            400,
            Some("invalid_request"),
            no_token,
        ),
        raw(
            "tab separator",
            &[format!("Bearer\t{good}").as_bytes()],
            400,
            Some("invalid_request"),
            no_token,
        ),
        raw(
            "trailing junk",
            &[format!("Bearer {good} x").as_bytes()],
            400,
            Some("invalid_request"),
            junk,
        ),
        raw(
            "inner tab",
            &[format!("Bearer {head}\t.{payload}").as_bytes()],
            400,
            Some("invalid_request"),
            junk,
        ),
        raw(
            "non-ASCII",
            &[format!("Bearer {good}\u{e9}").as_bytes()],
            400,
            Some("invalid_request"),
            junk,
        ),
        raw(
            "latin-1 byte",
            &[b"Bearer a.b.\xff"],
            400,
            Some("invalid_request"),
            junk,
        ),
        raw(
            "two Authorization headers",
            &[
                format!("Bearer {good}").as_bytes(),
                format!("Bearer {good}").as_bytes(),
            ],
            400,
            Some("invalid_request"),
            "Invalid request: more than one credential header",
        ),
        raw(
            "1 MB of dots",
            &[format!("Bearer {}", ".".repeat(1 << 20)).as_bytes()],
            401,
            Some("invalid_token"),
            "Invalid token: too long",
        ),
    ]);

    // alg "none" in every casing, and algorithms outside the allow-list.
    for alg in [
        "none",
        "None",
        "NONE",
        "nOnE",
        "",
        "HS384",
        "HS512",
        "RS256",
        "ES256",
        "PS256",
        "EdDSA",
        "hs256",
        "HS256 ",
        "HS256\u{0}",
    ] {
        let header = b64(&serde_json::json!({"alg": alg, "typ": "JWT"}).to_string());
        cases.push(invalid(
            &format!("alg {alg:?} unsigned"),
            &format!("{header}.{payload}."),
            ALGORITHM,
        ));
        cases.push(invalid(
            &format!("alg {alg:?} with our signature"),
            &format!("{header}.{payload}.{signature}"),
            ALGORITHM,
        ));
    }
    // Algorithm confusion: an RS256 token "signed" with HMAC keyed by a public key.
    let public_pem = include_str!("../fixtures/keys/rsa_public.pem");
    let confused = forge(
        r#"{"alg":"RS256","typ":"JWT"}"#,
        &claims_with(""),
        public_pem.as_bytes(),
    );
    cases.push(invalid(
        "RS256 header, HMAC with a public key",
        &confused,
        ALGORITHM,
    ));

    // Signatures: stripped, truncated, flipped, foreign, borrowed, empty key.
    let flipped = {
        let mut s = signature.as_bytes().to_vec();
        s[5] = if s[5] == b'A' { b'B' } else { b'A' };
        String::from_utf8(s).unwrap()
    };
    let other = signed(&claims_with(r#","x":1"#));
    let borrowed = other.rsplit('.').next().unwrap();
    cases.extend([
        invalid(
            "stripped signature",
            &format!("{head}.{payload}."),
            SIGNATURE,
        ),
        invalid(
            "truncated signature",
            &format!("{head}.{payload}.{}", &signature[..signature.len() - 4]),
            SIGNATURE,
        ),
        invalid(
            "one-character signature",
            &format!("{head}.{payload}.A"),
            SIGNATURE,
        ),
        invalid(
            "flipped signature",
            &format!("{head}.{payload}.{flipped}"),
            SIGNATURE,
        ),
        invalid(
            "padded signature",
            &format!("{head}.{payload}.{signature}="),
            SIGNATURE,
        ),
        invalid(
            "signature of another token",
            &format!("{head}.{payload}.{borrowed}"),
            SIGNATURE,
        ),
        invalid(
            "foreign secret",
            &forge(HS256, &claims_with(""), b"another-secret-of-32-bytes-long!"),
            SIGNATURE,
        ),
        invalid(
            "NUL-byte secret",
            &forge(HS256, &claims_with(""), b"\0"),
            SIGNATURE,
        ),
        invalid(
            "altered payload",
            &format!(
                "{head}.{}.{signature}",
                b64(&claims_with(r#","admin":true"#))
            ),
            SIGNATURE,
        ),
        invalid(
            "altered header",
            &format!(
                "{}.{payload}.{signature}",
                b64(r#"{"alg":"HS256","typ":"JWT","kid":"x"}"#)
            ),
            SIGNATURE,
        ),
    ]);

    // Shapes: JWE, JSON serialisation, segments.
    let three = "Invalid token: a JWT has three segments";
    cases.extend([
        invalid(
            "JWE compact (5 segments)",
            &format!("{head}.{payload}.{signature}.aXY.dGFn"),
            three,
        ),
        invalid("four segments", &format!("{good}."), three),
        invalid("two segments", &format!("{head}.{payload}"), three),
        invalid("one segment", "abc", three),
        invalid(
            "only dots",
            "..",
            "Invalid token: the header is not a JWS header",
        ),
        invalid(
            "JWS JSON serialisation",
            &format!(r#"{{"payload":"{payload}","protected":"{head}","signature":"{signature}"}}"#),
            three,
        ),
        invalid(
            "JWE header",
            &forge(
                r#"{"alg":"HS256","enc":"A256GCM"}"#,
                &claims_with(""),
                SECRET.as_bytes(),
            ),
            "Invalid token: encrypted tokens are not accepted",
        ),
        invalid(
            "zip header",
            &forge(
                r#"{"alg":"HS256","zip":"DEF"}"#,
                &claims_with(""),
                SECRET.as_bytes(),
            ),
            "Invalid token: encrypted tokens are not accepted",
        ),
    ]);

    // Bad base64url in the header (checked before the signature) and the payload.
    let not_b64 = "Invalid token: the header is not base64url";
    let padded_head = format!("{head}=");
    cases.extend([
        invalid(
            "padded header",
            &format!("{padded_head}.{payload}.{signature}"),
            not_b64,
        ),
        invalid(
            "'+' in header",
            &format!("{}+.{payload}.{signature}", &head[..head.len() - 1]),
            not_b64,
        ),
        invalid(
            "'/' in header",
            &format!("{}/.{payload}.{signature}", &head[..head.len() - 1]),
            not_b64,
        ),
        invalid(
            "'%' in header",
            &format!("%{head}.{payload}.{signature}"),
            not_b64,
        ),
    ]);
    let signed_raw = |payload_b64: &str| {
        let message = format!("{head}.{payload_b64}");
        let sig = B64.encode(support::hs256(SECRET.as_bytes(), message.as_bytes()));
        format!("{message}.{sig}")
    };
    cases.push(invalid(
        "padded payload, correctly signed",
        &signed_raw(&format!("{payload}==")),
        "Invalid token: the payload is not base64url",
    ));

    // Headers that are not JSON objects, deeply nested, duplicated, critical.
    let not_header = "Invalid token: the header is not a JWS header";
    let deep = format!(
        r#"{{"alg":"HS256","x":{}{}}}"#,
        "[".repeat(2_000),
        "]".repeat(2_000)
    );
    for (name, header) in [
        ("non-JSON header", "not json"),
        ("array header", r#"["HS256"]"#),
        ("string header", r#""HS256""#),
        ("null header", "null"),
        ("number header", "256"),
        ("alg as a number", r#"{"alg":256}"#),
        ("alg as an array", r#"{"alg":["HS256"]}"#),
        ("no alg", r#"{"typ":"JWT"}"#),
        (
            "duplicate alg, none last",
            r#"{"alg":"HS256","alg":"none"}"#,
        ),
        (
            "duplicate alg, none first",
            r#"{"alg":"none","alg":"HS256"}"#,
        ),
        ("trailing garbage after header", r#"{"alg":"HS256"}x"#),
    ] {
        cases.push(invalid(
            name,
            &forge(header, &claims_with(""), SECRET.as_bytes()),
            not_header,
        ));
    }
    // Deep nesting costs no stack: an unknown member is skipped, then the
    // signature decides.
    cases.push(invalid(
        "deeply nested header, attacker's signature",
        &forge(&deep, &claims_with(""), b"attacker-secret-of-32-bytes-long"),
        SIGNATURE,
    ));
    cases.extend([
        invalid(
            "unknown crit",
            &forge(
                r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
                &claims_with(""),
                SECRET.as_bytes(),
            ),
            "Invalid token: unsupported critical header extension",
        ),
        invalid(
            "empty crit",
            &forge(
                r#"{"alg":"HS256","crit":[]}"#,
                &claims_with(""),
                SECRET.as_bytes(),
            ),
            "Invalid token: unsupported critical header extension",
        ),
        invalid(
            "typ not JWT",
            &forge(
                r#"{"alg":"HS256","typ":"JWE"}"#,
                &claims_with(""),
                SECRET.as_bytes(),
            ),
            "Invalid token: the header's typ is not JWT",
        ),
    ]);

    // Key-selection abuse: embedded keys and key URLs are never used.
    let attacker = b"attacker-secret-of-32-bytes-long";
    for header in [
        r#"{"alg":"HS256","jwk":{"kty":"oct","k":"YXR0YWNrZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmc"}}"#,
        r#"{"alg":"HS256","jku":"http://127.0.0.1:9/jwks.json"}"#,
        r#"{"alg":"HS256","x5u":"http://127.0.0.1:9/cert.pem"}"#,
        r#"{"alg":"HS256","x5c":["MIIB"]}"#,
        r#"{"alg":"HS256","kid":"../../../../../../dev/null"}"#,
        r#"{"alg":"HS256","kid":"' OR '1'='1"}"#,
        r#"{"alg":"HS256","kid":"x|/bin/true"}"#,
    ] {
        cases.push(invalid(
            &format!("attacker key via {header}"),
            &forge(header, &claims_with(""), attacker),
            SIGNATURE,
        ));
    }
    cases.push(invalid(
        "kid pointing at an empty key",
        &forge(
            r#"{"alg":"HS256","kid":"../../dev/null"}"#,
            &claims_with(""),
            b"\0",
        ),
        SIGNATURE,
    ));

    // Payloads: not objects, nested, duplicated.
    let not_object = "Invalid token: the payload is not a JSON object";
    for (name, payload) in [
        ("non-JSON payload", "not json".to_owned()),
        ("empty payload", String::new()),
        (
            "trailing garbage after payload",
            format!("{}x", claims_with("")),
        ),
    ] {
        cases.push(invalid(name, &signed(&payload), not_object));
    }
    for (name, payload, detail) in [
        (
            "deeply nested claim",
            claims_with(&format!(
                r#","x":{}{}"#,
                "[".repeat(2_000),
                "]".repeat(2_000)
            )),
            "Invalid token: nested too deep",
        ),
        (
            "array payload",
            "[]".to_owned(),
            "Invalid token: invalid type: sequence, expected a JSON object of claims",
        ),
        (
            "string payload",
            r#""sub""#.to_owned(),
            "Invalid token: invalid type: string \"sub\", expected a JSON object of claims",
        ),
        (
            "null payload",
            "null".to_owned(),
            "Invalid token: invalid type: null, expected a JSON object of claims",
        ),
        (
            "duplicate sub",
            claims_with(r#","sub":"admin""#),
            "Invalid token: duplicate claim 'sub'",
        ),
        (
            "duplicate exp",
            claims_with(r#","exp":99999999999"#),
            "Invalid token: duplicate claim 'exp'",
        ),
        (
            "duplicate unknown claim",
            claims_with(r#","x":1,"x":2"#),
            "Invalid token: duplicate claim",
        ),
    ] {
        cases.push(invalid(name, &signed(&payload), detail));
    }

    // NumericDates: missing, null, wrong types, out of range; time itself.
    for claim in ["exp", "iat", "nbf"] {
        for (what, value) in [
            ("null", "null"),
            ("a string", r#""1700000000""#),
            ("a bool", "true"),
            ("negative", "-1"),
            ("huge", "1e300"),
            ("past year 9999", "253402300800"),
            ("an object", "{}"),
        ] {
            let detail = format!("Invalid token: claim '{claim}' must be a NumericDate");
            cases.push(invalid(
                &format!("{claim} {what}"),
                &signed(&claims_where(claim, Some(value))),
                &detail,
            ));
        }
    }
    cases.extend([
        invalid(
            "exp missing",
            &signed(&claims_where("exp", None)),
            "Invalid token: missing claim 'exp'",
        ),
        invalid(
            "exp past",
            &signed(&claims_where("exp", Some(&(t - 1).to_string()))),
            "Token has expired",
        ),
        invalid(
            "exp now",
            &signed(&claims_where("exp", Some(&t.to_string()))),
            "Token has expired",
        ),
        invalid(
            "exp 0",
            &signed(&claims_where("exp", Some("0"))),
            "Token has expired",
        ),
        invalid(
            "nbf in the future",
            &signed(&claims_where("nbf", Some(&(t + 120).to_string()))),
            "Invalid token: The token is not yet valid (nbf)",
        ),
        invalid(
            "iat in the future",
            &signed(&claims_where("iat", Some(&(t + 120).to_string()))),
            "Invalid token: The token is not yet valid (iat)",
        ),
    ]);

    // Claims of the wrong type or value: never coerced.
    for (claim, value, detail) in [
        (
            "sub",
            Some("1"),
            "Invalid token: claim 'sub' must be a string",
        ),
        (
            "sub",
            Some("null"),
            "Invalid token: claim 'sub' must be a string",
        ),
        (
            "sub",
            Some(r#"["user1"]"#),
            "Invalid token: claim 'sub' must be a string",
        ),
        ("sub", None, "Invalid token: missing claim 'sub'"),
        (
            "type",
            Some(r#""id""#),
            "Invalid token: claim 'type' must be \"access\" or \"refresh\"",
        ),
        (
            "type",
            Some("1"),
            "Invalid token: claim 'type' must be \"access\" or \"refresh\"",
        ),
        (
            "type",
            Some("null"),
            "Invalid token: claim 'type' must be \"access\" or \"refresh\"",
        ),
        (
            "fresh",
            Some(r#""true""#),
            "Invalid token: claim 'fresh' must be a boolean or a NumericDate",
        ),
        (
            "fresh",
            Some("null"),
            "Invalid token: claim 'fresh' must be a boolean or a NumericDate",
        ),
        (
            "fresh",
            Some("{}"),
            "Invalid token: claim 'fresh' must be a boolean or a NumericDate",
        ),
        (
            "jti",
            Some("1"),
            "Invalid token: claim 'jti' must be a string",
        ),
        (
            "csrf",
            Some("false"),
            "Invalid token: claim 'csrf' must be a string",
        ),
        (
            "scopes",
            Some(r#""admin""#),
            "Invalid token: claim 'scopes' must be a list of strings",
        ),
        (
            "scopes",
            Some("[1]"),
            "Invalid token: claim 'scopes' must be a list of strings",
        ),
        (
            "iss",
            Some("1"),
            "Invalid token: claim 'iss' must be a string",
        ),
        (
            "aud",
            Some("1"),
            "Invalid token: claim 'aud' must be a string or a list of strings",
        ),
    ] {
        let name = format!("{claim} = {}", value.unwrap_or("missing"));
        cases.push(invalid(&name, &signed(&claims_where(claim, value)), detail));
    }
    cases.extend([
        invalid(
            "refresh token on an access route",
            &signed(&claims_where("type", Some(r#""refresh""#))),
            "'access' token required, 'refresh' token received",
        ),
        invalid(
            "aud while we expect none",
            &signed(&claims_where("aud", Some(r#""someone""#))),
            "Invalid audience",
        ),
    ]);
    cases
}

/// Reads `error="..."` out of a challenge.
fn challenge_error(challenge: &str) -> Option<String> {
    let start = challenge.find("error=\"")? + "error=\"".len();
    let len = challenge[start..].find('"')?;
    Some(challenge[start..start + len].to_owned())
}

fn assert_outcome(case: &Case, via: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) {
    let name = format!("{} ({via})", case.name);
    assert_eq!(
        status.as_u16(),
        case.status,
        "{name}: {}",
        String::from_utf8_lossy(body)
    );
    let challenge = headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{name}: {challenge}");
    assert_eq!(
        challenge_error(challenge).as_deref(),
        case.error,
        "{name}: {challenge}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(body).unwrap_or_else(|_| panic!("{name}: not JSON"));
    assert_eq!(json["detail"], case.detail.as_str(), "{name}");
    // Nothing of the token comes back: no segment longer than a few bytes.
    let echo = format!("{headers:?}{}", String::from_utf8_lossy(body));
    for value in &case.authorization {
        let value = String::from_utf8_lossy(value);
        let token = value.strip_prefix("Bearer ").unwrap_or(&value);
        for part in token.split(['.', ' ', '\t']).filter(|p| p.len() > 16) {
            assert!(!echo.contains(part), "{name}: echoed {part:?}");
        }
    }
}

/// A `tracing` subscriber that keeps every event's fields as text.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<String>>);

impl tracing::Subscriber for Captured {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut self.clone());
        self.0.lock().unwrap().push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

impl tracing::field::Visit for Captured {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let line = format!("{}={value:?} ", field.name());
        self.0.lock().unwrap().push_str(&line);
    }
}

#[tokio::test]
async fn every_attack_is_refused_in_process_without_calling_the_service() {
    let logs = Captured::default();
    let _guard = tracing::subscriber::set_default(logs.clone());
    let authx = AuthX::new(AuthXConfig::from_secret(SECRET).unwrap()).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let service =
        RequireAuthLayer::new(authx).layer(service_fn(move |_req: Request<Full<Bytes>>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
        }));
    let cases = cases();
    for case in &cases {
        let mut req = Request::get("/protected").body(Full::default()).unwrap();
        for value in &case.authorization {
            req.headers_mut()
                .append("authorization", value.as_slice().try_into().unwrap());
        }
        let res = service.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        assert_outcome(case, "in process", parts.status, &parts.headers, &body);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "{}: inner service called",
            case.name
        );
    }
    assert!(cases.len() >= 140, "{} cases", cases.len());

    // One debug event per refusal, naming the reason and never the token.
    let logs = logs.0.lock().unwrap();
    assert_eq!(
        logs.matches("tower-authx: request refused").count(),
        cases.len()
    );
    for case in &cases {
        for value in &case.authorization {
            let value = String::from_utf8_lossy(value);
            for part in value.split(['.', ' ', '\t']).filter(|p| p.len() > 16) {
                assert!(!logs.contains(part), "{}: logged {part:?}", case.name);
            }
        }
    }
}

#[tokio::test]
async fn every_attack_is_refused_over_tcp() {
    let server = Server::start("fresh_token", &[]).await;
    for path in ["/protected", "/fresh-required"] {
        for case in cases() {
            if case.authorization.iter().any(|v| v.len() > 64 * 1024) {
                // hyper's own header limit answers first (431); in process we see it.
                let res = server
                    .get(path)
                    .header("authorization", &case.authorization[0])
                    .send()
                    .await;
                assert_eq!(res.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
                continue;
            }
            let mut call = server.get(path);
            for value in &case.authorization {
                call = call.header("authorization", value);
            }
            let res = call.send().await;
            assert_outcome(&case, path, res.status, &res.headers, &res.body);
        }
    }
}

#[tokio::test]
async fn key_urls_in_headers_are_never_fetched() {
    // A listener the attacker's header points at; it must never see a connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fetched = Arc::new(AtomicUsize::new(0));
    let seen = fetched.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let server = Server::start("fresh_token", &[]).await;
    let attacker = b"attacker-secret-of-32-bytes-long";
    for member in ["jku", "x5u"] {
        for secret in [&attacker[..], SECRET.as_bytes()] {
            let header = format!(r#"{{"alg":"HS256","{member}":"http://{addr}/keys"}}"#);
            let token = forge(&header, &claims_with(""), secret);
            let res = server.get("/protected").bearer(&token).send().await;
            // Signed by us, the URL is just ignored; signed by the attacker, refused.
            let expected = if secret == SECRET.as_bytes() {
                200
            } else {
                401
            };
            assert_eq!(res.status.as_u16(), expected, "{member}");
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        fetched.load(Ordering::SeqCst),
        0,
        "a token made us connect out"
    );
}

#[test]
fn an_hmac_token_keyed_with_our_public_key_is_refused_by_an_rs256_verifier() {
    let key = Key::verifying_pem(
        tower_authx::Algorithm::RS256,
        include_bytes!("../fixtures/keys/rsa_public.pem"),
    )
    .unwrap();
    let authx = AuthX::new(AuthXConfig::new(key)).unwrap();
    let public_pem = include_bytes!("../fixtures/keys/rsa_public.pem");
    for alg in ["HS256", "HS384", "HS512"] {
        let token = forge(
            &format!(r#"{{"alg":"{alg}"}}"#),
            &claims_with(""),
            public_pem,
        );
        let err = authx
            .verify_offline::<tower_authx::NoExtra>(&token, &tower_authx::Requirement::access())
            .unwrap_err();
        assert_eq!(err.to_string(), ALGORITHM, "{alg}");
    }
}

#[test]
fn lifetimes_beyond_the_policy_are_refused_and_the_config_must_fit_it() {
    let day = std::time::Duration::from_secs(86_400);
    let config = AuthXConfig::from_secret(SECRET)
        .unwrap()
        .refresh_token_lifetime(day)
        .max_token_lifetime(day);
    let authx = AuthX::new(config.clone()).unwrap();
    let t = now();
    let verify = |payload: &str| {
        authx.verify_offline::<tower_authx::NoExtra>(
            &signed(payload),
            &tower_authx::Requirement::access(),
        )
    };
    assert!(verify(&claims_where("exp", Some(&(t + 86_000).to_string()))).is_ok());
    let long = verify(&claims_where("exp", Some(&(t + 86_401).to_string()))).unwrap_err();
    assert_eq!(
        long.to_string(),
        "Invalid token: lifetime exceeds the allowed maximum"
    );
    // Without iat, the lifetime counts from now.
    let mut no_iat: serde_json::Value = serde_json::from_str(&claims_where("iat", None)).unwrap();
    no_iat["exp"] = (t + 90_000).into();
    assert!(verify(&no_iat.to_string()).is_err());
    // Our own refresh tokens must fit the policy.
    assert!(AuthX::new(config.refresh_token_lifetime(day * 2)).is_err());
    let claims: Claims = authx
        .verify_offline(
            &authx.refresh_token("u").issue().unwrap(),
            &tower_authx::Requirement::refresh(),
        )
        .unwrap();
    assert_eq!(claims.sub, "u");
}
