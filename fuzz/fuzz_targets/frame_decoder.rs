//! Arbitrary bytes through the frame decoder: it must return frames or errors, never panic,
//! and every decoded frame must re-encode.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use raftmq::remoting::FrameCodec;

fuzz_target!(|data: &[u8]| {
    let codec = FrameCodec::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = codec.decode(&mut buf) {
        let _ = codec.encode_to_bytes(&cmd);
    }
});
