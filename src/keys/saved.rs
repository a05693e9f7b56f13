//! An issuer's last good JWKS kept in a file ([`RemoteJwks::keep_last_good`]),
//! so that a restart while the issuer is down starts with the keys it last
//! published instead of refusing every token until it is back.
//!
//! The file is a cache the operator asked for, not configuration: one that is
//! missing, unreadable, written for another source, or older than its bound
//! is ignored (with a warning), never an error that stops a start.
//!
//! [`RemoteJwks::keep_last_good`]: super::remote::RemoteJwks::keep_last_good

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::set::{KeyRing, signature_keys};

/// Where the keys are kept, for how long they may serve, and what was last
/// written (a refetch that brings the same document writes nothing).
#[derive(Debug)]
pub(super) struct SavedKeys {
    path: PathBuf,
    max_age: Duration,
    written: Mutex<Vec<u8>>,
}

/// The file: where the keys came from, when, and the JWKS as fetched.
#[derive(Deserialize)]
struct Saved {
    source: String,
    fetched_at: u64,
    jwks: serde_json::Value,
}

impl SavedKeys {
    pub(super) fn new(path: PathBuf, max_age: Duration) -> SavedKeys {
        SavedKeys {
            path,
            max_age,
            written: Mutex::default(),
        }
    }

    /// The keys saved for `source`, if the file holds some at most
    /// `max_age` old; parsed as a fetched JWKS is.
    pub(super) fn load(&self, source: &str) -> Option<KeyRing> {
        let ignored = |why: &str| {
            tracing::warn!(path = %self.path.display(), why, "tower-authx: saved JWKS not used");
            None
        };
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => return ignored("unreadable"),
        };
        let Ok(saved) = serde_json::from_slice::<Saved>(&bytes) else {
            return ignored("not a saved JWKS");
        };
        if saved.source != source {
            return ignored("saved for another source");
        }
        if now_secs().saturating_sub(saved.fetched_at) > self.max_age.as_secs() {
            return ignored("older than its bound");
        }
        let Ok(jwks) = serde_json::to_vec(&saved.jwks) else {
            return ignored("not a saved JWKS");
        };
        match signature_keys(&jwks) {
            Ok(ring) if ring.len() > 0 => Some(ring),
            _ => ignored("no usable key"),
        }
    }

    /// Keeps `jwks` (a document just fetched and parsed) for `source`: a new
    /// file renamed over the old one, so a crash never leaves half a file.
    /// Written off the runtime's threads; a failure is a warning.
    pub(super) fn save(&self, source: &str, jwks: &[u8]) {
        {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            if written.as_slice() == jwks {
                return;
            }
            written.clear();
            written.extend_from_slice(jwks);
        }
        let Ok(document) = std::str::from_utf8(jwks) else {
            return;
        };
        let file = format!(
            "{{\"source\":{},\"fetched_at\":{},\"jwks\":{document}}}",
            serde_json::Value::from(source),
            now_secs()
        );
        let path = self.path.clone();
        let write = move || {
            let fresh = path.with_extension("tmp");
            if let Err(e) =
                std::fs::write(&fresh, file).and_then(|()| std::fs::rename(&fresh, &path))
            {
                tracing::warn!(path = %path.display(), error = %e, "tower-authx: the JWKS could not be saved");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(write)),
            Err(_) => write(),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"04N0xi21hshyvBp7I167sbE_bXqyqkAPfefdklMO7wY","y":"UI8exy-C06a7DUnjIdENkxeFtHM4-l_41LqEw9nVgmw","kid":"a"}]}"#;

    fn file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("authx-saved-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn saved_keys_come_back_for_their_source_only() {
        let path = file("round-trip.json");
        let saved = SavedKeys::new(path.clone(), Duration::from_secs(60));
        assert!(saved.load("issuer A").is_none(), "no file yet");
        saved.save("issuer A", JWKS.as_bytes());
        assert!(saved.load("issuer A").unwrap().contains("a"));
        assert!(saved.load("issuer B").is_none(), "another source's keys");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn old_broken_or_keyless_files_are_ignored() {
        let path = file("refused.json");
        let saved = SavedKeys::new(path.clone(), Duration::from_secs(60));
        let write = |text: String| std::fs::write(&path, text).unwrap();
        write(format!(
            r#"{{"source":"s","fetched_at":{},"jwks":{JWKS}}}"#,
            now_secs() - 61
        ));
        assert!(saved.load("s").is_none(), "older than max_age");
        write(format!(
            r#"{{"source":"s","fetched_at":{},"jwks":{JWKS}"#,
            now_secs()
        ));
        assert!(saved.load("s").is_none(), "cut short");
        write(format!(
            r#"{{"source":"s","fetched_at":{},"jwks":{{"keys":[{{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}}]}}}}"#,
            now_secs()
        ));
        assert!(
            saved.load("s").is_none(),
            "no usable key (a secret is none)"
        );
        write(format!(
            r#"{{"source":"s","fetched_at":{},"jwks":{JWKS}}}"#,
            now_secs()
        ));
        assert!(saved.load("s").is_some());
    }
}
