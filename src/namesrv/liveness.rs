//! Broker liveness: a background scan that removes brokers not heard from in time.
//!
//! Brokers re-register every 30 s; every `scanNotActiveBrokerInterval` (10 s) the scan drops
//! members whose last registration is older than `brokerChannelExpiredTime` (120 s) or their own
//! 5.x `heartbeatTimeoutMillis`. Closed connections are handled elsewhere (at once, by the
//! processor's connection-close hook); this scan catches brokers that vanished without a FIN.
//! Time is `tokio::time`, so tests drive it with `tokio::time::pause`/`advance`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::lock;
use super::route::{Removed, RouteInfoManager};

/// Owns the scan task; dropping it stops the scan.
#[derive(Debug)]
pub struct LivenessScanner {
    task: JoinHandle<()>,
}

impl LivenessScanner {
    /// Starts scanning `routes` every `interval`, expiring members silent for `timeout`.
    /// The first scan runs one interval after start (a fresh nameserver has nothing to expire).
    pub fn spawn(
        routes: Arc<Mutex<RouteInfoManager>>,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
            // After a stall, one scan is enough; catching up with a burst would add nothing.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let removed = scan_once(&routes, Instant::now(), timeout);
                for r in removed {
                    tracing::warn!(
                        cluster = %r.cluster_name,
                        broker_name = %r.broker_name,
                        broker_addr = %r.broker_addr,
                        broker_id = r.broker_id,
                        timeout_ms = timeout.as_millis() as u64,
                        "broker expired: no registration within timeout, removed from routes"
                    );
                }
            }
        });
        LivenessScanner { task }
    }
}

impl Drop for LivenessScanner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One scan; the lock is held only for the in-memory sweep.
pub fn scan_once(
    routes: &Mutex<RouteInfoManager>,
    now: Instant,
    timeout: Duration,
) -> Vec<Removed> {
    lock(routes).scan_expired(now, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namesrv::bodies::TopicConfigSerializeWrapper;
    use crate::namesrv::route::Registration;

    fn register(routes: &Mutex<RouteInfoManager>, addr: &str) {
        lock(routes).register(
            Registration {
                cluster_name: "C".into(),
                broker_name: "a".into(),
                broker_addr: addr.into(),
                ha_server_addr: String::new(),
                broker_id: 0,
                raft: None,
                topic_config: TopicConfigSerializeWrapper::default(),
                filter_server_list: vec![],
                conn: None,
                heartbeat_timeout: None,
            },
            Instant::now(),
        );
    }

    fn count(routes: &Mutex<RouteInfoManager>) -> usize {
        lock(routes).member_count()
    }

    /// Lets the scan task run after a time jump.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silent_broker_expires_after_timeout_and_scan() {
        let routes = Arc::new(Mutex::new(RouteInfoManager::new()));
        let _scanner = LivenessScanner::spawn(
            routes.clone(),
            Duration::from_secs(10),
            Duration::from_secs(120),
        );
        register(&routes, "m:1");

        // 119 s later (scans at 10, 20, ..., 110): still there.
        tokio::time::advance(Duration::from_secs(119)).await;
        settle().await;
        assert_eq!(count(&routes), 1);

        // A heartbeat at 119 s resets the clock.
        register(&routes, "m:1");
        tokio::time::advance(Duration::from_secs(119)).await;
        settle().await;
        assert_eq!(count(&routes), 1, "heartbeat must keep the broker alive");

        // 120 s after the last heartbeat it is over the limit; the next scan removes it.
        tokio::time::advance(Duration::from_secs(11)).await;
        settle().await;
        assert_eq!(count(&routes), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_scanner_stops_expiry() {
        let routes = Arc::new(Mutex::new(RouteInfoManager::new()));
        let scanner = LivenessScanner::spawn(
            routes.clone(),
            Duration::from_secs(1),
            Duration::from_secs(5),
        );
        register(&routes, "m:1");
        drop(scanner);
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(count(&routes), 1);
    }
}
