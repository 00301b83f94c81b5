//! `fermyon:spin/key-value@2.0.0`, answered from stores that belong to the running application.
//!
//! # What Spin does, and so this host
//!
//! From the Spin sources (the same in v3.6.3, v4.0.2 and `main`; paths in
//! `spinframework/spin`):
//!
//! - **Which labels a component may open** (`crates/factor-key-value/src/host.rs`,
//!   `KeyValueDispatch::open`): a label that is not in the component's `key_value_stores` is
//!   `error::access-denied`, whether or not a store of that name exists. `no-such-store` comes
//!   only from the store manager (`crates/factor-key-value/src/util.rs`,
//!   `DelegatingStoreManager::get`) for an allowed label without a store, and Spin never gets
//!   there: when it loads the application (`crates/factor-key-value/src/lib.rs`,
//!   `configure_app`) every listed label must have a store, else the application does not start
//!   (`unknown key_value_stores label "<label>" for component "<id>"`). Without a runtime
//!   config file only `default` has one (`crates/runtime-config/src/lib.rs`,
//!   `key_value_config_resolver`), so this host refuses to start on any other label
//!   ([`check_labels`]), and `no-such-store` cannot happen here either.
//! - **Labels** (`crates/manifest/src/schema/v2.rs`, `kebab_or_snake_case`; `crates/serde/src/id.rs`):
//!   each entry is a kebab-case or snake_case id (words of ASCII letters and digits, each word
//!   starting with a letter and all lower or all upper case), else the manifest does not load
//!   (`expected kebab-case or snake_case`); see [`label_error`].
//! - **Open handles**: an instance may hold up to `u32::MAX` open stores (`lib.rs`,
//!   `InstanceBuilder::build`), so `store-table-full` does not happen in practice; dropping the
//!   resource closes it.
//! - **Keys and values**: Spin limits neither on `set` (the default store is SQLite,
//!   `crates/key-value-spin/src/store.rs`). Reads are limited to `MAX_HOST_BUFFERED_BYTES`,
//!   128 MiB (`crates/world/src/lib.rs`): `get` fails with `other("query result exceeds limit of
//!   134217728 bytes")` when `size_of::<Option<Vec<u8>>>()` plus the value's length exceeds it,
//!   and `get-keys` when `size_of::<Vec<String>>()` plus, per key, `size_of::<String>()` and its
//!   length does. `exists` reads without a limit.
//! - **Persistence**: `spin up` keeps the `default` store in the SQLite file
//!   `<state dir>/sqlite_key_value.db` (`DEFAULT_SPIN_STORE_FILENAME`; `--state-dir`, or
//!   `.spin/` next to the manifest), shared by every instance and every request of the
//!   application and kept across restarts. This host keeps each application's stores in memory
//!   ([`KeyValueStores`]), shared by all instances of one running [`super::SpinHost`] and gone
//!   when it stops: the same within a test, since the suite's `spin up` gets a new state
//!   directory per application (`crate::spin_cli`).
//! - `get-keys` has no promised order; SQLite answers `SELECT key … WHERE store=$1` along the
//!   `(store, key)` primary key, i.e. sorted by key bytes, as this host does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::component::{Resource, ResourceTable};

wasmtime::component::bindgen!({
    inline: r#"
        package fermyon:spin@2.0.0;

        interface key-value {
            resource store {
                open: static func(label: string) -> result<store, error>;
                get: func(key: string) -> result<option<list<u8>>, error>;
                set: func(key: string, value: list<u8>) -> result<_, error>;
                delete: func(key: string) -> result<_, error>;
                exists: func(key: string) -> result<bool, error>;
                get-keys: func() -> result<list<string>, error>;
            }

            variant error {
                store-table-full,
                no-such-store,
                access-denied,
                other(string),
            }
        }

        world host {
            import key-value;
        }
    "#,
    world: "host",
    with: {
        "fermyon:spin/key-value.store": OpenStore,
    },
    imports: { default: trappable },
});

pub use fermyon::spin::key_value::{Error, add_to_linker};
use fermyon::spin::key_value::{Host, HostStore};

