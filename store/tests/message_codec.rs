//! Stored-message codec against byte layouts written out by hand from RocketMQ's
//! stored-message format.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use proptest::prelude::*;
use raftmq_store::message::{
    self, body_crc, decode_offset_msg_id, iter_batch, offset_msg_id, parse_properties,
    set_queue_offset, set_store_host, set_store_timestamp, sysflag, tag_hash_code, MessageError,
    MessageView, StoredMessage, TransactionType, MAGIC_V1, MAGIC_V2,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn sample() -> StoredMessage {
    StoredMessage {
        topic: "TopicTest".into(),
        queue_id: 3,
        flag: 7,
        queue_offset: 42,
        physical_offset: 1_048_576,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_123,
        born_host: addr("10.0.0.9:53211"),
        store_timestamp: 1_700_000_000_456,
        store_host: addr("192.168.1.20:10911"),
        reconsume_times: 2,
        prepared_transaction_offset: 0,
        body: b"Hello RocketMQ".to_vec(),
        properties: vec![
            ("TAGS".into(), "TagA".into()),
            ("KEYS".into(), "k1 k2".into()),
            ("UNIQ_KEY".into(), "0A00000900002A9F0000000000000001".into()),
        ],
    }
}

/// The expected record, field by field in RocketMQ's order (IPv4 hosts, V1 magic).
fn hand_encoded_v1(m: &StoredMessage) -> Vec<u8> {
    let props =
        "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}0A00000900002A9F0000000000000001\u{2}";
    let total = 91 + m.body.len() + m.topic.len() + props.len();
    let mut v = Vec::new();
    v.extend((total as i32).to_be_bytes()); // 1 TOTALSIZE
    v.extend([0xDA, 0xA3, 0x20, 0xA7]); // 2 MAGICCODE V1
    v.extend(1774740973i32.to_be_bytes()); // 3 BODYCRC: masked CRC32 of "Hello RocketMQ"
    v.extend(3i32.to_be_bytes()); // 4 QUEUEID
    v.extend(7i32.to_be_bytes()); // 5 FLAG
    v.extend(42i64.to_be_bytes()); // 6 QUEUEOFFSET
    v.extend(1_048_576i64.to_be_bytes()); // 7 PHYSICALOFFSET
    v.extend(0i32.to_be_bytes()); // 8 SYSFLAG
    v.extend(1_700_000_000_123i64.to_be_bytes()); // 9 BORNTIMESTAMP
    v.extend([10, 0, 0, 9]); // 10 BORNHOST addr
    v.extend(53211i32.to_be_bytes()); //    port
    v.extend(1_700_000_000_456i64.to_be_bytes()); // 11 STORETIMESTAMP
    v.extend([192, 168, 1, 20]); // 12 STOREHOST addr
    v.extend(10911i32.to_be_bytes()); //    port
    v.extend(2i32.to_be_bytes()); // 13 RECONSUMETIMES
    v.extend(0i64.to_be_bytes()); // 14 PREPARED TRANSACTION OFFSET
    v.extend((m.body.len() as i32).to_be_bytes()); // 15 BODYLENGTH
    v.extend(&m.body);
    v.push(m.topic.len() as u8); // 16 TOPICLENGTH (1 byte, V1)
    v.extend(m.topic.as_bytes());
    v.extend((props.len() as i16).to_be_bytes()); // 17 PROPERTIESLENGTH
    v.extend(props.as_bytes());
    v
}

#[test]
fn encode_matches_hand_written_v1_ipv4_layout() {
    let m = sample();
    let bytes = m.encode().unwrap();
    assert_eq!(bytes, hand_encoded_v1(&m));
    // RocketMQ's fixed offsets: store timestamp at 56, phys offset at 28.
    assert_eq!(
        i64::from_be_bytes(bytes[56..64].try_into().unwrap()),
        1_700_000_000_456
    );
    assert_eq!(
        i64::from_be_bytes(bytes[28..36].try_into().unwrap()),
        1_048_576
    );
}

#[test]
fn view_reads_every_field_of_the_hand_written_record() {
    let m = sample();
    let bytes = hand_encoded_v1(&m);
    let v = MessageView::parse(&bytes).unwrap();
    assert_eq!(v.total_size(), bytes.len());
    assert_eq!(v.magic(), MAGIC_V1);
    assert!(v.body_crc_ok());
    assert_eq!(v.queue_id(), 3);
    assert_eq!(v.flag(), 7);
    assert_eq!(v.queue_offset(), 42);
    assert_eq!(v.physical_offset(), 1_048_576);
    assert_eq!(v.born_timestamp(), 1_700_000_000_123);
    assert_eq!(v.born_host(), addr("10.0.0.9:53211"));
    assert_eq!(v.store_timestamp(), 1_700_000_000_456);
    assert_eq!(v.store_host(), addr("192.168.1.20:10911"));
    assert_eq!(v.reconsume_times(), 2);
    assert_eq!(v.prepared_transaction_offset(), 0);
    assert_eq!(v.body(), b"Hello RocketMQ");
    assert_eq!(v.topic(), "TopicTest");
    assert_eq!(v.tags(), Some("TagA"));
    assert_eq!(v.tags_code(), 2598919);
    assert_eq!(v.keys().collect::<Vec<_>>(), vec!["k1", "k2"]);
    assert_eq!(v.uniq_key(), Some("0A00000900002A9F0000000000000001"));
    assert_eq!(v.transaction_type(), TransactionType::Not);
    assert_eq!(StoredMessage::decode(&bytes).unwrap(), m);
}

#[test]
fn ipv6_hosts_set_sysflag_bits_and_shift_fields_by_twelve() {
    let mut m = sample();
    m.born_host = addr("[2001:db8::1]:4000");
    m.store_host = addr("[::1]:10911");
    let bytes = m.encode().unwrap();
    let sys = i32::from_be_bytes(bytes[36..40].try_into().unwrap());
    assert_eq!(sys & sysflag::BORNHOST_V6, sysflag::BORNHOST_V6);
    assert_eq!(sys & sysflag::STOREHOST_V6, sysflag::STOREHOST_V6);
    assert_eq!(bytes.len(), hand_encoded_v1(&sample()).len() + 24);
    // Born host: 16-byte address then port; store timestamp follows at 48 + 20.
    assert_eq!(
        &bytes[48..64],
        &addr("[2001:db8::1]:4000")
            .ip()
            .to_string()
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(i32::from_be_bytes(bytes[64..68].try_into().unwrap()), 4000);
    assert_eq!(
        i64::from_be_bytes(bytes[68..76].try_into().unwrap()),
        1_700_000_000_456
    );
    let back = StoredMessage::decode(&bytes).unwrap();
    assert_eq!(back.born_host, m.born_host);
    assert_eq!(back.store_host, m.store_host);
    assert_eq!(back.body, m.body);
    assert_eq!(back.topic, m.topic);
}

#[test]
fn long_topic_uses_v2_magic_and_two_byte_length() {
    let mut m = sample();
    m.topic = "T".repeat(200);
    m.properties.clear();
    let bytes = m.encode().unwrap();
    assert_eq!(
        i32::from_be_bytes(bytes[4..8].try_into().unwrap()),
        MAGIC_V2
    );
    let topic_len_at = 88 + m.body.len();
    assert_eq!(
        i16::from_be_bytes(bytes[topic_len_at..topic_len_at + 2].try_into().unwrap()),
        200
    );
    assert_eq!(StoredMessage::decode(&bytes).unwrap().topic, m.topic);
}

#[test]
fn java_hash_and_crc_match_known_java_values() {
    assert_eq!(tag_hash_code("TagA"), 2598919);
    assert_eq!(tag_hash_code("*"), 42);
    assert_eq!(tag_hash_code("订单"), 1129459);
    assert_eq!(tag_hash_code(""), 0);
    // Wraps like a Java int and sign-extends.
    assert!(tag_hash_code("a fairly long tag that overflows i32").abs() <= i32::MAX as i64 + 1);
    assert_eq!(body_crc(b"Hello RocketMQ"), 1774740973);
}

#[test]
fn offset_msg_id_is_upper_hex_and_round_trips() {
    let id = offset_msg_id(addr("192.168.1.20:10911"), 0x1234_5678_9ABC);
    assert_eq!(id, "C0A8011400002A9F0000123456789ABC");
    assert_eq!(
        decode_offset_msg_id(&id).unwrap(),
        (addr("192.168.1.20:10911"), 0x1234_5678_9ABC)
    );
    let id6 = offset_msg_id(addr("[::1]:10911"), 5);
    assert_eq!(id6.len(), 56);
    assert_eq!(
        decode_offset_msg_id(&id6).unwrap(),
        (addr("[::1]:10911"), 5)
    );
    assert!(decode_offset_msg_id("XYZ").is_err());
    assert!(decode_offset_msg_id(&"G".repeat(32)).is_err());
}

#[test]
fn properties_follow_java_parser_rules() {
    let raw = "A\u{1}1\u{2}\u{2}B\u{1}\u{2}\u{1}x\u{2}C\u{1}2\u{1}3\u{2}";
    let got: Vec<_> = parse_properties(raw).collect();
    assert_eq!(got, vec![("A", "1"), ("C", "2\u{1}3")]);
    assert_eq!(
        message::encode_properties(&[("K", "V"), ("X", "Y")]),
        "K\u{1}V\u{2}X\u{1}Y\u{2}"
    );
}

#[test]
fn limits_give_typed_errors() {
    let mut m = sample();
    m.body = vec![0u8; 1000];
    assert!(matches!(
        m.encode_with_limit(500),
        Err(MessageError::TooLarge { max: 500, .. })
    ));
    m.body = vec![0u8; 4 * 1024 * 1024];
    assert!(matches!(m.encode(), Err(MessageError::TooLarge { .. })));
    let mut p = sample();
    p.properties = vec![("K".into(), "v".repeat(40_000))];
    assert!(matches!(p.encode(), Err(MessageError::Invalid(_))));
    let mut t = sample();
    t.topic.clear();
    assert!(t.encode().is_err());
}

#[test]
fn batch_iteration_and_writer_patches() {
    let mut a = sample();
    a.queue_offset = 0;
    let mut b = sample();
    b.born_host = addr("[::1]:1");
    b.topic = "Other".into();
    let mut batch = a.encode().unwrap();
    let a_len = batch.len();
    batch.extend(b.encode().unwrap());
    // encode_into appends the same bytes, and leaves the buffer alone on error.
    let mut built = Vec::new();
    assert_eq!(a.encode_into(&mut built, 1 << 20).unwrap(), a_len);
    b.encode_into(&mut built, 1 << 20).unwrap();
    assert_eq!(built, batch);
    assert!(b.encode_into(&mut built, 10).is_err());
    assert_eq!(built, batch);

    let frames = message::batch_frames(&batch).unwrap();
    assert_eq!(frames.len(), 2);
    for (i, (start, len)) in frames.iter().enumerate() {
        let msg = &mut batch[*start..start + len];
        set_queue_offset(msg, 100 + i as i64).unwrap();
        set_store_timestamp(msg, 9_999).unwrap();
        set_store_host(msg, addr("127.0.0.1:10911")).unwrap();
    }
    assert_eq!(
        message::patch_physical_offsets(&mut batch, 5_000).unwrap(),
        2
    );

    let views: Vec<_> = iter_batch(&batch).map(|r| r.unwrap()).collect();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].0, 0);
    assert_eq!(views[1].0, a_len);
    for (i, (at, v)) in views.iter().enumerate() {
        assert_eq!(v.queue_offset(), 100 + i as i64);
        assert_eq!(v.store_timestamp(), 9_999);
        assert_eq!(v.store_host(), addr("127.0.0.1:10911"));
        assert_eq!(v.physical_offset(), 5_000 + *at as i64);
        assert!(v.body_crc_ok());
    }
    assert_eq!(views[1].1.born_host(), addr("[::1]:1"));
    assert_eq!(views[1].1.topic(), "Other");

    // Changing the address family in place is refused (it would change the length).
    let (s, l) = frames[0];
    assert!(set_store_host(&mut batch[s..s + l], addr("[::1]:1")).is_err());
    // A patch helper refuses a slice that is not exactly one message.
    assert!(set_queue_offset(&mut batch, 1).is_err());
}

