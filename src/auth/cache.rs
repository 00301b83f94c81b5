//! What is remembered of a verified token, in Spin's key-value store: under a digest of the
//! token (never the token itself), the subject it authenticated and until when that holds:
//! the token's own expiry, capped by `auth_cache_seconds`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::hex;

const KEY_PREFIX: &str = "sender-token/";

/// The store key of a token: its SHA-256, hex.
pub fn key(token: &str) -> String {
    format!("{KEY_PREFIX}{}", hex(&Sha256::digest(token.as_bytes())))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub subject: String,
    pub audience: String,
    /// Unix seconds.
    pub until: u64,
}

impl Entry {
    /// A token verified `now` for `audience`, remembered until it expires or for
    /// `cache_seconds`, whichever is first.
    pub fn new(subject: String, audience: &str, now: u64, expires: u64, cache_seconds: u64) -> Self {
        Entry {
            subject,
            audience: audience.to_owned(),
            until: expires.min(now.saturating_add(cache_seconds)),
        }
    }

    /// The remembered subject, if the entry still holds `now` for `audience`.
    pub fn subject_for(&self, audience: &str, now: u64) -> Option<&str> {
        (self.audience == audience && now < self.until).then_some(self.subject.as_str())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for anything that is not an entry: it is then verified again.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_a_digest_of_the_token() {
        let key = key("eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
        assert_eq!(key, format!("sender-token/{}", hex(&Sha256::digest(b"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"))));
        assert_eq!(key.len(), 13 + 64, "Spin keys are at most 255 bytes");
        assert!(!key.contains("eyJ"));
    }

    #[test]
    fn an_entry_holds_until_the_token_expires_or_the_cache_time_is_over() {
        let capped = Entry::new("system:serviceaccount:a:b".into(), "aud", 1_000, 4_600, 300);
        assert_eq!(capped.until, 1_300);
        assert_eq!(capped.subject_for("aud", 1_299), Some("system:serviceaccount:a:b"));
        assert_eq!(capped.subject_for("aud", 1_300), None);
        assert_eq!(capped.subject_for("other", 1_100), None);
        let expiring = Entry::new("s".into(), "aud", 1_000, 1_100, 300);
        assert_eq!(expiring.until, 1_100);
        assert_eq!(Entry::from_bytes(&capped.to_bytes()), Some(capped));
        assert_eq!(Entry::from_bytes(b"garbage"), None);
    }
}
