//! One guarded request, as an operator sees it (feature `metrics`): a span
//! `authx.verify` with its outcome, reason, algorithm, our key's `kid`, the
//! issuer and whether a store was asked, and the metrics named in
//! `metrics.rs`, recorded once per outcome. Without the feature every type
//! here is empty and every method does nothing, so nothing is compiled in.
//! Never a token; the subject only when `trace_subject` asks for it.

use std::sync::Arc;

use crate::error::AuthError;
use crate::keys::Key;

/// What the guards' configuration tells an observation: where the metric
/// handles are, how issuers are labelled, whether spans name the subject.
/// (Implemented by the pipeline, which knows them.)
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) trait Observed {
    fn meters(&self) -> &Meters;
    #[cfg(feature = "metrics")]
    fn issuer_label(&self, index: usize) -> metrics::SharedString;
    fn trace_subject(&self) -> bool;
}

/// How a guarded request ended.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) enum Outcome<'a> {
    /// Verified; the claims went in.
    Allowed {
        subject: Option<&'a str>,
    },
    /// An optional guard let a request without any credential in.
    Anonymous,
    Refused(&'a AuthError),
}

/// What the pipeline learnt on the way, for the span and the labels.
#[derive(Default)]
pub(crate) struct Notes {
    /// Whether a subscriber wants the span (then the key is noted too).
    #[cfg(feature = "metrics")]
    traced: bool,
    #[cfg(feature = "metrics")]
    issuer: std::cell::Cell<Option<usize>>,
    #[cfg(feature = "metrics")]
    key: std::cell::Cell<Option<Arc<Key>>>,
    #[cfg(feature = "metrics")]
    store: std::cell::Cell<bool>,
}

impl Notes {
    /// The token's issuer is the configured one at `index`.
    #[inline]
    pub(crate) fn issuer(&self, index: usize) {
        #[cfg(feature = "metrics")]
        self.issuer.set(Some(index));
        #[cfg(not(feature = "metrics"))]
        let _ = index;
    }

