//! Long-lived responses (server-sent events, gRPC streams, WebSockets) that
//! end with the credential that opened them: one [`Schedule`] per `AuthX`
//! holds every open stream's credential, ends it at its expiry, and looks
//! again at a subject's streams when the revocation store announces a change
//! of that subject. The layer and the handle a WebSocket holds are in
//! `layer::credential_end`.

mod schedule;

use crate::policy::Requirement;

pub(crate) use schedule::{Credential, Schedule, Slot};

/// Why a stream ended before its response did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// The credential expired (its `exp` plus its issuer's leeway).
    Expired,
    /// The token, its session or its subject was revoked (a logout).
    Revoked,
    /// A WebSocket's in-band renewal was refused (another subject or
    /// session, or a token a new request would not pass).
    RenewalRefused,
}

impl Ended {
    /// The WebSocket close code to send: 1008, policy violation (RFC 6455
    /// 7.4.1).
    pub const fn close_code(self) -> u16 {
        1008
    }

    /// Why, for a WebSocket close frame's reason, a gRPC status message or
    /// the last SSE event (under the 123 bytes a close reason may hold).
    pub const fn reason(self) -> &'static str {
        match self {
            Ended::Expired => "the credential has expired; authenticate again",
            Ended::Revoked => "the credential was revoked; authenticate again",
            Ended::RenewalRefused => "the renewal was refused; authenticate again",
        }
    }

    /// A short name, as the metric `authx_streams_ended_total` labels it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Ended::Expired => "expired",
            Ended::Revoked => "revoked",
            Ended::RenewalRefused => "renewal_refused",
        }
    }

    fn code(self) -> u8 {
        match self {
            Ended::Expired => 1,
            Ended::Revoked => 2,
            Ended::RenewalRefused => 3,
        }
    }

    fn of(code: u8) -> Option<Ended> {
        match code {
            1 => Some(Ended::Expired),
            2 => Some(Ended::Revoked),
            3 => Some(Ended::RenewalRefused),
            _ => None,
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// What the guards of a request required, kept (only while some stream is
/// watched) so a WebSocket's in-band renewal is checked against each of
/// them, as a new request would be.
#[derive(Clone, Debug, Default)]
pub(crate) struct Required(pub(crate) Vec<Requirement>);
