//! SEND_MESSAGE (10) and its V2 form (310, 320 batch; 325 reply) — protocol.md §3.1.
//!
//! V2 carries the same fields under one-letter keys `a`..`n` to save bytes. The broker picks
//! the key set by request code; [`SendMessageRequestHeader::decode`] does that, so processors
//! work with one struct whatever the client sent.

use super::command_header;
use crate::remoting::{CommandHeader, ExtFields, HeaderError, RemotingCommand, RequestCode};

command_header! {
    /// SEND_MESSAGE (10) request with full field names (what the Go client sends for single
    /// messages).
    pub struct SendMessageRequestHeader {
        producer_group: String => "producerGroup",
        topic: String => "topic",
        /// Auto-create template topic, normally `TBW102`.
        default_topic: String => "defaultTopic",
        default_topic_queue_nums: i32 => "defaultTopicQueueNums",
        /// Negative: the broker picks a queue.
        queue_id: i32 => "queueId",
        sys_flag: i32 => "sysFlag",
        born_timestamp: i64 => "bornTimestamp",
        flag: i32 => "flag",
        properties: Option<String> => "properties",
        reconsume_times: Option<i32> => "reconsumeTimes",
        unit_mode: Option<bool> => "unitMode",
        max_reconsume_times: Option<i32> => "maxReconsumeTimes",
        batch: Option<bool> => "batch",
        /// 5.x / Go: target broker name (`bname` from RpcRequestHeader).
        broker_name: Option<String> => "bname",
    }
}

command_header! {
    /// SEND_MESSAGE_V2 (310) / SEND_BATCH_MESSAGE (320) request: the same fields under
    /// one-letter keys. Convert with `From` to work with [`SendMessageRequestHeader`].
    pub struct SendMessageRequestHeaderV2 {
        a: String => "a",
        b: String => "b",
        c: String => "c",
        d: i32 => "d",
        e: i32 => "e",
        f: i32 => "f",
        g: i64 => "g",
        h: i32 => "h",
        i: Option<String> => "i",
        j: Option<i32> => "j",
        k: Option<bool> => "k",
        l: Option<i32> => "l",
        m: Option<bool> => "m",
        n: Option<String> => "n",
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        SendMessageRequestHeader {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            properties: v2.i,
            reconsume_times: v2.j,
            unit_mode: v2.k,
            max_reconsume_times: v2.l,
            batch: v2.m,
            broker_name: v2.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        SendMessageRequestHeaderV2 {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.broker_name,
        }
    }
}

impl SendMessageRequestHeader {
    /// True for the codes whose header uses the one-letter keys.
    pub fn is_v2_code(code: i32) -> bool {
        code == RequestCode::SendMessageV2.code()
            || code == RequestCode::SendBatchMessage.code()
            || code == RequestCode::SendReplyMessageV2.code()
    }

    /// Reads the header of a send request in whichever key set its code implies.
    pub fn decode(cmd: &RemotingCommand) -> Result<Self, HeaderError> {
        Self::decode_ext(cmd.code, &cmd.ext_fields)
    }

    /// As [`decode`](Self::decode), from a code and ext fields.
    pub fn decode_ext(code: i32, ext: &ExtFields) -> Result<Self, HeaderError> {
        if Self::is_v2_code(code) {
            SendMessageRequestHeaderV2::from_ext(ext).map(Into::into)
        } else {
            Self::from_ext(ext)
        }
    }

    /// Writes the header in the key set `code` implies.
    pub fn encode_ext(&self, code: i32, ext: &mut ExtFields) {
        if Self::is_v2_code(code) {
            SendMessageRequestHeaderV2::from(self.clone()).to_ext(ext);
        } else {
            self.to_ext(ext);
        }
    }
}

command_header! {
    /// Response to every send code. Java reads `MSG_REGION` from the response's ext map
    /// without a null check, so a send response must carry an ext map: set `msg_region`.
    pub struct SendMessageResponseHeader {
        /// offsetMsgId; comma-joined for batches.
        msg_id: String => "msgId",
        queue_id: i32 => "queueId",
        queue_offset: i64 => "queueOffset",
        /// The message's UNIQ_KEY.
        transaction_id: Option<String> => "transactionId",
        /// 5.x inner batches.
        batch_uniq_id: Option<String> => "batchUniqId",
        /// Region id, `DefaultRegion` by default.
        msg_region: Option<String> => "MSG_REGION",
        /// `"true"` / `"false"`.
        trace_on: Option<String> => "TRACE_ON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "PG".into(),
            topic: "TopicTest".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 2,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: Some("UNIQ_KEY\u{1}ABC\u{2}".into()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            max_reconsume_times: None,
            batch: Some(false),
            broker_name: None,
        }
    }

    #[test]
    fn v2_uses_one_letter_keys_a_to_n() {
        let h = sample();
        let mut ext = ExtFields::new();
        h.encode_ext(RequestCode::SendMessageV2.code(), &mut ext);
        assert_eq!(&ext["a"], "PG");
        assert_eq!(&ext["b"], "TopicTest");
        assert_eq!(&ext["c"], "TBW102");
        assert_eq!(&ext["d"], "4");
        assert_eq!(&ext["e"], "2");
        assert_eq!(&ext["g"], "1700000000000");
        assert_eq!(&ext["m"], "false");
        assert!(!ext.contains_key("l") && !ext.contains_key("n"));
        assert!(ext.keys().all(|k| k.len() == 1));
        assert_eq!(
            SendMessageRequestHeader::decode_ext(RequestCode::SendBatchMessage.code(), &ext),
            Ok(h.clone())
        );
        // The same ext fields are not a valid V1 header.
        assert_eq!(
            SendMessageRequestHeader::decode_ext(RequestCode::SendMessage.code(), &ext),
            Err(HeaderError::Missing {
                field: "producerGroup"
            })
        );
    }

    #[test]
    fn v1_uses_full_names() {
        let h = sample();
        let cmd = RemotingCommand::request(RequestCode::SendMessage).with_header(&h);
        assert_eq!(cmd.ext_str("producerGroup"), Ok("PG"));
        assert_eq!(cmd.ext_str("bornTimestamp"), Ok("1700000000000"));
        assert_eq!(SendMessageRequestHeader::decode(&cmd), Ok(h));
    }

    #[test]
    fn go_style_send_with_extra_keys_parses() {
        // Go sends SEND_MESSAGE (10) with full names plus bname; values may be anything
        // the JSON header decoder stringified.
        let mut cmd = RemotingCommand::request(RequestCode::SendMessage);
        for (k, v) in [
            ("producerGroup", "PG"),
            ("topic", "T"),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", "-1"),
            ("sysFlag", "0"),
            ("bornTimestamp", "1"),
            ("flag", "0"),
            ("bname", "broker-a"),
            ("unknown", "x"),
        ] {
            cmd.ext_fields.insert(k, v);
        }
        let h = SendMessageRequestHeader::decode(&cmd).unwrap();
        assert_eq!(h.queue_id, -1);
        assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
        assert_eq!(h.properties, None);
    }
}
