//! The nameserver: a registry of broker groups and topic routes that clients ask where to send
//! and pull (protocol.md §8).
//!
//! It owns the route table ([`route::RouteInfoManager`]), broker liveness ([`liveness`]), the KV
//! config ([`kvconfig`]) and the JSON bodies it exchanges ([`bodies`]). It knows the remoting
//! protocol only through the request processor; it knows nothing of storage or Raft internals:
//! a Raft group member simply registers with its term and role (see [`route`] for the rules).
//! Several nameservers are independent and keep no shared state; brokers register with each.

pub mod bodies;
pub mod kvconfig;
pub mod liveness;
pub mod route;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the tables hold
/// plain maps that every method leaves consistent, and one bad request must not take the
/// nameserver down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
