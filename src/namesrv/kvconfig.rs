//! The nameserver's KV config: namespace → key → value (PUT/GET/DELETE_KV_CONFIG,
//! GET_KVLIST_BY_NAMESPACE). RocketMQ uses it for `ORDER_TOPIC_CONFIG` (topic →
//! `brokerName:queueCount;...`) and admin tooling settings.
//!
//! The table lives in memory; when a path is configured every change also rewrites the file
//! there, in RocketMQ's `kvConfig.json` layout (`{"configTable":{namespace:{key:value}}}`), so a
//! file from a Java nameserver loads as is. KV writes are rare admin operations, so the whole
//! file is written to `<path>.tmp`, synced and renamed over the old one: a crash leaves either
//! the old table or the new, never a torn file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why the persistent KV file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KvConfigError {
    #[error("KV config file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("KV config file {path} is not a kvConfig.json table")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

type Table = BTreeMap<String, BTreeMap<String, String>>;

/// The file's JSON shape (RocketMQ's `KVConfigSerializeWrapper`).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct KvConfigFile {
    #[serde(default)]
    config_table: Table,
}

/// Namespaced string table with optional write-through persistence.
#[derive(Debug, Default)]
pub struct KvConfig {
    table: Table,
    path: Option<PathBuf>,
}

impl KvConfig {
    /// A table that is not persisted.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Loads the table from the file at `path`; a missing file is an empty table (created on
    /// the first change).
    pub fn open(path: &Path) -> Result<Self, KvConfigError> {
        let table = match fs::read(path) {
            Ok(raw) => {
                let file: KvConfigFile =
                    serde_json::from_slice(&raw).map_err(|source| KvConfigError::Corrupt {
                        path: path.to_path_buf(),
                        source,
                    })?;
                file.config_table
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Table::new(),
            Err(source) => {
                return Err(KvConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Ok(KvConfig {
            table,
            path: Some(path.to_path_buf()),
        })
    }

    /// Applies `change` to a copy of the table, persists the copy, and only then keeps it, so
    /// memory never holds a table the disk does not.
    fn change(&mut self, change: impl FnOnce(&mut Table)) -> Result<(), KvConfigError> {
        let mut next = self.table.clone();
        change(&mut next);
        if let Some(path) = &self.path {
            write_file(path, &next).map_err(|source| KvConfigError::Io {
                path: path.clone(),
                source,
            })?;
        }
        self.table = next;
        Ok(())
    }

    /// Sets `namespace/key` to `value`.
    pub fn put(&mut self, namespace: &str, key: &str, value: &str) -> Result<(), KvConfigError> {
        self.change(|t| {
            t.entry(namespace.to_string())
                .or_default()
                .insert(key.to_string(), value.to_string());
        })
    }

    pub fn get(&self, namespace: &str, key: &str) -> Option<&str> {
        self.table.get(namespace)?.get(key).map(String::as_str)
    }

    /// Removes `namespace/key`; removing a missing key is not an error (RocketMQ answers
    /// SUCCESS either way).
    pub fn delete(&mut self, namespace: &str, key: &str) -> Result<(), KvConfigError> {
        if self.get(namespace, key).is_none() {
            return Ok(());
        }
        self.change(|t| {
            if let Some(ns) = t.get_mut(namespace) {
                ns.remove(key);
                if ns.is_empty() {
                    t.remove(namespace);
                }
            }
        })
    }

    /// All entries of a namespace, `None` when it has none.
    pub fn namespace(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.table.get(namespace)
    }
}

/// Writes `table` to `<path>.tmp`, syncs it, renames it over `path` and syncs the directory.
fn write_file(path: &Path, table: &Table) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let body = serde_json::to_vec_pretty(&KvConfigFile {
        config_table: table.clone(),
    })?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = File::create(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
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
        let path = dir.path().join("namesrv").join("kvConfig.json");
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
        assert!(!dir.path().join("namesrv/kvConfig.json.tmp").exists());
    }

    /// The file is RocketMQ's: one written by a Java nameserver loads, and ours has its shape.
    #[test]
    fn file_layout_is_rocketmqs_kv_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        fs::write(
            &path,
            r#"{"configTable":{"ORDER_TOPIC_CONFIG":{"TopicA":"broker-a:8;broker-b:8"}}}"#,
        )
        .unwrap();
        let mut kv = KvConfig::open(&path).unwrap();
        assert_eq!(
            kv.get("ORDER_TOPIC_CONFIG", "TopicA"),
            Some("broker-a:8;broker-b:8")
        );
        kv.put("NS", "k", "v").unwrap();
        let written: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"configTable": {
                "NS": {"k": "v"},
                "ORDER_TOPIC_CONFIG": {"TopicA": "broker-a:8;broker-b:8"},
            }})
        );
    }

    #[test]
    fn a_garbled_file_is_a_clear_error_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvConfig.json");
        fs::write(&path, b"{\"configTable\":{\"ns\":").unwrap();
        let err = KvConfig::open(&path).unwrap_err();
        assert!(matches!(err, KvConfigError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("kvConfig.json"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"{\"configTable\":{\"ns\":");
    }

    /// A change that cannot be written is refused and not kept in memory.
    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let mut kv = KvConfig::open(&sub.join("kvConfig.json")).unwrap();
        // A file where the directory should be: the write cannot succeed (even as root).
        fs::write(&sub, b"").unwrap();
        assert!(matches!(
            kv.put("ns", "k", "v"),
            Err(KvConfigError::Io { .. })
        ));
        assert_eq!(kv.get("ns", "k"), None);
    }
}
