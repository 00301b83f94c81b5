//! The pod-name rule: a deterministic name per event, so that a redelivered event finds the
//! pod its first delivery made. This rule is part of the contract: changing it makes
//! duplicates after an upgrade.

use crate::identity::{EventKey, hex};

/// Hex characters of the event digest in a pod name (80 bits).
pub const POD_NAME_HASH_LEN: usize = 20;
/// The longest `client_name_prefix` that still gives pod names usable as label values.
pub const MAX_NAME_PREFIX_LEN: usize = 63 - 1 - POD_NAME_HASH_LEN;

/// `{prefix}-{h}`, where `h` is the first 20 hex characters of SHA-256 over the event's
/// length-prefixed source and id ([`EventKey::digest`]).
pub fn pod_name(prefix: &str, event: &EventKey) -> String {
    let digest = hex(&event.digest(&[]));
    format!("{prefix}-{}", &digest[..POD_NAME_HASH_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;
    use crate::names;

    fn key() -> EventKey {
        EventKey { source: contract::SOURCE.into(), id: contract::ID.into() }
    }

    #[test]
    fn pod_name_rule() {
        let name = pod_name("podgateway-client", &key());
        let expected = hex(&key().digest(&[]))[..20].to_owned();
        assert_eq!(name, format!("podgateway-client-{expected}"));
        // Pinned: a change to the rule would create duplicate pods after an upgrade.
        assert_eq!(name, contract::POD_42);
        assert!(names::is_dns1123_subdomain(&name) && names::is_label_value(&name));
        let other = EventKey { source: "urn:test".into(), id: "43".into() };
        assert_ne!(pod_name("p", &other), pod_name("p", &key()));
        let longest = "p".repeat(MAX_NAME_PREFIX_LEN);
        assert_eq!(pod_name(&longest, &key()).len(), 63);
    }
}
