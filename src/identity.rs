//! Stable identities derived from what identifies an event: CloudEvents are unique by
//! `source` + `id`, so redeliveries of one event name the same pod and get the same reply id;
//! a pod is unique by its `uid`, so every change of one pod says the same lifecycle event id.

use sha2::{Digest, Sha256};

/// Who sent an event and which one it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub source: String,
    pub id: String,
}

impl EventKey {
    /// The [`digest`] of the key's source and id, then `extra`. Pod names depend on this:
    /// never change it.
    pub fn digest(&self, extra: &[&str]) -> [u8; 32] {
        let key = [self.source.as_str(), self.id.as_str()];
        digest(&key.iter().chain(extra).copied().collect::<Vec<_>>())
    }
}

/// SHA-256 over `fields`, each prefixed with its length as a 64-bit big-endian integer, so
/// that no two different field lists hash the same bytes (`("a-b","c")` and `("a","b-c")`
/// differ).
pub fn digest(fields: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_length_prefixed() {
        let key = |source: &str, id: &str| EventKey { source: source.into(), id: id.into() };
        assert_ne!(key("a-b", "c").digest(&[]), key("a", "b-c").digest(&[]));
        assert_ne!(key("ab", "").digest(&[]), key("a", "b").digest(&[]));
        assert_eq!(key("a", "b").digest(&[]), key("a", "b").digest(&[]));
        // The published rule: SHA-256 of be64(len) ‖ bytes for source, then id.
        let mut manual = Sha256::new();
        manual.update(1u64.to_be_bytes());
        manual.update(b"a");
        manual.update(1u64.to_be_bytes());
        manual.update(b"b");
        assert_eq!(key("a", "b").digest(&[]), <[u8; 32]>::from(manual.finalize()));
    }
}