#[test]
fn corrupt_lengths_are_rejected_with_offsets() {
    let m = sample();
    let good = m.encode().unwrap();
    let mut batch = good.clone();
    let mut bad = good.clone();
    // Body length pointing past TOTALSIZE.
    bad[84..88].copy_from_slice(&10_000i32.to_be_bytes());
    batch.extend(&bad);
    let results: Vec<_> = iter_batch(&batch).collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    match &results[1] {
        Err(MessageError::Malformed { offset, .. }) => assert!(*offset >= good.len()),
        other => panic!("expected malformed, got {other:?}"),
    }
    // Negative topic length in a V1 record.
    let mut neg = good.clone();
    neg[88 + m.body.len()] = 0xFF;
    assert!(MessageView::parse(&neg).is_err());
    // Port out of range.
    let mut port = good.clone();
    port[52..56].copy_from_slice(&70_000i32.to_be_bytes());
    assert!(MessageView::parse(&port).is_err());
    // Trailing garbage inside TOTALSIZE.
    let mut trailing = good.clone();
    trailing.push(0);
    let n = trailing.len() as i32;
    trailing[0..4].copy_from_slice(&n.to_be_bytes());
    assert!(MessageView::parse(&trailing).is_err());
}

fn arb_host() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::from((a, p))),
    ]
}