/// The store label every Spin application has without a runtime config file.
pub const DEFAULT_STORE: &str = "default";

/// `spin_world::MAX_HOST_BUFFERED_BYTES`: the most one read may return.
pub const MAX_RESULT_BYTES: usize = 128 << 20;

/// The stores of one running application, by label: what Spin's store manager holds.
#[derive(Debug, Default)]
pub struct KeyValueStores {
    stores: Mutex<BTreeMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl KeyValueStores {
    /// The entries of a store, sorted by key.
    pub fn entries(&self, label: &str) -> Vec<(String, Vec<u8>)> {
        let stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        stores.get(label).map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    }

    fn with<R>(&self, label: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> R) -> R {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        f(stores.entry(label.to_owned()).or_default())
    }
}

/// An open `store` resource: which store the handle names.
pub struct OpenStore {
    label: String,
}

/// One instance's view: the labels its component lists, and the handles it opened.
pub struct KeyValueDispatch {
    allowed: Arc<BTreeSet<String>>,
    stores: Arc<KeyValueStores>,
    table: ResourceTable,
    max_result_bytes: usize,
}

impl KeyValueDispatch {
    pub fn new(allowed: Arc<BTreeSet<String>>, stores: Arc<KeyValueStores>) -> Self {
        Self { allowed, stores, table: ResourceTable::new(), max_result_bytes: MAX_RESULT_BYTES }
    }

    fn label(&self, store: &Resource<OpenStore>) -> wasmtime::Result<String> {
        // A handle that is not in the table is a trap, as Spin's `get_store` ("invalid store").
        Ok(self.table.get(store)?.label.clone())
    }

    fn too_large(&self) -> Error {
        Error::Other(format!("query result exceeds limit of {} bytes", self.max_result_bytes))
    }
}

/// Spin's `configure_app` check: every listed label must have a store; only `default` has one.
pub fn check_labels(component_id: &str, labels: &[String]) -> anyhow::Result<()> {
    match labels.iter().find(|label| *label != DEFAULT_STORE) {
        Some(label) => {
            anyhow::bail!("unknown key_value_stores label {label:?} for component {component_id:?}")
        }
        None => Ok(()),
    }
}

/// Why a `key_value_stores` entry is not a kebab-case or snake_case id (`spin_serde::KebabId` /
/// `SnakeId`), or `None`.
pub fn label_error(label: &str) -> Option<String> {
    let id_error = |delim: char| -> Option<String> {
        if label.is_empty() {
            return Some("empty".into());
        }
        let wrong = if delim == '-' { '_' } else { '-' };
        if label.contains(wrong) {
            return Some(format!("words must be separated with {delim:?}, not {wrong:?}"));
        }
        for word in label.split(delim) {
            let mut chars = word.chars();
            let Some(first) = chars.next() else {
                return Some(format!("{delim:?}-separated words must not be empty"));
            };
            if !first.is_ascii_alphabetic() {
                return Some(format!(
                    "{delim:?}-separated words must start with an ASCII letter; got {first:?}"
                ));
            }
            for c in chars {
                if !c.is_ascii_alphanumeric() {
                    return Some(format!(
                        "{delim:?}-separated words may only contain alphanumeric ASCII; got {c:?}"
                    ));
                }
                if !c.is_ascii_digit() && c.is_ascii_uppercase() != first.is_ascii_uppercase() {
                    return Some(format!(
                        "{delim:?}-separated words must be all lowercase or all UPPERCASE; got {word:?}"
                    ));
                }
            }
        }
        None
    };
    match (id_error('-'), id_error('_')) {
        (Some(kebab), Some(_)) => Some(kebab),
        _ => None,
    }
}

impl Host for KeyValueDispatch {}

impl HostStore for KeyValueDispatch {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        if !self.allowed.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        if label != DEFAULT_STORE {
            // Unreachable once `check_labels` passed, as in Spin.
            return Ok(Err(Error::NoSuchStore));
        }
        Ok(self.table.push(OpenStore { label }).map_err(|_| Error::StoreTableFull))
    }

