//! MCP sessions bound to the caller who opened them (the MCP security best
//! practices: a session id is not a credential). The `Mcp-Session-Id` a
//! server hands out in its answer to a request without one is recorded with
//! the issuer and subject of that request's token; a request that names the
//! session with anyone else's token, or a session this layer never saw, is
//! answered 404, as the MCP spec answers an unknown session.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::claims::Claims;

/// The header that names an MCP session (Streamable HTTP transport).
pub(super) static MCP_SESSION_ID: http::HeaderName =
    http::HeaderName::from_static("mcp-session-id");

/// Sessions remembered at most, in all; past it the oldest is forgotten
/// (its client re-initializes after a 404).
const CAPACITY: usize = 100_000;

/// Sessions one caller holds at most: past it, that caller's oldest is
/// forgotten, so that nobody crowds out anyone else's.
const PER_OWNER: usize = 64;

/// The longest session id remembered (the spec's ids are visible ASCII; a
/// UUID is 36 bytes).
const MAX_ID_LEN: usize = 256;

/// Whom a session belongs to: the issuer and subject of the token that
/// opened it, and whether a client rather than a user is behind it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Owner {
    iss: Option<String>,
    sub: String,
    client: bool,
}

impl Owner {
    pub(super) fn of<E>(claims: &Claims<E>) -> Owner {
        Owner {
            iss: claims.iss.clone(),
            sub: claims.sub.clone(),
            client: claims.is_client(),
        }
    }
}

/// The sessions seen, with their owners, bounded in all and per owner.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    map: Mutex<Map>,
}

#[derive(Debug, Default)]
struct Map {
    owners: HashMap<Box<str>, Arc<Owner>>,
    by_owner: HashMap<Arc<Owner>, VecDeque<Box<str>>>,
    /// Ids in the order they were bound (some may be gone already).
    order: VecDeque<Box<str>>,
}

impl Sessions {
    /// Whether `id` is a session `owner` opened.
    pub(super) fn belongs(&self, id: &[u8], owner: &Owner) -> bool {
        let Ok(id) = std::str::from_utf8(id) else {
            return false;
        };
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.owners.get(id).is_some_and(|known| **known == *owner)
    }

    /// Records that `owner` opened the session `id`.
    pub(super) fn bind(&self, id: &[u8], owner: Owner) {
        let Ok(id) = std::str::from_utf8(id) else {
            return;
        };
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let map = &mut *map;
        if map.owners.contains_key(id) {
            // A server never hands out one id twice; the first owner keeps it.
            return;
        }
        let owner = match map.by_owner.get_key_value(&owner) {
            Some((known, _)) => known.clone(),
            None => Arc::new(owner),
        };
        let held = map.by_owner.entry(owner.clone()).or_default();
        held.push_back(id.into());
        if held.len() > PER_OWNER
            && let Some(oldest) = held.pop_front()
        {
            map.owners.remove(&oldest);
        }
        map.owners.insert(id.into(), owner);
        map.order.push_back(id.into());
        while map.owners.len() > CAPACITY {
            let Some(oldest) = map.order.pop_front() else {
                break;
            };
            map.forget(&oldest);
        }
        // Ids forgotten otherwise linger in `order`: compact it now and then.
        if map.order.len() > 2 * CAPACITY.max(map.owners.len()) {
            let owners = &map.owners;
            map.order.retain(|id| owners.contains_key(id));
        }
    }

    /// Forgets the session `id` (its client ended it).
    pub(super) fn end(&self, id: &[u8]) {
        if let Ok(id) = std::str::from_utf8(id) {
            self.map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .forget(id);
        }
    }
}

impl Map {
    fn forget(&mut self, id: &str) {
        let Some(owner) = self.owners.remove(id) else {
            return;
        };
        if let Some(held) = self.by_owner.get_mut(&owner) {
            held.retain(|known| &**known != id);
            if held.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(sub: &str) -> Owner {
        Owner {
            iss: Some("https://as.example".into()),
            sub: sub.into(),
            client: false,
        }
    }

    #[test]
    fn a_session_belongs_to_its_opener_alone_and_each_owner_is_bounded() {
        let sessions = Sessions::default();
        sessions.bind(b"s-1", owner("alice"));
        assert!(sessions.belongs(b"s-1", &owner("alice")));
        assert!(!sessions.belongs(b"s-1", &owner("bob")));
        assert!(!sessions.belongs(b"s-2", &owner("alice")));
        // Rebinding an id does not change its owner.
        sessions.bind(b"s-1", owner("bob"));
        assert!(!sessions.belongs(b"s-1", &owner("bob")));
        sessions.end(b"s-1");
        assert!(!sessions.belongs(b"s-1", &owner("alice")));
        // One owner's flood forgets only its own oldest sessions.
        sessions.bind(b"bob-0", owner("bob"));
        for i in 0..1000 {
            sessions.bind(format!("alice-{i}").as_bytes(), owner("alice"));
        }
        assert!(sessions.belongs(b"bob-0", &owner("bob")));
        assert!(sessions.belongs(b"alice-999", &owner("alice")));
        assert!(!sessions.belongs(b"alice-0", &owner("alice")));
        let map = sessions.map.lock().unwrap();
        assert_eq!(map.owners.len(), PER_OWNER + 1);
    }
}