fn arb_message() -> impl Strategy<Value = StoredMessage> {
    (
        "[a-zA-Z0-9_%-]{1,200}",
        any::<(i32, i32, i64, i64)>(),
        any::<(i64, i64, i32, i64)>(),
        (arb_host(), arb_host()),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(("[A-Z_]{1,10}", "[ -~]{1,20}"), 0..5),
        0i32..0x800,
    )
        .prop_map(
            |(topic, (queue_id, flag, qo, po), (bt, st, rt, pto), (bh, sh), body, props, sf)| {
                StoredMessage {
                    topic,
                    queue_id,
                    flag,
                    queue_offset: qo,
                    physical_offset: po,
                    // The v6 bits are derived from the hosts by the encoder.
                    sys_flag: sf & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6)
                        | if bh.is_ipv6() {
                            sysflag::BORNHOST_V6
                        } else {
                            0
                        }
                        | if sh.is_ipv6() {
                            sysflag::STOREHOST_V6
                        } else {
                            0
                        },
                    born_timestamp: bt,
                    born_host: bh,
                    store_timestamp: st,
                    store_host: sh,
                    reconsume_times: rt,
                    prepared_transaction_offset: pto,
                    body,
                    properties: props,
                }
            },
        )
}

fn wire_item(flag: i32, body: &[u8], props: &str) -> Vec<u8> {
    let total = 4 + 4 + 4 + 4 + 4 + body.len() + 2 + props.len();
    let mut v = Vec::new();
    v.extend((total as i32).to_be_bytes());
    v.extend(0i32.to_be_bytes()); // MAGICCODE 0
    v.extend(0i32.to_be_bytes()); // BODYCRC 0
    v.extend(flag.to_be_bytes());
    v.extend((body.len() as i32).to_be_bytes());
    v.extend(body);
    v.extend((props.len() as i16).to_be_bytes());
    v.extend(props.as_bytes());
    v
}

