//! Replicated metadata tables: topic configs, subscription groups, consumer offsets and a
//! small key-value table (delay offsets and the like).
//!
//! Owns the `meta/` directory under the store root. The state machine applies topic,
//! group and offset commands from the log into these tables; they are what a Raft snapshot
//! carries ([`Metadata::export`] / [`Metadata::import`], versioned bytes). sled is kept
//! behind this module alone so it can be replaced: nothing else sees a sled type.
//!
//! sled makes writes durable only on `flush()` (or its 500 ms background flush), so
//! [`Metadata::flush`] must run before any checkpoint claims the tables are on disk. Values
//! are bincode behind a version byte, never bare serde layouts.
//!
//! Topic configs are also kept whole in memory ([`TopicTable`]): every send and pull looks
//! its topic up, and a shared read lock is far cheaper than a sled read and decode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use sled::Transactional;

use crate::error::{Result, StoreError};

const VALUE_VERSION: u8 = 1;
const EXPORT_MAGIC: u32 = 0x524D_514D;
const EXPORT_VERSION: u8 = 1;

/// A topic's configuration (RocketMQ `TopicConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    pub topic_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    /// PERM_READ 4 | PERM_WRITE 2 | PERM_INHERIT 1.
    pub perm: i32,
    /// `SINGLE_TAG` or `MULTI_TAG`.
    pub topic_filter_type: String,
    pub topic_sys_flag: i32,
    pub order: bool,
}

impl TopicConfig {
    /// A topic with RocketMQ's class defaults (16/16 queues, perm 6, SINGLE_TAG).
    pub fn new(name: &str) -> TopicConfig {
        TopicConfig {
            topic_name: name.to_owned(),
            read_queue_nums: 16,
            write_queue_nums: 16,
            perm: 6,
            topic_filter_type: "SINGLE_TAG".to_owned(),
            topic_sys_flag: 0,
            order: false,
        }
    }
}

/// A consumer group's configuration (RocketMQ `SubscriptionGroupConfig`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupConfig {
    pub group_name: String,
    pub consume_enable: bool,
    pub consume_from_min_enable: bool,
    pub consume_broadcast_enable: bool,
    pub retry_queue_nums: i32,
    pub retry_max_times: i32,
    pub broker_id: i64,
    pub which_broker_when_consume_slowly: i64,
    pub notify_consumer_ids_changed_enable: bool,
}

impl SubscriptionGroupConfig {
    /// A group with RocketMQ's `SubscriptionGroupConfig` defaults.
    pub fn new(name: &str) -> SubscriptionGroupConfig {
        SubscriptionGroupConfig {
            group_name: name.to_owned(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        }
    }
}

/// One committed consumer offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerOffset {
    pub group: String,
    pub topic: String,
    pub queue_id: i32,
    pub offset: i64,
}

/// Everything in the tables, as exported for a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataSnapshot {
    pub topics: Vec<TopicConfig>,
    pub groups: Vec<SubscriptionGroupConfig>,
    pub offsets: Vec<ConsumerOffset>,
    /// (namespace, key, value) of the key-value table.
    pub kv: Vec<(String, Vec<u8>, Vec<u8>)>,
}

/// Every topic config in memory, equal to the `topics` table: loaded when the tables open,
/// and changed by [`Metadata`] under the write lock together with each change to the table
/// (put, delete, snapshot import). Handles ([`Metadata::topic_table`]) read it without any
/// other lock.
#[derive(Debug, Default)]
pub struct TopicTable(RwLock<HashMap<String, TopicConfig>>);

impl TopicTable {
    /// The config of `name`, if the topic exists.
    pub fn get(&self, name: &str) -> Option<TopicConfig> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, TopicConfig>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The metadata tables.
pub struct Metadata {
    dir: PathBuf,
    db: sled::Db,
    topic_table: Arc<TopicTable>,
    topics: sled::Tree,
    groups: sled::Tree,
    offsets: sled::Tree,
    kv: sled::Tree,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata").field("dir", &self.dir).finish()
    }
}

fn encode_value<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = vec![VALUE_VERSION];
    bincode::serialize_into(&mut out, v)
        .map_err(|e| StoreError::InvalidArgument(format!("cannot encode metadata value: {e}")))?;
    Ok(out)
}

