//! The `authx.verify` span (feature `metrics`): one per guarded request, with
//! its outcome, reason, algorithm, our key's kid and whether a store was
//! asked; never the token or its jti, and the subject only when asked for.
#![cfg(feature = "metrics")]

use crate::support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use tower_authx::{AuthX, AuthXConfig};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;

/// Every span and its fields, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Captured {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let mut text = self.0.lock().unwrap();
        let _ = write!(text, "\nspan {}", attrs.metadata().name());
        attrs.record(&mut Fields(&mut text));
    }

    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: Context<'_, S>,
    ) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut text = self.0.lock().unwrap();
        let _ = write!(text, "\nevent");
        event.record(&mut Fields(&mut text));
    }
}

fn captured(trace_subject: bool) -> (String, Vec<String>) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = support::private_key(tower_authx::Algorithm::ES256, "ec256_private.pem")
        .with_kid("our-key");
    let authx = AuthX::new(AuthXConfig::new(key).trace_subject(trace_subject)).unwrap();
    let token = authx.access_token("alice").fresh(true).issue().unwrap();
    let mut tampered = token.clone();
    tampered.replace_range(token.len() - 5.., "AAAAA");
    runtime.block_on(async {
        assert_eq!(
            support::guarded_status(&authx, &token).await,
            StatusCode::OK
        );
        assert_eq!(
            support::guarded_status(&authx, &tampered).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            support::guarded_status(&authx, "garbage").await,
            StatusCode::UNAUTHORIZED
        );
    });
    let jti = support::payload_of(&token)["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = captured.0.lock().unwrap().clone();
    (text, vec![token, tampered, jti])
}

#[test]
fn one_span_per_guarded_request_with_outcome_and_reason_and_no_secrets() {
    let (text, secrets) = captured(false);
    assert_eq!(text.matches("span authx.verify").count(), 3, "{text}");
    assert!(
        text.contains("outcome=\"allowed\" reason=\"none\""),
        "{text}"
    );
    assert!(
        text.contains("outcome=\"refused\" reason=\"bad_signature\""),
        "{text}"
    );
    assert!(
        text.contains("outcome=\"refused\" reason=\"malformed\""),
        "{text}"
    );
    assert!(text.contains("alg=\"ES256\" kid=\"our-key\""), "{text}");
    assert!(text.contains("store=false"), "{text}");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a token or jti in the spans: {text}"
        );
    }
    assert!(!text.contains("alice"), "the subject, unasked: {text}");
}

#[test]
fn the_subject_only_when_asked_for() {
    let (text, secrets) = captured(true);
    assert_eq!(text.matches("sub=\"alice\"").count(), 1, "{text}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
}
