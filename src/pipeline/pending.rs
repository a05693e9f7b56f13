//! What a request waits for before its fate is known, and how it goes on
//! from there: what reading its token's claims waits for (see `read.rs`), or
//! the network stores' answers. A pending step knows how to continue itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Request;

use super::read::Wait;
use super::{ClaimsExtra, Pipeline, Presented};
use crate::dpop::replay_verdict;
use crate::error::AuthError;
use crate::observe::{Notes, store_answered};
use crate::policy::Requirement;
use crate::store::StoreFuture;

/// What a request waits for before its fate is known.
pub(crate) enum Pending {
    /// What reading the token's claims waits for (its issuer's keys, or its
    /// answer about the token); the token (and its CSRF value) as read, to
    /// go on with.
    Claims {
        wait: Wait,
        token: String,
        csrf: Option<Vec<u8>>,
        /// Whether it came with the DPoP scheme (its proof is read once the
        /// token is verified).
        dpop: bool,
        cookie: bool,
    },
    /// A network store's answers; the claims are in the extensions.
    Stores(StoreChecks),
}

/// The network stores' answers a request waits for, asked in order: the
/// replay store (a DPoP proof's first use), then the revocation store.
#[derive(Default)]
pub(crate) struct StoreChecks {
    pub(super) replay: Option<StoreFuture<bool>>,
    pub(super) revocation: Option<StoreFuture<bool>>,
    /// When the stores were asked (for their latency, with the `metrics` feature).
    pub(super) asked: Option<std::time::Instant>,
}

impl StoreChecks {
    /// Whether any answer is still to come.
    pub(super) fn is_waiting(&self) -> bool {
        self.replay.is_some() || self.revocation.is_some()
    }

    /// The verdict once every answer is in.
    pub(crate) fn poll_verdict(
        &mut self,
        cx: &mut Context<'_>,
        pipeline: &Pipeline,
    ) -> Poll<Result<(), AuthError>> {
        if let Some(replay) = &mut self.replay {
            let answer = ready!(Pin::new(replay).poll(cx));
            self.replay = None;
            store_answered("replay", answer.is_ok(), self.asked);
            replay_verdict(answer)?;
        }
        if let Some(revocation) = &mut self.revocation {
            let answer = ready!(Pin::new(revocation).poll(cx));
            self.revocation = None;
            store_answered("revocation", answer.is_ok(), self.asked);
            pipeline.revocation_verdict(answer)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Pending {
    /// Goes on once what it waits for is in: `Ok(None)` when the request is
    /// admitted (its claims in the extensions), `Ok(Some(next))` for another
    /// wait, `Err` for a refusal.
    pub(crate) fn poll_continue<E: ClaimsExtra, B>(
        &mut self,
        cx: &mut Context<'_>,
        pipeline: &Pipeline,
        requirement: &Requirement,
        req: &mut Request<B>,
        notes: &Notes,
    ) -> Poll<Result<Option<Pending>, AuthError>> {
        match self {
            Pending::Stores(checks) => checks.poll_verdict(cx, pipeline).map(|v| v.map(|()| None)),
            Pending::Claims {
                wait,
                token,
                csrf,
                dpop,
                cookie,
            } => {
                let waited = ready!(wait.poll_wait(cx))?;
                // On from where the request stopped.
                let presented = Presented {
                    token,
                    dpop: *dpop,
                    csrf: csrf.as_deref(),
                    cookie: *cookie,
                };
                Poll::Ready(pipeline.after_wait::<E, B>(
                    requirement,
                    req,
                    wait,
                    waited,
                    presented,
                    notes,
                ))
            }
        }
    }
}