#[test]
fn wire_batch_bodies_split_into_items() {
    let mut body = wire_item(1, b"first", "UNIQ_KEY\u{1}A\u{2}");
    body.extend(wire_item(2, b"", ""));
    body.extend(wire_item(3, b"third body", "KEYS\u{1}k\u{2}"));
    let items = message::decode_wire_batch(&body).unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        (items[0].flag, items[0].body, items[0].properties),
        (1, &b"first"[..], "UNIQ_KEY\u{1}A\u{2}")
    );
    assert_eq!(
        (items[1].flag, items[1].body.len(), items[1].properties),
        (2, 0, "")
    );
    assert_eq!(items[2].body, b"third body");
    assert!(message::decode_wire_batch(&[]).unwrap().is_empty());
    // Lengths that disagree with TOTALSIZE are rejected.
    let mut bad = wire_item(1, b"abc", "");
    bad[16..20].copy_from_slice(&100i32.to_be_bytes());
    assert!(message::decode_wire_batch(&bad).is_err());
    let mut short = wire_item(1, b"abc", "x");
    short.pop();
    assert!(message::decode_wire_batch(&short).is_err());
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_wire_batch_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = message::decode_wire_batch(&bytes);
    }

    #[test]
    fn random_messages_round_trip(m in arb_message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(bytes.len(), m.encoded_len());
        prop_assert_eq!(StoredMessage::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for (_, v) in iter_batch(&bytes).flatten() {
            let _ = (v.to_owned_message(), v.tags_code(), v.keys().count(), v.offset_msg_id());
        }
        let mut copy = bytes.clone();
        let _ = message::patch_physical_offsets(&mut copy, 12);
        let _ = StoredMessage::decode(&bytes);
        let _ = message::batch_frames(&bytes);
    }

    #[test]
    fn mutated_valid_records_never_panic(m in arb_message(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = m.encode().unwrap();
        let i = at % bytes.len();
        bytes[i] = byte;
        for (_, v) in iter_batch(&bytes).flatten() {
            let _ = (v.to_owned_message(), v.tags_code(), v.body_crc_ok());
        }
    }
}
