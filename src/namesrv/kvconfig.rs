//! The nameserver's KV config: namespace → key → value (PUT/GET/DELETE_KV_CONFIG,
//! GET_KVLIST_BY_NAMESPACE). RocketMQ uses it for `ORDER_TOPIC_CONFIG` (topic →
//! `brokerName:queueCount;...`) and admin tooling settings.
//!
//! The table lives in memory; when a directory is configured it is also written through to a
//! sled database there (sled is confined to this module), flushed on every change because KV
//! writes are rare admin operations and must survive a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the persistent KV store failed.
#[derive(Debug, thiserror::Error)]
pub enum KvConfigError {
    #[error("KV config store at {path}")]
    Store {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("KV config store at {path}: corrupt entry: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// Namespaced string table with optional write-through persistence.
#[derive(Debug, Default)]
pub struct KvConfig {
    table: BTreeMap<String, BTreeMap<String, String>>,
    store: Option<(PathBuf, sled::Db)>,
}

/// Persistent key: `u32 BE namespace length | namespace | key`, so any strings round-trip.
fn encode_key(namespace: &str, key: &str) -> Vec<u8> {
    let ns = namespace.as_bytes();
    let mut out = Vec::with_capacity(4 + ns.len() + key.len());
    out.extend_from_slice(&(ns.len() as u32).to_be_bytes());
    out.extend_from_slice(ns);
    out.extend_from_slice(key.as_bytes());
    out
}

fn decode_key(raw: &[u8]) -> Option<(String, String)> {
    let len_bytes: [u8; 4] = raw.get(..4)?.try_into().ok()?;
    let ns_len = u32::from_be_bytes(len_bytes) as usize;
    let ns = raw.get(4..4usize.checked_add(ns_len)?)?;
    let key = raw.get(4 + ns_len..)?;
    Some((
        String::from_utf8(ns.to_vec()).ok()?,
        String::from_utf8(key.to_vec()).ok()?,
    ))
}

impl KvConfig {
    /// A table that is not persisted.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Opens (creating if needed) the store in directory `path` and loads it.
    pub fn open(path: &Path) -> Result<Self, KvConfigError> {
        let store_err = |source| KvConfigError::Store {
            path: path.to_path_buf(),
            source,
        };
        let db = sled::open(path).map_err(store_err)?;
        let mut table: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for item in db.iter() {
            let (k, v) = item.map_err(store_err)?;
            let corrupt = |reason: &str| KvConfigError::Corrupt {
                path: path.to_path_buf(),
                reason: reason.to_string(),
            };
            let (ns, key) = decode_key(&k).ok_or_else(|| corrupt("bad key encoding"))?;
            let value = String::from_utf8(v.to_vec()).map_err(|_| corrupt("value not UTF-8"))?;
            table.entry(ns).or_default().insert(key, value);
        }
        Ok(KvConfig {
            table,
            store: Some((path.to_path_buf(), db)),
        })
    }

    fn persist(&self, f: impl FnOnce(&sled::Db) -> sled::Result<()>) -> Result<(), KvConfigError> {
        if let Some((path, db)) = &self.store {
            let err = |source| KvConfigError::Store {
                path: path.clone(),
                source,
            };
            f(db).map_err(err)?;
            db.flush().map_err(err)?;
        }
        Ok(())
    }

    /// Sets `namespace/key` to `value`. The store is written first, so memory never holds a
    /// value the disk does not.
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) -> Result<(), KvConfigError> {
        self.persist(|db| {
            db.insert(encode_key(namespace, key), value.as_bytes())
                .map(|_| ())
        })?;
        self.table
            .entry(namespace.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// Removes `namespace/key`; removing a missing key is not an error (RocketMQ answers
    /// SUCCESS either way).
    pub fn delete(&mut self, namespace: &str, key: &str) -> Result<(), KvConfigError> {
        self.persist(|db| db.remove(encode_key(namespace, key)).map(|_| ()))?;
        if let Some(ns) = self.table.get_mut(namespace) {
            ns.remove(key);
            if ns.is_empty() {
                self.table.remove(namespace);
            }
        }
        Ok(())
    }

    /// All entries of a namespace, `None` when it has none.
    pub fn namespace(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table.get(namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_put_get_delete() {
        let mut kv = KvConfig::in_memory();
        assert_eq!(kv.get("ns", "k"), None);
        kv.put("ns", "k", "v").unwrap();
        kv.put("ns", "k2", "v2").unwrap();
        assert_eq!(kv.get("ns", "k"), Some("v"));
        assert_eq!(kv.namespace("ns").unwrap().len(), 2);
        kv.delete("ns", "k").unwrap();
        kv.delete("ns", "missing").unwrap();
        kv.delete("ns", "k2").unwrap();
        assert!(kv.namespace("ns").is_none());
    }

    #[test]
    fn persisted_table_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv");
        {
            let mut kv = KvConfig::open(&path).unwrap();
            kv.put("ORDER_TOPIC_CONFIG", "T", "broker-a:4").unwrap();
            kv.put("a\u{0}b", "ké", "v").unwrap();
            kv.put("x", "gone", "1").unwrap();
            kv.delete("x", "gone").unwrap();
        }
        let kv = KvConfig::open(&path).unwrap();
        assert_eq!(kv.get("ORDER_TOPIC_CONFIG", "T"), Some("broker-a:4"));
        assert_eq!(kv.get("a\u{0}b", "ké"), Some("v"));
        assert!(kv.namespace("x").is_none());
    }

    #[test]
    fn key_encoding_round_trips_and_rejects_garbage() {
        let k = encode_key("ns:1", "key:2");
        assert_eq!(decode_key(&k), Some(("ns:1".into(), "key:2".into())));
        assert_eq!(decode_key(&[0, 0]), None);
        assert_eq!(decode_key(&[0, 0, 0, 9, b'a']), None);
    }
}
