//! Kubernetes naming rules (apimachinery `validation`), used for configuration, gateway
//! names and pod names so that a value the API would reject is caught before any call.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_VALUE_MAX: usize = 63;
const QUALIFIED_NAME_MAX: usize = 63;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters (namespaces, container names).
pub fn is_dns1123_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= DNS1123_LABEL_MAX
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && starts_and_ends_alphanumeric(value)
}

/// Dot-separated DNS-1123 labels, at most 253 characters (pod names, key prefixes).
pub fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= DNS1123_SUBDOMAIN_MAX
        && value.split('.').all(|part| !part.is_empty() && is_dns1123_label(part))
}

/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, at most 63 characters; may be empty.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_qualified_name_part(value, LABEL_VALUE_MAX)
}

/// A label or annotation key: an optional DNS-1123 subdomain prefix and `/`, then a name
/// of at most 63 characters made of alphanumerics, `-`, `_` and `.`.
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            is_dns1123_subdomain(prefix) && is_qualified_name_part(name, QUALIFIED_NAME_MAX)
        }
        None => is_qualified_name_part(key, QUALIFIED_NAME_MAX),
    }
}

fn is_qualified_name_part(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && starts_and_ends_alphanumeric(value)
}

fn starts_and_ends_alphanumeric(value: &str) -> bool {
    let bytes = value.as_bytes();
    matches!((bytes.first(), bytes.last()), (Some(first), Some(last))
        if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "default", "pod-gateway", "a1", "0", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok} should be a DNS-1123 label");
        }
        for bad in ["", "A", "-a", "a-", "a.b", "a_b", "é", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad} should not be a DNS-1123 label");
        }
    }

    #[test]
    fn dns1123_subdomains() {
        for ok in ["a", "a.b", "podgateway.io", "x-1.y-2.z"] {
            assert!(is_dns1123_subdomain(ok), "{ok}");
        }
        let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
        assert_eq!(long.len(), 253);
        assert!(is_dns1123_subdomain(&long));
        for bad in ["", ".", "a.", ".a", "a..b", "A.b", &format!("{long}e")] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        for ok in ["", "foo", "Foo_Bar.1-2", "a", &"z".repeat(63)] {
            assert!(is_label_value(ok), "{ok:?} should be a label value");
        }
        for bad in ["-foo", "foo-", "_a", "a b", "a/b", "ü", "foo\n", &"z".repeat(64)] {
            assert!(!is_label_value(bad), "{bad:?} should not be a label value");
        }
    }

    #[test]
    fn qualified_names() {
        for ok in ["setGateway", "podgateway.io/gateway", "app.kubernetes.io/name", "a_b.c-d"] {
            assert!(is_qualified_name(ok), "{ok}");
        }
        for bad in ["", "/a", "a/", "Podgateway.io/x", "a/b/c", "-a", "a b", &"k".repeat(64)] {
            assert!(!is_qualified_name(bad), "{bad}");
        }
    }
}
