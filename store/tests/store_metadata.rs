//! Metadata tables: CRUD, durability across reopen, export/import.
#![allow(clippy::unwrap_used)]

use raftmq_store::metadata::{Metadata, SubscriptionGroupConfig, TopicConfig};
use raftmq_store::StoreError;

#[test]
fn tables_survive_reopen_after_flush() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let m = Metadata::open(&tmp.path().join("meta")).unwrap();
        let mut t = TopicConfig::new("TopicA");
        t.write_queue_nums = 4;
        m.put_topic(&t).unwrap();
        m.put_topic(&TopicConfig::new("TopicB")).unwrap();
        m.put_group(&SubscriptionGroupConfig::new("g1")).unwrap();
        m.commit_offset("g1", "TopicA", 0, 10).unwrap();
        m.commit_offset("g1", "TopicA", 1, 11).unwrap();
        m.commit_offset("g10", "TopicA", 0, 99).unwrap();
        m.commit_offset("g1", "TopicA", 0, 12).unwrap();
        m.put_kv("delayOffset", &1i32.to_be_bytes(), &7i64.to_be_bytes())
            .unwrap();
        m.flush().unwrap();
    }
    let m = Metadata::open(&tmp.path().join("meta")).unwrap();
    assert_eq!(m.topic("TopicA").unwrap().unwrap().write_queue_nums, 4);
    assert_eq!(
        m.topics()
            .unwrap()
            .iter()
            .map(|t| t.topic_name.as_str())
            .collect::<Vec<_>>(),
        vec!["TopicA", "TopicB"]
    );
    assert_eq!(m.group("g1").unwrap().unwrap().retry_max_times, 16);
    assert_eq!(m.offset("g1", "TopicA", 0).unwrap(), Some(12));
    assert_eq!(m.offset("g1", "TopicA", 5).unwrap(), None);
    // Prefix scans are exact: g1 does not see g10.
    assert_eq!(m.offsets_of_group("g1").unwrap().len(), 2);
    assert_eq!(
        m.kv("delayOffset", &1i32.to_be_bytes()).unwrap(),
        Some(7i64.to_be_bytes().to_vec())
    );
    assert!(m.delete_topic("TopicB").unwrap());
    assert!(!m.delete_topic("TopicB").unwrap());
    assert_eq!(m.delete_offsets("g1", Some("TopicA")).unwrap(), 2);
    assert_eq!(m.offset("g10", "TopicA", 0).unwrap(), Some(99));
    assert!(m.put_topic(&TopicConfig::new("")).is_err());
}

#[test]
fn export_import_replaces_everything_and_rejects_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Metadata::open(&tmp.path().join("a")).unwrap();
    a.put_topic(&TopicConfig::new("T1")).unwrap();
    a.put_group(&SubscriptionGroupConfig::new("G")).unwrap();
    a.commit_offset("G", "T1", 3, 42).unwrap();
    a.put_kv("ns", b"k", b"v").unwrap();
    let bytes = a.export().unwrap();

    let b = Metadata::open(&tmp.path().join("b")).unwrap();
    b.put_topic(&TopicConfig::new("Stale")).unwrap();
    b.commit_offset("Old", "Stale", 0, 1).unwrap();
    b.import(&bytes).unwrap();
    assert_eq!(b.snapshot().unwrap(), a.snapshot().unwrap());
    assert_eq!(b.topic("Stale").unwrap(), None);
    assert_eq!(b.offset("G", "T1", 3).unwrap(), Some(42));

    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        assert!(matches!(
            Metadata::decode_export(&bad),
            Err(StoreError::Codec(_))
        ));
    }
    assert!(b.import(&bytes[..bytes.len() - 1]).is_err());
    // A rejected import changes nothing.
    assert_eq!(b.snapshot().unwrap(), a.snapshot().unwrap());
}

#[test]
fn import_with_a_bad_row_changes_nothing() {
    use raftmq_store::metadata::MetadataSnapshot;
    let tmp = tempfile::tempdir().unwrap();
    let m = Metadata::open(&tmp.path().join("m")).unwrap();
    m.put_topic(&TopicConfig::new("Keep")).unwrap();
    let before = m.snapshot().unwrap();
    // Well-formed bytes (magic, version, CRC) carrying a topic with an empty name.
    let snap = MetadataSnapshot {
        topics: vec![TopicConfig::new("Fine"), TopicConfig::new("")],
        ..MetadataSnapshot::default()
    };
    let mut bytes = 0x524D_514Du32.to_be_bytes().to_vec();
    bytes.push(1);
    bytes.extend(bincode::serialize(&snap).unwrap());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend(crc.to_be_bytes());
    assert!(Metadata::decode_export(&bytes).is_ok());
    assert!(m.import(&bytes).is_err());
    assert_eq!(m.snapshot().unwrap(), before);
}

/// The in-memory topic table follows every change of the topics table, including a
/// snapshot import and a refused one, and a reopen loads it.
#[test]
fn topic_table_handle_follows_the_topics_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    let exported = {
        let m = Metadata::open(&dir).unwrap();
        let table = m.topic_table();
        assert_eq!(table.get("T"), None);
        let mut t = TopicConfig::new("T");
        t.write_queue_nums = 2;
        m.put_topic(&t).unwrap();
        assert_eq!(table.get("T"), Some(t.clone()));
        t.write_queue_nums = 8;
        m.put_topic(&t).unwrap();
        assert_eq!(table.get("T").unwrap().write_queue_nums, 8);
        m.put_topic(&TopicConfig::new("Gone")).unwrap();
        assert!(m.delete_topic("Gone").unwrap());
        assert_eq!(table.get("Gone"), None);
        let bytes = m.export().unwrap();

        // Import replaces the table; a refused import leaves it as it was.
        m.put_topic(&TopicConfig::new("Extra")).unwrap();
        m.import(&bytes).unwrap();
        assert_eq!(table.get("Extra"), None);
        assert_eq!(table.get("T").unwrap().write_queue_nums, 8);
        assert!(m.import(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(table.get("T").unwrap().write_queue_nums, 8);
        m.flush().unwrap();
        bytes
    };
    let m = Metadata::open(&dir).unwrap();
    assert_eq!(m.topic_table().get("T").unwrap().write_queue_nums, 8);
    assert_eq!(m.topic("Extra").unwrap(), None);
    assert_eq!(m.export().unwrap(), exported);
}
