//! Log output: installs the `tracing` subscriber for the `raftmq` binary.
//!
//! Only the binary calls [`init`]; library code just emits `tracing` events. The default filter
//! is `info,openraft=warn` because openraft's debug/info spans are very chatty; `RUST_LOG`
//! replaces it entirely (e.g. `RUST_LOG=info,openraft=info` when debugging elections).

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info,openraft=warn";

/// Builds the filter from `RUST_LOG`, falling back to [`DEFAULT_FILTER`]. An unparsable
/// `RUST_LOG` falls back too (and says so on stderr), rather than silencing all logs.
pub fn filter_from_env() -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(f) => f,
            Err(err) => {
                eprintln!(
                    "RUST_LOG={spec:?} is not a valid filter ({err}); using {DEFAULT_FILTER:?}"
                );
                EnvFilter::new(DEFAULT_FILTER)
            }
        },
        _ => EnvFilter::new(DEFAULT_FILTER),
    }
}

/// Installs a formatting subscriber writing to stderr. Calling it twice is harmless (the second
/// call is ignored), so tests and the binary can both call it.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter_from_env())
        .with_writer(std::io::stderr)
        .with_target(true)
        .try_init();
}
