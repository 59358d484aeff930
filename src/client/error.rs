//! Errors of the client library.
//!
//! Every failure says which address or topic it concerns. Broker answers keep their wire
//! code and remark and are classified by [`BrokerErrorKind`], so callers can match on the
//! meaning (not leader, no permission, ...) without knowing the numbers. For a chaos
//! checker, [`ClientError::is_indeterminate`] tells a failure that may still have written
//! the message (a timeout, a connection lost mid-request) from one that certainly did not.

use std::time::Duration;

use crate::remoting::{RemotingError, ResponseCode};

/// What a non-success broker answer means to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerErrorKind {
    /// 17: the broker does not know the topic.
    TopicNotExist,
    /// 16: the topic or broker refuses this operation.
    NoPermission,
    /// 13: the message is malformed or too large.
    MessageIllegal,
    /// 14: the broker cannot serve writes now; a Raft follower answers writes with it
    /// (with the leader in the remark), as does a leader that is not ready yet.
    ServiceNotAvailable,
    /// 501 (5.x): explicitly not the leader for this queue.
    NotLeader,
    /// 1: a failure inside the broker.
    SystemError,
    /// 2: the broker is overloaded (also the per-connection in-flight limit).
    SystemBusy,
    /// 215: the broker asks the client to slow down.
    FlowControl,
    /// 23–26: a subscription problem (parse failure, unknown or stale subscription/group).
    Subscription,
    /// 3: the broker does not serve this request code.
    NotSupported,
    /// Any other code.
    Other,
}

impl BrokerErrorKind {
    /// Classifies a response code.
    pub fn from_code(code: i32) -> Self {
        use ResponseCode as R;
        match ResponseCode::from_code(code) {
            Some(R::TopicNotExist) => BrokerErrorKind::TopicNotExist,
            Some(R::NoPermission) => BrokerErrorKind::NoPermission,
            Some(R::MessageIllegal) => BrokerErrorKind::MessageIllegal,
            Some(R::ServiceNotAvailable) => BrokerErrorKind::ServiceNotAvailable,
            Some(R::NotLeaderForQueue) => BrokerErrorKind::NotLeader,
            Some(R::SystemError) => BrokerErrorKind::SystemError,
            Some(R::SystemBusy) => BrokerErrorKind::SystemBusy,
            Some(R::FlowControl) => BrokerErrorKind::FlowControl,
            Some(
                R::SubscriptionParseFailed
                | R::SubscriptionNotExist
                | R::SubscriptionNotLatest
                | R::SubscriptionGroupNotExist,
            ) => BrokerErrorKind::Subscription,
            Some(R::RequestCodeNotSupported) => BrokerErrorKind::NotSupported,
            _ => BrokerErrorKind::Other,
        }
    }

    /// Whether a send answered with this may be retried on another queue or leader. The
    /// Java producer's list (17, 14, 1, 16, 204, 205) plus not-leader and system-busy, which
    /// a Raft follower or an overloaded broker answer before touching the message.
    pub fn is_retryable(self, code: i32) -> bool {
        match self {
            BrokerErrorKind::TopicNotExist
            | BrokerErrorKind::ServiceNotAvailable
            | BrokerErrorKind::NotLeader
            | BrokerErrorKind::SystemError
            | BrokerErrorKind::SystemBusy
            | BrokerErrorKind::NoPermission => true,
            BrokerErrorKind::Other => matches!(code, 204 | 205),
            _ => false,
        }
    }
}

