//! An introspection answer (RFC 7662 2.2), read strictly: a JSON object
//! with no member named twice at any depth, `active` a boolean, and, for an
//! active token, an `iss` (when present) that is its issuer's and a
//! `token_type` that names an access token. What remains becomes the token's
//! claims, read by the same reader as a JWT's payload.

use serde::de::DeserializeSeed;
use serde_json::Value;

use crate::error::InvalidToken;
use crate::json::StrictValue;

/// What an active token's answer says, as a claims payload (`active` taken
/// out, `iss` and `sub` filled in where the answer leaves them out).
#[derive(Debug)]
pub(crate) struct Answer {
    payload: Box<str>,
    /// Its `exp` (Unix seconds), which bounds how long it may be cached.
    exp: Option<f64>,
}

impl Answer {
    /// The claims payload (a JSON object).
    pub(crate) fn payload(&self) -> &[u8] {
        self.payload.as_bytes()
    }

    /// When the token expires, if the answer says.
    pub(crate) fn exp(&self) -> Option<f64> {
        self.exp
    }
}

/// What the authorization server said about a token.
#[derive(Debug)]
pub(crate) enum Verdict {
    Active(Answer),
    /// Not a token it knows as valid now (expired, revoked, never issued).
    Inactive,
}

/// Why an answer was not taken.
#[derive(Debug, PartialEq)]
pub(crate) enum Unread {
    /// Not an answer at all: the server is broken (503, never the client's fault).
    Malformed(&'static str),
    /// A well-formed answer about a token we do not take (401).
    Refused(InvalidToken),
}

/// How an answer is read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reading<'a> {
    /// The issuer's `iss`: an answer naming another is refused.
    pub(crate) iss: &'a str,
    /// Whether a token the answer gives no `token_type` is an access token
    /// (oidc-provider leaves it out for refresh tokens, so it is not by default).
    pub(crate) untyped_is_access: bool,
}

/// Reads `body`, the answer to an introspection request.
pub(crate) fn read(body: &[u8], reading: Reading<'_>) -> Result<Verdict, Unread> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = StrictValue
        .deserialize(&mut reader)
        .and_then(|v| reader.end().map(|()| v))
        .map_err(|_| Unread::Malformed("not a JSON object without duplicate members"))?;
    let Value::Object(mut members) = value else {
        return Err(Unread::Malformed("not a JSON object"));
    };
    match members.remove("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Verdict::Inactive),
        _ => return Err(Unread::Malformed("'active' is not a boolean")),
    }
    match members.get("iss") {
        None => {
            members.insert("iss".into(), reading.iss.into());
        }
        Some(Value::String(iss)) if iss == reading.iss => {}
        Some(_) => return Err(Unread::Refused(InvalidToken::Issuer)),
    }
    match members.get("token_type") {
        Some(Value::String(kind))
            if kind.eq_ignore_ascii_case("bearer") || kind.eq_ignore_ascii_case("dpop") => {}
        None if reading.untyped_is_access => {}
        Some(Value::String(_)) | None => {
            return Err(Unread::Refused(InvalidToken::Claims(
                "the authorization server does not name it an access token (token_type)".into(),
            )));
        }
        Some(_) => return Err(Unread::Malformed("'token_type' is not a string")),
    }
    // A token no user is behind (client credentials) speaks for its client
    // (RFC 9068 2.2).
    if !members.contains_key("sub")
        && let Some(Value::String(client)) = members.get("client_id")
    {
        let client = client.clone();
        members.insert("sub".into(), client.into());
    }
    let exp = members.get("exp").and_then(Value::as_f64);
    Ok(Verdict::Active(Answer {
        payload: Value::Object(members).to_string().into_boxed_str(),
        exp,
    }))
}

