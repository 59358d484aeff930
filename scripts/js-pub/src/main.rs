//! Closed-loop JetStream publisher for the side-by-side benchmark: the same shape as
//! `raftmq bench produce` (one connection, K publishes in flight, each waits for its
//! acknowledgement), so the peer is not held back by a slow client.
//!
//! Usage: js-pub URL SECS WINDOWS REPLICAS
//!   URL      nats://127.0.0.1:14222
//!   SECS     measuring time per window (float seconds)
//!   WINDOWS  comma-separated in-flight windows, e.g. 1,64,256
//!   REPLICAS stream replicas (1 or 3)
//! Prints one JSON line per window: inflight, messages, errors, msgs_per_s, p50_ms, p99_ms.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        return Err("usage: js-pub URL SECS WINDOWS REPLICAS".into());
    }
    let url = &args[1];
    let secs: f64 = args[2].parse()?;
    let windows: Vec<usize> = args[3]
        .split(',')
        .map(|w| w.trim().parse())
        .collect::<Result<_, _>>()?;
    let replicas: usize = args[4].parse()?;

    let client = async_nats::connect(url.as_str()).await?;
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = js
            .get_or_create_stream(stream::Config {
                name: "BENCH".into(),
                subjects: vec!["bench.>".into()],
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await;
        match r {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("stream not created yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let payload: bytes::Bytes = (0..1024).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..20 {
        js.publish("bench.warm", payload.clone()).await?.await?;
    }

    for w in windows {
        let lat = Arc::new(Mutex::new(Vec::<f64>::new()));
        let errors = Arc::new(Mutex::new(0u64));
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(w);
        for _ in 0..w {
            let js = js.clone();
            let payload = payload.clone();
            let lat = lat.clone();
            let errors = errors.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::with_capacity(1 << 14);
                let mut errs = 0u64;
                while Instant::now() < end {
                    let s = Instant::now();
                    let ok = match js.publish("bench.x", payload.clone()).await {
                        Ok(ack) => ack.await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        mine.push(s.elapsed().as_secs_f64());
                    } else {
                        errs += 1;
                    }
                }
                if let Ok(mut l) = lat.lock() {
                    l.extend(mine);
                }
                if let Ok(mut e) = errors.lock() {
                    *e += errs;
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let el = t0.elapsed().as_secs_f64();
        let mut lat = lat.lock().map_err(|_| "poisoned")?.clone();
        lat.sort_by(|a, b| a.total_cmp(b));
        let q = |p: f64| {
            if lat.is_empty() {
                0.0
            } else {
                lat[((p * lat.len() as f64) as usize).min(lat.len() - 1)] * 1000.0
            }
        };
        let errors = *errors.lock().map_err(|_| "poisoned")?;
        println!(
            "{}",
            serde_json::json!({
                "inflight": w, "messages": lat.len(), "errors": errors,
                "msgs_per_s": lat.len() as f64 / el, "p50_ms": q(0.5), "p99_ms": q(0.99),
            })
        );
    }
    Ok(())
}
