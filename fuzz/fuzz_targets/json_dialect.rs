//! Arbitrary bytes through the lenient fastjson-dialect parser and the JSON header decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftmq::remoting::{codec, json};

fuzz_target!(|data: &[u8]| {
    let _ = json::parse_lenient(data);
    let _ = codec::decode_json_header(data);
    let _ = codec::decode_binary_header(data);
});
