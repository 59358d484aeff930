//! The nameserver.