/// `key 0x00 key ...`: names never contain NUL (topic and group names are restricted), so
/// a prefix scan over `group 0x00` is exact.
fn offset_key(group: &str, topic: &str, queue_id: i32) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + topic.len() + 6);
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(topic.as_bytes());
    k.push(0);
    k.extend_from_slice(&queue_id.to_be_bytes());
    k
}

fn kv_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(namespace.len() + 1 + key.len());
    k.extend_from_slice(namespace.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.contains('\0') {
        return Err(StoreError::InvalidArgument(format!(
            "bad {what} name {name:?}"
        )));
    }
    Ok(())
}

impl Metadata {
    /// Opens (or creates) the tables in `dir`.
    pub fn open(dir: &Path) -> Result<Metadata> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| Self::sled_err_at(dir, "open", e))?;
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| Self::sled_err_at(dir, "open_tree", e))
        };
        let md = Metadata {
            dir: dir.to_path_buf(),
            topic_table: Arc::default(),
            topics: tree("topics")?,
            groups: tree("groups")?,
            offsets: tree("offsets")?,
            kv: tree("kv")?,
            db,
        };
        let loaded: Vec<TopicConfig> = md.all(&md.topics, b"")?;
        *md.topic_table.write() = loaded
            .into_iter()
            .map(|t| (t.topic_name.clone(), t))
            .collect();
        Ok(md)
    }

    /// A shared handle on the in-memory topic configs.
    pub fn topic_table(&self) -> Arc<TopicTable> {
        self.topic_table.clone()
    }

    fn sled_err_at(dir: &Path, op: &'static str, e: sled::Error) -> StoreError {
        match e {
            sled::Error::Io(source) => StoreError::io(op, dir, source),
            sled::Error::Corruption { .. } => {
                StoreError::corruption(dir, 0, format!("sled {op}: {e}"))
            }
            other => StoreError::Fatal(format!("sled {op} in {}: {other}", dir.display())),
        }
    }

    fn sled_err(&self, op: &'static str, e: sled::Error) -> StoreError {
        Self::sled_err_at(&self.dir, op, e)
    }

    fn decode_value<T: for<'de> Deserialize<'de>>(&self, bytes: &[u8]) -> Result<T> {
        match bytes.split_first() {
            Some((&VALUE_VERSION, rest)) => bincode::deserialize(rest).map_err(|e| {
                StoreError::corruption(&self.dir, 0, format!("bad metadata value: {e}"))
            }),
            Some((v, _)) => Err(StoreError::corruption(
                &self.dir,
                0,
                format!("unknown metadata value version {v}"),
            )),
            None => Err(StoreError::corruption(&self.dir, 0, "empty metadata value")),
        }
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, key: &[u8], v: &T) -> Result<()> {
        tree.insert(key, encode_value(v)?)
            .map_err(|e| self.sled_err("insert", e))?;
        Ok(())
    }

    fn get<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &sled::Tree,
        key: &[u8],
    ) -> Result<Option<T>> {
        match tree.get(key).map_err(|e| self.sled_err("get", e))? {
            Some(v) => self.decode_value(&v).map(Some),
            None => Ok(None),
        }
    }

    fn all<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &sled::Tree,
        prefix: &[u8],
    ) -> Result<Vec<T>> {
        tree.scan_prefix(prefix)
            .map(|r| {
                let (_, v) = r.map_err(|e| self.sled_err("scan", e))?;
                self.decode_value(&v)
            })
            .collect()
    }

    /// Creates or replaces a topic.
    pub fn put_topic(&self, cfg: &TopicConfig) -> Result<()> {
        check_name("topic", &cfg.topic_name)?;
        let mut table = self.topic_table.write();
        self.put(&self.topics, cfg.topic_name.as_bytes(), cfg)?;
        table.insert(cfg.topic_name.clone(), cfg.clone());
        Ok(())
    }
    pub fn topic(&self, name: &str) -> Result<Option<TopicConfig>> {
        Ok(self.topic_table.get(name))
    }
    /// Removes a topic; `true` if it existed.
    pub fn delete_topic(&self, name: &str) -> Result<bool> {
        let mut table = self.topic_table.write();
        let existed = self
            .topics
            .remove(name.as_bytes())
            .map_err(|e| self.sled_err("remove", e))?
            .is_some();
        table.remove(name);
        Ok(existed)
    }
    /// All topics, by name.
    pub fn topics(&self) -> Result<Vec<TopicConfig>> {
        self.all(&self.topics, b"")
    }

    /// Creates or replaces a subscription group.
    pub fn put_group(&self, cfg: &SubscriptionGroupConfig) -> Result<()> {
        check_name("group", &cfg.group_name)?;
        self.put(&self.groups, cfg.group_name.as_bytes(), cfg)
    }
    pub fn group(&self, name: &str) -> Result<Option<SubscriptionGroupConfig>> {
        self.get(&self.groups, name.as_bytes())
    }
    pub fn delete_group(&self, name: &str) -> Result<bool> {
        Ok(self
            .groups
            .remove(name.as_bytes())
            .map_err(|e| self.sled_err("remove", e))?
            .is_some())
    }
    /// All groups, by name.
    pub fn groups(&self) -> Result<Vec<SubscriptionGroupConfig>> {
        self.all(&self.groups, b"")
    }

    /// Records a committed consumer offset.
    pub fn commit_offset(
        &self,
        group: &str,
        topic: &str,
        queue_id: i32,
        offset: i64,
    ) -> Result<()> {
        check_name("group", group)?;
        check_name("topic", topic)?;
        let v = ConsumerOffset {
            group: group.to_owned(),
            topic: topic.to_owned(),
            queue_id,
            offset,
        };
        self.put(&self.offsets, &offset_key(group, topic, queue_id), &v)
    }
    /// The committed offset of a group on a queue.
    pub fn offset(&self, group: &str, topic: &str, queue_id: i32) -> Result<Option<i64>> {
        Ok(self
            .get::<ConsumerOffset>(&self.offsets, &offset_key(group, topic, queue_id))?
            .map(|o| o.offset))
    }
    /// Every offset of a group.
    pub fn offsets_of_group(&self, group: &str) -> Result<Vec<ConsumerOffset>> {
        let mut prefix = group.as_bytes().to_vec();
        prefix.push(0);
        self.all(&self.offsets, &prefix)
    }
    /// Every committed offset.
    pub fn all_offsets(&self) -> Result<Vec<ConsumerOffset>> {
        self.all(&self.offsets, b"")
    }
    /// Removes a group's offsets (on one topic, or all of them).
    pub fn delete_offsets(&self, group: &str, topic: Option<&str>) -> Result<usize> {
        let mut n = 0;
        for o in self.offsets_of_group(group)? {
            if topic.is_none_or(|t| t == o.topic) {
                self.offsets
                    .remove(offset_key(&o.group, &o.topic, o.queue_id))
                    .map_err(|e| self.sled_err("remove", e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes every group's offsets on `topic` (the topic was deleted).
    pub fn delete_topic_offsets(&self, topic: &str) -> Result<usize> {
        let mut n = 0;
        for o in self.all_offsets()? {
            if o.topic == topic {
                self.offsets
                    .remove(offset_key(&o.group, &o.topic, o.queue_id))
                    .map_err(|e| self.sled_err("remove", e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Sets a key in the key-value table (for example delay offsets by level).
    pub fn put_kv(&self, namespace: &str, key: &[u8], value: &[u8]) -> Result<()> {
        check_name("namespace", namespace)?;
        self.kv
            .insert(kv_key(namespace, key), value)
            .map_err(|e| self.sled_err("insert", e))?;
        Ok(())
    }
    pub fn kv(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .kv
            .get(kv_key(namespace, key))
            .map_err(|e| self.sled_err("get", e))?
            .map(|v| v.to_vec()))
    }
    pub fn delete_kv(&self, namespace: &str, key: &[u8]) -> Result<bool> {
        Ok(self
            .kv
            .remove(kv_key(namespace, key))
            .map_err(|e| self.sled_err("remove", e))?
            .is_some())
    }

    /// Makes every write so far durable. Call before any checkpoint that covers them.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.sled_err("flush", e))?;
        Ok(())
    }

    /// Everything in the tables.
    pub fn snapshot(&self) -> Result<MetadataSnapshot> {
        let mut kv = Vec::new();
        for r in self.kv.iter() {
            let (k, v) = r.map_err(|e| self.sled_err("scan", e))?;
            let split = k
                .iter()
                .position(|b| *b == 0)
                .ok_or_else(|| StoreError::corruption(&self.dir, 0, "kv key without namespace"))?;
            let ns = std::str::from_utf8(&k[..split])
                .map_err(|_| StoreError::corruption(&self.dir, 0, "kv namespace not UTF-8"))?;
            kv.push((ns.to_owned(), k[split + 1..].to_vec(), v.to_vec()));
        }
        Ok(MetadataSnapshot {
            topics: self.topics()?,
            groups: self.groups()?,
            offsets: self.all_offsets()?,
            kv,
        })
    }

    /// The whole table set as versioned bytes: `magic u32 | version u8 | bincode | crc32c u32`.
    pub fn export(&self) -> Result<Vec<u8>> {
        let snap = self.snapshot()?;
        let mut out = EXPORT_MAGIC.to_be_bytes().to_vec();
        out.push(EXPORT_VERSION);
        bincode::serialize_into(&mut out, &snap)
            .map_err(|e| StoreError::InvalidArgument(format!("cannot encode metadata: {e}")))?;
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        Ok(out)
    }

    /// Parses bytes from [`Metadata::export`].
    pub fn decode_export(bytes: &[u8]) -> Result<MetadataSnapshot> {
        let bad = |reason: &str| StoreError::Codec(format!("metadata snapshot: {reason}"));
        if bytes.len() < 9 {
            return Err(bad("truncated"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let mut c = [0u8; 4];
        c.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_be_bytes(c) {
            return Err(bad("CRC mismatch"));
        }
        let mut m = [0u8; 4];
        m.copy_from_slice(&body[..4]);
        if u32::from_be_bytes(m) != EXPORT_MAGIC {
            return Err(bad("bad magic"));
        }
        if body[4] != EXPORT_VERSION {
            return Err(bad("unknown version"));
        }
        bincode::deserialize(&body[5..]).map_err(|e| bad(&e.to_string()))
    }

    /// Replaces every table with the content of `bytes` (a snapshot install), then flushes.
    /// The bytes are fully checked first, and the replacement is one sled transaction over
    /// all tables: a crash leaves either the old tables or the new ones.
    pub fn import(&self, bytes: &[u8]) -> Result<()> {
        let snap = Self::decode_export(bytes)?;
        let trees = [&self.topics, &self.groups, &self.offsets, &self.kv];
        // One batch per table: remove every current key, then insert the new content (a
        // batch keeps the last operation per key).
        let mut batches: Vec<sled::Batch> = Vec::with_capacity(trees.len());
        for tree in trees {
            let mut b = sled::Batch::default();
            for k in tree.iter().keys() {
                b.remove(k.map_err(|e| self.sled_err("scan", e))?);
            }
            batches.push(b);
        }
        for t in &snap.topics {
            check_name("topic", &t.topic_name)?;
            batches[0].insert(t.topic_name.as_bytes(), encode_value(t)?);
        }
        for g in &snap.groups {
            check_name("group", &g.group_name)?;
            batches[1].insert(g.group_name.as_bytes(), encode_value(g)?);
        }
        for o in &snap.offsets {
            check_name("group", &o.group)?;
            check_name("topic", &o.topic)?;
            batches[2].insert(offset_key(&o.group, &o.topic, o.queue_id), encode_value(o)?);
        }
        for (ns, k, v) in &snap.kv {
            check_name("namespace", ns)?;
            batches[3].insert(kv_key(ns, k), v.as_slice());
        }
        let trees: &[&sled::Tree] = &trees;
        let mut table = self.topic_table.write();
        trees
            .transaction(|views| {
                for (view, batch) in views.iter().zip(&batches) {
                    view.apply_batch(batch)?;
                }
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => self.sled_err("import", e),
                sled::transaction::TransactionError::Abort(()) => {
                    StoreError::Fatal("metadata import aborted".into())
                }
            })?;
        *table = snap
            .topics
            .into_iter()
            .map(|t| (t.topic_name.clone(), t))
            .collect();
        drop(table);
        self.flush()
    }
}
