//! Property tests: the decoders never panic on arbitrary bytes, and every command survives
//! encode → decode in both header encodings, however the byte stream is split.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::codec::{
    decode_binary_header, decode_json_header, decode_json_header_value, encode_header, FrameCodec,
};
use super::command::{ExtFields, RemotingCommand, SerializeType};
use super::json::parse_lenient;
use super::LanguageCode;

fn arb_command() -> impl Strategy<Value = RemotingCommand> {
    (
        (
            any::<i32>(),
            0..LanguageCode::ALL.len(),
            any::<i16>(),
            any::<i32>(),
            0i32..4,
        ),
        proptest::option::of("\\PC{1,40}"),
        proptest::collection::btree_map("[a-zA-Z_]{0,12}", "\\PC{0,30}", 0..6),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..64)),
        any::<bool>(),
    )
        .prop_map(
            |((code, lang, version, opaque, flag), remark, ext, body, binary)| RemotingCommand {
                code,
                language: LanguageCode::ALL[lang],
                version: i32::from(version),
                opaque,
                flag,
                remark,
                ext_fields: ext.into_iter().collect::<ExtFields>(),
                body: body.map(Bytes::from),
                serialize_type: if binary {
                    SerializeType::RocketMq
                } else {
                    SerializeType::Json
                },
            },
        )
}

/// JSON headers built from the field names and value shapes clients send, repeated keys,
/// nulls, numbers as strings, escapes, nested values and wrong types included.
fn arb_json_header() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("code"),
        Just("language"),
        Just("version"),
        Just("opaque"),
        Just("flag"),
        Just("remark"),
        Just("extFields"),
        Just("serializeTypeCurrentRPC"),
        Just("other"),
    ];
    let scalar = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("\"\"".to_owned()),
        Just("\"JAVA\"".to_owned()),
        Just("\"a\\\"b\\u00e9\"".to_owned()),
        Just("\" 42 \"".to_owned()),
        Just("1.5".to_owned()),
        Just("-0.0".to_owned()),
        Just("1e3".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("[1,\"x\",{\"k\":null}]".to_owned()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<i32>().prop_map(|v| format!("\"{v}\"")),
    ];
    let ext_key = prop_oneof![Just("a"), Just("b"), Just("topic"), Just("k\\u0041")];
    let ext = proptest::collection::vec((ext_key, scalar.clone()), 0..5).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    });
    let value = prop_oneof![scalar, ext];
    proptest::collection::vec((key, value), 0..9).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn one_pass_json_header_decoder_agrees_with_the_value_tree(text in arb_json_header()) {
        let fast = decode_json_header(text.as_bytes());
        let tree = decode_json_header_value(text.as_bytes());
        match (fast, tree) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", text),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string(), "{}", text),
            (a, b) => prop_assert!(false, "{}: one-pass {:?}, value tree {:?}", text, a, b),
        }
    }

    #[test]
    fn frame_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&bytes[..]);
        // Bounded: every successful decode consumes at least 8 bytes.
        for _ in 0..64 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn frame_decoder_never_panics_on_plausible_frames(
        header_len in 0u32..64,
        ty in 0u8..3,
        rest in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        // A well-formed length word and header word make the decoder reach the header parsers.
        let mut frame = Vec::new();
        frame.extend_from_slice(&((4 + rest.len()) as i32).to_be_bytes());
        frame.extend_from_slice(&((u32::from(ty) << 24) | header_len).to_be_bytes());
        frame.extend_from_slice(&rest);
        let _ = FrameCodec::default().decode(&mut BytesMut::from(&frame[..]));
    }

    #[test]
    fn header_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode_binary_header(&bytes);
        let _ = decode_json_header(&bytes);
        let _ = parse_lenient(&bytes);
    }

    #[test]
    fn lenient_json_never_panics_on_json_like_text(text in "[{}\\[\\]:,\"'a-z0-9 \\\\.-]{0,80}") {
        let _ = parse_lenient(text.as_bytes());
    }

    #[test]
    fn commands_round_trip_in_both_encodings(cmd in arb_command()) {
        let (ty, header) = encode_header(&cmd).unwrap();
        let bytes = FrameCodec::default().encode_to_bytes(&cmd).unwrap();
        // The frame carries exactly the header encode_header gives (binary headers are
        // written straight into the frame, not copied from it).
        prop_assert_eq!(&bytes[8..8 + header.len()], &header[..]);
        let back = FrameCodec::default()
            .decode(&mut BytesMut::from(&bytes[..]))
            .unwrap()
            .unwrap();
        let mut expected = cmd.clone();
        expected.serialize_type = ty;
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn split_streams_decode_to_the_same_commands(
        cmds in proptest::collection::vec(arb_command(), 1..4),
        cuts in proptest::collection::vec(1usize..50, 0..10),
    ) {
        let codec = FrameCodec::default();
        let mut stream = BytesMut::new();
        for c in &cmds {
            codec.encode(c, &mut stream).unwrap();
        }
        let stream = stream.freeze();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut pos = 0;
        let mut cut_iter = cuts.into_iter();
        while pos < stream.len() {
            let step = cut_iter.next().unwrap_or(stream.len());
            let end = (pos + step).min(stream.len());
            buf.extend_from_slice(&stream[pos..end]);
            pos = end;
            while let Some(c) = codec.decode(&mut buf).unwrap() {
                got.push(c);
            }
        }
        prop_assert_eq!(got.len(), cmds.len());
        for (g, c) in got.iter().zip(&cmds) {
            prop_assert_eq!(g.opaque, c.opaque);
            prop_assert_eq!(&g.ext_fields, &c.ext_fields);
            prop_assert_eq!(&g.body, &c.body);
        }
    }
}