    /// The token names `key`, one of ours (so its `kid` may be shown).
    #[inline]
    pub(crate) fn key(&self, key: &Arc<Key>) {
        #[cfg(feature = "metrics")]
        if self.traced {
            self.key.set(Some(key.clone()));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = key;
    }

    /// A network store was asked.
    #[inline]
    pub(crate) fn store_asked(&self) {
        #[cfg(feature = "metrics")]
        self.store.set(true);
    }
}

/// The metric handles of the common outcome (allowed) and of the verify
/// histogram, per layer kind and issuer, resolved once: resolving a handle
/// (building its key, hashing it, finding it in the exporter's registry)
/// costs more than recording. Resolved at first use, so install your
/// exporter before the first guarded request.
#[derive(Default)]
pub(crate) struct Meters {
    #[cfg(feature = "metrics")]
    allowed: Vec<std::sync::OnceLock<metrics::Counter>>,
    #[cfg(feature = "metrics")]
    verify: [std::sync::OnceLock<metrics::Histogram>; LAYER_KINDS],
}

/// `Admission::kind`'s values.
#[cfg(feature = "metrics")]
const LAYER_KINDS: usize = 5;

#[cfg(feature = "metrics")]
fn kind_index(kind: &str) -> usize {
    match kind {
        "require_auth" => 0,
        "require_fresh" => 1,
        "require_scopes" => 2,
        "require_rule" => 3,
        _ => 4,
    }
}

impl Meters {
    /// Room for `issuers` issuers' handles.
    pub(crate) fn new(issuers: usize) -> Meters {
        #[cfg(not(feature = "metrics"))]
        let _ = issuers;
        Meters {
            #[cfg(feature = "metrics")]
            allowed: (0..LAYER_KINDS * issuers.max(1))
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            #[cfg(feature = "metrics")]
            verify: Default::default(),
        }
    }
}

/// One guarded request in [`TIMED_ONE_IN`] (per thread) is timed: a clock
/// read costs about 1% of a verified HS256 request on some machines, and a
/// latency distribution needs a sample, not every request.
#[cfg(feature = "metrics")]
pub(crate) const TIMED_ONE_IN: u32 = 8;

#[cfg(feature = "metrics")]
fn timed() -> Option<std::time::Instant> {
    thread_local! {
        static SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    let seen = SEEN.with(|seen| {
        let n = seen.get();
        seen.set(n.wrapping_add(1));
        n
    });
    seen.is_multiple_of(TIMED_ONE_IN)
        .then(std::time::Instant::now)
}

/// One guarded request from its start to its outcome.
pub(crate) struct Observation {
    pub(crate) notes: Notes,
    /// When the request came, if it is one of the timed ones.
    #[cfg(feature = "metrics")]
    started: Option<std::time::Instant>,
    #[cfg(feature = "metrics")]
    layer: &'static str,
    #[cfg(feature = "metrics")]
    span: tracing::Span,
}

impl Observation {
    #[inline]
    pub(crate) fn start(kind: &'static str) -> Observation {
        #[cfg(not(feature = "metrics"))]
        let _ = kind;
        #[cfg(feature = "metrics")]
        let span = tracing::info_span!(
            "authx.verify",
            layer = kind,
            outcome = tracing::field::Empty,
            reason = tracing::field::Empty,
            alg = tracing::field::Empty,
            kid = tracing::field::Empty,
            issuer = tracing::field::Empty,
            store = tracing::field::Empty,
            sub = tracing::field::Empty,
        );
        Observation {
            #[cfg(feature = "metrics")]
            notes: Notes {
                traced: !span.is_disabled(),
                ..Notes::default()
            },
            #[cfg(not(feature = "metrics"))]
            notes: Notes::default(),
            #[cfg(feature = "metrics")]
            started: timed(),
            #[cfg(feature = "metrics")]
            layer: kind,
            #[cfg(feature = "metrics")]
            span,
        }
    }

    /// Runs `f` inside the request's span.
    #[inline]
    pub(crate) fn in_span<T>(&self, f: impl FnOnce() -> T) -> T {
        #[cfg(feature = "metrics")]
        let _entered = self.span.enter();
        f()
    }

    /// The local part of the decision is done (what follows is a wait).
    #[inline]
    pub(crate) fn decided_locally(&self, pipeline: &impl Observed) {
        #[cfg(not(feature = "metrics"))]
        let _ = pipeline;
        #[cfg(feature = "metrics")]
        if let Some(started) = self.started {
            pipeline.meters().verify[kind_index(self.layer)]
                .get_or_init(
                    || metrics::histogram!(crate::metrics::VERIFY_DURATION, "layer" => self.layer),
                )
                .record(started.elapsed().as_secs_f64());
        }
    }

    /// Records how the request ended.
    #[inline]
    pub(crate) fn finish(self, pipeline: &impl Observed, outcome: Outcome<'_>) {
        #[cfg(not(feature = "metrics"))]
        let _ = (pipeline, outcome);
        #[cfg(feature = "metrics")]
        {
            let (outcome_label, reason) = match outcome {
                Outcome::Allowed { .. } => ("allowed", "none"),
                Outcome::Anonymous => ("anonymous", "none"),
                Outcome::Refused(error) => ("refused", crate::metrics::reason(error)),
            };
            let index = self.notes.issuer.get();
            let issuer = || index.map(|i| pipeline.issuer_label(i)).unwrap_or_default();
            let counter = || {
                metrics::counter!(
                    crate::metrics::REQUESTS,
                    "layer" => self.layer,
                    "outcome" => outcome_label,
                    "reason" => reason,
                    "issuer" => issuer(),
                )
            };
            let slot = index.and_then(|issuer| {
                pipeline
                    .meters()
                    .allowed
                    .get(issuer * LAYER_KINDS + kind_index(self.layer))
            });
            match (outcome, slot) {
                (Outcome::Allowed { .. }, Some(slot)) => slot.get_or_init(counter).increment(1),
                _ => counter().increment(1),
            }
            let span = &self.span;
            if !span.is_disabled() {
                span.record("outcome", outcome_label);
                span.record("reason", reason);
                span.record("issuer", &*issuer());
                span.record("store", self.notes.store.get());
                if let Some(key) = self.notes.key.take() {
                    span.record("alg", key.algorithm().as_str());
                    if let Some(kid) = key.kid() {
                        span.record("kid", kid);
                    }
                }
                if let Outcome::Allowed { subject: Some(sub) } = outcome
                    && pipeline.trace_subject()
                {
                    span.record("sub", sub);
                }
            }
        }
    }
}

/// When a network store is asked, for its latency: read only when the
/// feature records it.
#[inline]
pub(crate) fn store_asked_at() -> Option<std::time::Instant> {
    #[cfg(feature = "metrics")]
    return Some(std::time::Instant::now());
    #[cfg(not(feature = "metrics"))]
    None
}

/// Records how long a network store took for a guarded request.
#[inline]
pub(crate) fn store_answered(
    store: &'static str,
    ok: bool,
    #[allow(unused_variables)] started: Option<std::time::Instant>,
) {
    #[cfg(feature = "metrics")]
    if let Some(started) = started {
        metrics::histogram!(
            crate::metrics::STORE_DURATION,
            "store" => store,
            "result" => if ok { "ok" } else { "error" },
        )
        .record(started.elapsed().as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (store, ok);
}