    fn get(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let label = self.label(&store)?;
        let value = self.stores.with(&label, |s| s.get(&key).cloned());
        let size = std::mem::size_of::<Option<Vec<u8>>>() + value.as_ref().map_or(0, Vec::len);
        Ok(if size > self.max_result_bytes { Err(self.too_large()) } else { Ok(value) })
    }

    fn set(
        &mut self,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let label = self.label(&store)?;
        self.stores.with(&label, |s| s.insert(key, value));
        Ok(Ok(()))
    }

    fn delete(&mut self, store: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<(), Error>> {
        let label = self.label(&store)?;
        self.stores.with(&label, |s| s.remove(&key));
        Ok(Ok(()))
    }

    fn exists(&mut self, store: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<bool, Error>> {
        let label = self.label(&store)?;
        Ok(Ok(self.stores.with(&label, |s| s.contains_key(&key))))
    }

    fn get_keys(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let label = self.label(&store)?;
        let keys: Vec<String> = self.stores.with(&label, |s| s.keys().cloned().collect());
        let size = std::mem::size_of::<Vec<String>>()
            + keys.iter().map(|k| std::mem::size_of::<String>() + k.len()).sum::<usize>();
        Ok(if size > self.max_result_bytes { Err(self.too_large()) } else { Ok(keys) })
    }

    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispatch(allowed: &[&str], stores: &Arc<KeyValueStores>) -> KeyValueDispatch {
        let allowed = allowed.iter().map(|l| (*l).to_owned()).collect();
        KeyValueDispatch::new(Arc::new(allowed), stores.clone())
    }

    /// A borrow of an open handle, as the guest passes `self` to a method.
    fn borrow(store: &Resource<OpenStore>) -> Resource<OpenStore> {
        Resource::new_borrow(store.rep())
    }

    fn open(kv: &mut KeyValueDispatch, label: &str) -> Resource<OpenStore> {
        kv.open(label.into()).unwrap().unwrap_or_else(|e| panic!("open {label}: {e:?}"))
    }

    #[test]
    fn default_opens_when_listed() {
        let stores = Arc::default();
        let mut kv = dispatch(&["default"], &stores);
        let store = open(&mut kv, "default");
        assert_eq!(kv.get_keys(borrow(&store)).unwrap().unwrap(), Vec::<String>::new());
        kv.drop(store).unwrap();
    }

    #[test]
    fn a_label_the_component_does_not_list_is_access_denied() {
        let stores = Arc::default();
        let mut none = dispatch(&[], &stores);
        assert!(matches!(none.open("default".into()).unwrap(), Err(Error::AccessDenied)));
        let mut kv = dispatch(&["default"], &stores);
        // Whether or not a store of that name exists.
        assert!(matches!(kv.open("other".into()).unwrap(), Err(Error::AccessDenied)));
        assert!(matches!(kv.open("".into()).unwrap(), Err(Error::AccessDenied)));
    }

    #[test]
    fn get_set_delete_exists_and_get_keys() {
        let stores = Arc::default();
        let mut kv = dispatch(&["default"], &stores);
        let s = open(&mut kv, "default");
        assert_eq!(kv.get(borrow(&s), "a".into()).unwrap().unwrap(), None);
        assert!(!kv.exists(borrow(&s), "a".into()).unwrap().unwrap());
        kv.set(borrow(&s), "b".into(), b"2".to_vec()).unwrap().unwrap();
        kv.set(borrow(&s), "a".into(), b"1".to_vec()).unwrap().unwrap();
        kv.set(borrow(&s), "a".into(), b"one".to_vec()).unwrap().unwrap();
        kv.set(borrow(&s), "".into(), Vec::new()).unwrap().unwrap();
        assert_eq!(kv.get(borrow(&s), "a".into()).unwrap().unwrap(), Some(b"one".to_vec()));
        assert_eq!(kv.get(borrow(&s), "".into()).unwrap().unwrap(), Some(Vec::new()), "empty key and value");
        assert!(kv.exists(borrow(&s), "b".into()).unwrap().unwrap());
        assert_eq!(kv.get_keys(borrow(&s)).unwrap().unwrap(), ["", "a", "b"]);
        kv.delete(borrow(&s), "a".into()).unwrap().unwrap();
        kv.delete(borrow(&s), "missing".into()).unwrap().expect("deleting a missing key is no error");
        assert_eq!(kv.get(borrow(&s), "a".into()).unwrap().unwrap(), None);
        assert_eq!(kv.get_keys(borrow(&s)).unwrap().unwrap(), ["", "b"]);
        kv.drop(s).unwrap();
    }

    #[test]
    fn stores_outlive_instances_and_are_per_application() {
        let app: Arc<KeyValueStores> = Arc::default();
        let mut first = dispatch(&["default"], &app);
        let s = open(&mut first, "default");
        first.set(borrow(&s), "k".into(), b"v".to_vec()).unwrap().unwrap();
        first.drop(s).unwrap();
        drop(first);

        let mut second = dispatch(&["default"], &app);
        let s = open(&mut second, "default");
        assert_eq!(second.get(borrow(&s), "k".into()).unwrap().unwrap(), Some(b"v".to_vec()));
        assert_eq!(app.entries("default"), [("k".to_owned(), b"v".to_vec())]);

        let other_app: Arc<KeyValueStores> = Arc::default();
        let mut elsewhere = dispatch(&["default"], &other_app);
        let s = open(&mut elsewhere, "default");
        assert_eq!(elsewhere.get(borrow(&s), "k".into()).unwrap().unwrap(), None);
    }

    #[test]
    fn two_handles_see_the_same_store_and_a_dropped_handle_traps() {
        let stores = Arc::default();
        let mut kv = dispatch(&["default"], &stores);
        let a = open(&mut kv, "default");
        let b = open(&mut kv, "default");
        assert_ne!(a.rep(), b.rep());
        kv.set(borrow(&a), "k".into(), b"v".to_vec()).unwrap().unwrap();
        assert_eq!(kv.get(borrow(&b), "k".into()).unwrap().unwrap(), Some(b"v".to_vec()));
        let rep = a.rep();
        kv.drop(a).unwrap();
        assert!(kv.get(Resource::new_borrow(rep), "k".into()).is_err(), "a closed handle is a trap");
    }

    #[test]
    fn reads_over_the_buffer_limit_are_other_errors() {
        let stores = Arc::default();
        let mut kv = dispatch(&["default"], &stores);
        kv.max_result_bytes = 24 + 4;
        let s = open(&mut kv, "default");
        kv.set(borrow(&s), "k".into(), b"1234".to_vec()).unwrap().unwrap();
        assert_eq!(
            kv.get(borrow(&s), "k".into()).unwrap().unwrap(),
            Some(b"1234".to_vec()),
            "exactly the limit"
        );
        kv.set(borrow(&s), "k".into(), b"12345".to_vec()).unwrap().expect("set has no limit");
        match kv.get(borrow(&s), "k".into()).unwrap() {
            Err(Error::Other(m)) => assert_eq!(m, "query result exceeds limit of 28 bytes"),
            other => panic!("{other:?}"),
        }
        assert!(kv.exists(borrow(&s), "k".into()).unwrap().unwrap(), "exists reads without a limit");
        assert!(matches!(kv.get_keys(borrow(&s)).unwrap(), Err(Error::Other(_))), "24 + 24 + 1 > 28");
        assert_eq!(
            MAX_RESULT_BYTES.to_string(),
            "134217728",
            "the message Spin writes for the real limit names 134217728 bytes"
        );
    }

    #[test]
    fn only_the_default_label_has_a_store() {
        check_labels("c", &[]).unwrap();
        check_labels("c", &["default".into()]).unwrap();
        let err = check_labels("c", &["default".into(), "cache".into()]).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown key_value_stores label "cache" for component "c""#);
    }

    #[test]
    fn labels_are_kebab_or_snake_case_ids() {
        for ok in ["default", "snake_case", "kebab-case", "UPPER", "a1", "MIXED-words-OK"] {
            assert_eq!(label_error(ok), None, "{ok}");
        }
        for bad in ["", "b@dlabel", "1st", "a--b", "camelCase", "a-b_c"] {
            assert!(label_error(bad).is_some(), "{bad}");
        }
    }
}