/// The answer inside a signed introspection answer's verified payload (RFC
/// 9701 5): its `iss` must be the issuer's, its `aud` name us (one of
/// `ours`: our client id, or the resource the issuer's tokens are for, as
/// oidc-provider writes it), its `iat` be a number; then its
/// `token_introspection` object, as JSON, is the answer.
pub(crate) fn inside_signed(payload: &[u8], iss: &str, ours: &[&str]) -> Result<Vec<u8>, Unread> {
    let mut reader = serde_json::Deserializer::from_slice(payload);
    let value = StrictValue
        .deserialize(&mut reader)
        .and_then(|v| reader.end().map(|()| v))
        .map_err(|_| Unread::Malformed("the signed answer is not a JSON object"))?;
    let Value::Object(mut members) = value else {
        return Err(Unread::Malformed("the signed answer is not a JSON object"));
    };
    if members.get("iss").and_then(Value::as_str) != Some(iss) {
        return Err(Unread::Malformed("the signed answer names another issuer"));
    }
    let is_ours = |aud: &Value| aud.as_str().is_some_and(|aud| ours.contains(&aud));
    let for_us = match members.get("aud") {
        Some(Value::Array(auds)) => auds.iter().any(is_ours),
        Some(aud) => is_ours(aud),
        None => false,
    };
    if !for_us {
        return Err(Unread::Malformed(
            "the signed answer is not addressed to this client",
        ));
    }
    if !members.get("iat").is_some_and(Value::is_number) {
        return Err(Unread::Malformed("the signed answer has no iat"));
    }
    match members.remove("token_introspection") {
        Some(answer @ Value::Object(_)) => Ok(answer.to_string().into_bytes()),
        _ => Err(Unread::Malformed(
            "the signed answer holds no token_introspection object",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AS: Reading<'static> = Reading {
        iss: "https://as.example",
        untyped_is_access: false,
    };

    fn active(body: &str) -> Answer {
        match read(body.as_bytes(), AS) {
            Ok(Verdict::Active(answer)) => answer,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn an_active_answer_becomes_a_claims_payload() {
        let answer = active(
            r#"{"active":true,"client_id":"c","scope":"read","exp":2000000000,"token_type":"Bearer"}"#,
        );
        let payload: Value = serde_json::from_slice(answer.payload()).unwrap();
        assert_eq!(
            payload["sub"], "c",
            "a client's token speaks for the client"
        );
        assert_eq!(payload["iss"], "https://as.example");
        assert!(payload.get("active").is_none());
        assert_eq!(answer.exp(), Some(2e9));
        let user = active(r#"{"active":true,"sub":"alice","client_id":"c","token_type":"DPoP"}"#);
        let payload: Value = serde_json::from_slice(user.payload()).unwrap();
        assert_eq!(payload["sub"], "alice");
    }

    #[test]
    fn inactive_is_inactive_whatever_else_it_says() {
        for body in [
            r#"{"active":false}"#,
            r#"{"active":false,"iss":"https://evil.example","token_type":"refresh_token"}"#,
        ] {
            assert!(
                matches!(read(body.as_bytes(), AS), Ok(Verdict::Inactive)),
                "{body}"
            );
        }
    }

    #[test]
    fn broken_answers_are_the_servers_fault() {
        for body in [
            "",
            "null",
            "[]",
            r#"{"active":"true"}"#,
            r#"{"active":1}"#,
            r#"{}"#,
            r#"{"active":true,"active":false}"#,
            r#"{"active":false,"active":true}"#,
            r#"{"active":true,"cnf":{"jkt":"a","jkt":"b"},"token_type":"Bearer"}"#,
            r#"{"active":true,"token_type":5}"#,
            r#"{"active":true} trailing"#,
        ] {
            assert!(
                matches!(read(body.as_bytes(), AS), Err(Unread::Malformed(_))),
                "{body}"
            );
        }
        let deep = format!(
            r#"{{"active":true,"x":{}{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        assert!(matches!(
            read(deep.as_bytes(), AS),
            Err(Unread::Malformed(_))
        ));
    }

    #[test]
    fn another_issuer_or_a_token_not_for_access_is_refused() {
        let refused = |body: &str, reading| match read(body.as_bytes(), reading) {
            Err(Unread::Refused(why)) => why,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(
            refused(
                r#"{"active":true,"iss":"https://other.example","token_type":"Bearer"}"#,
                AS
            ),
            InvalidToken::Issuer
        );
        assert!(matches!(
            refused(r#"{"active":true,"sub":"a"}"#, AS),
            InvalidToken::Claims(_)
        ));
        assert!(matches!(
            refused(r#"{"active":true,"token_type":"refresh_token"}"#, AS),
            InvalidToken::Claims(_)
        ));
        let untyped = Reading {
            untyped_is_access: true,
            ..AS
        };
        assert!(matches!(
            read(br#"{"active":true,"sub":"a"}"#, untyped),
            Ok(Verdict::Active(_))
        ));
    }
}