/// A failure of a client operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client configuration is unusable.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The message cannot be sent as given (checked before anything goes on the wire).
    #[error("invalid message for topic {topic:?}: {reason}")]
    InvalidMessage { topic: String, reason: String },
    /// No nameserver knows the topic (every one answered TOPIC_NOT_EXIST).
    #[error("topic {topic:?} does not exist on any nameserver")]
    TopicNotExist { topic: String },
    /// No route could be obtained: nameservers unreachable, or a route without usable
    /// queues or broker addresses.
    #[error("no route for topic {topic:?}: {reason}")]
    NoRoute { topic: String, reason: String },
    /// The named broker group has no known address.
    #[error("no address for broker {broker_name:?} (topic {topic:?})")]
    BrokerNotFound { topic: String, broker_name: String },
    /// The connection could not be opened; nothing was sent.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// No answer in time; the request may or may not have been processed.
    #[error("request code {code} to {addr} timed out after {timeout:?}")]
    Timeout {
        addr: String,
        code: i32,
        timeout: Duration,
    },
    /// The connection failed while the request was out; it may have been processed.
    #[error("connection to {addr} lost during request code {code}: {source}")]
    ConnectionLost {
        addr: String,
        code: i32,
        #[source]
        source: RemotingError,
    },
    /// The broker or nameserver answered with an error code.
    #[error("{addr} answered code {code} ({kind:?}): {remark}")]
    Broker {
        addr: String,
        code: i32,
        kind: BrokerErrorKind,
        remark: String,
    },
    /// The answer is missing fields or has a body that does not parse.
    #[error("bad response from {addr}: {reason}")]
    BadResponse { addr: String, reason: String },
    /// A send failed on every attempt; `last` is the final attempt's error.
    #[error("send to topic {topic:?} failed after {attempts} attempt(s): {last}")]
    SendFailed {
        topic: String,
        attempts: u32,
        /// True if some attempt may have written the message (timeout, lost connection).
        maybe_written: bool,
        #[source]
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// True when the operation may have taken effect despite the error: a timeout or a
    /// connection lost after the request was written, a SYSTEM_ERROR (the broker failed
    /// inside, possibly after the write was handed on: a raftmq leader that steps down before
    /// its entry is known committed answers this, and the entry may still commit), or a send
    /// whose attempts included one.
    pub fn is_indeterminate(&self) -> bool {
        match self {
            ClientError::Timeout { .. } | ClientError::ConnectionLost { .. } => true,
            ClientError::Broker {
                kind: BrokerErrorKind::SystemError,
                ..
            } => true,
            ClientError::SendFailed { maybe_written, .. } => *maybe_written,
            _ => false,
        }
    }

    /// The broker error kind, when the peer answered with an error code.
    pub fn broker_kind(&self) -> Option<BrokerErrorKind> {
        match self {
            ClientError::Broker { kind, .. } => Some(*kind),
            ClientError::SendFailed { last, .. } => last.broker_kind(),
            _ => None,
        }
    }

    /// Whether the request should be tried again elsewhere (another queue, or the same
    /// queue on a new leader after a route refresh).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::ConnectionLost { .. }
            | ClientError::BrokerNotFound { .. } => true,
            ClientError::Broker { kind, code, .. } => kind.is_retryable(*code),
            _ => false,
        }
    }

    /// Maps a transport error of a request with `code` sent to `addr`.
    pub(crate) fn from_remoting(addr: &str, code: i32, err: RemotingError) -> Self {
        match err {
            RemotingError::Connect { addr, reason } => ClientError::Connect { addr, reason },
            RemotingError::Timeout { timeout, .. } => ClientError::Timeout {
                addr: addr.to_owned(),
                code,
                timeout,
            },
            // The frame could not be built: nothing was sent.
            RemotingError::Encode(e) => ClientError::InvalidMessage {
                topic: String::new(),
                reason: e.to_string(),
            },
            other => ClientError::ConnectionLost {
                addr: addr.to_owned(),
                code,
                source: other,
            },
        }
    }

    /// The error for a response with a non-success `code`.
    pub(crate) fn broker(addr: &str, code: i32, remark: Option<String>) -> Self {
        ClientError::Broker {
            addr: addr.to_owned(),
            code,
            kind: BrokerErrorKind::from_code(code),
            remark: remark.unwrap_or_default(),
        }
    }
}

/// Result type of the client library.
pub type ClientResult<T> = Result<T, ClientError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify_as_the_java_producer_retries() {
        for code in [17, 14, 1, 16, 204, 205, 501, 2] {
            assert!(
                BrokerErrorKind::from_code(code).is_retryable(code),
                "code {code} retryable"
            );
        }
        for code in [13, 3, 23, 25, 999] {
            assert!(
                !BrokerErrorKind::from_code(code).is_retryable(code),
                "code {code} not retryable"
            );
        }
        assert_eq!(BrokerErrorKind::from_code(501), BrokerErrorKind::NotLeader);
    }

    #[test]
    fn timeouts_are_indeterminate_connect_failures_are_not() {
        let t = ClientError::Timeout {
            addr: "a".into(),
            code: 310,
            timeout: Duration::from_millis(5),
        };
        assert!(t.is_indeterminate() && t.is_retryable());
        let c = ClientError::Connect {
            addr: "a".into(),
            reason: "refused".into(),
        };
        assert!(!c.is_indeterminate() && c.is_retryable());
        let b = ClientError::broker("a", 13, Some("too big".into()));
        assert!(!b.is_indeterminate() && !b.is_retryable());
        assert_eq!(b.broker_kind(), Some(BrokerErrorKind::MessageIllegal));
        // A refusal (not the leader, busy) wrote nothing; a failure inside the broker may
        // have come after the write was handed on.
        for code in [14, 2, 17] {
            assert!(
                !ClientError::broker("a", code, None).is_indeterminate(),
                "{code}"
            );
        }
        let s = ClientError::broker("a", 1, Some("store failed: outcome unknown".into()));
        assert!(s.is_indeterminate() && s.is_retryable());
    }
}
