//! Log set-up: `tracing` to stderr, as text or one JSON object per line, through a
//! bounded, lossy batching writer so logging never blocks a request. Every line
//! carries the node's `region`.

mod batch;
mod format;

pub use batch::{FLUSH_INTERVAL, FlushGuard, batch_writer};
use format::LineFormat;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The filter directives: `RUST_LOG`, or `info`. WASI's host calls open an
/// info-level span each, which would cost every request more than the guest
/// itself, so they are off unless `RUST_LOG` names `wasmtime_wasi` itself.
fn directives(rust_log: Option<&str>) -> String {
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    if base.contains("wasmtime_wasi") {
        base.to_string()
    } else {
        format!("{base},wasmtime_wasi=warn")
    }
}

/// Installs the global subscriber. Keep the guard alive until exit: dropping it
/// writes what is buffered. `RUST_LOG` overrides the default `info` level.
pub fn init(format: LogFormat, region: &str) -> std::io::Result<FlushGuard> {
    let (writer, guard) = batch_writer(std::io::stderr())?;
    let filter = EnvFilter::new(directives(std::env::var("RUST_LOG").ok().as_deref()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .event_format(LineFormat {
            json: format == LogFormat::Json,
            region: region.to_string(),
        })
        .init();
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn wasi_spans_are_off_unless_asked_for() {
        assert_eq!(directives(None), "info,wasmtime_wasi=warn");
        assert_eq!(directives(Some("debug")), "debug,wasmtime_wasi=warn");
        assert_eq!(
            directives(Some("wasmtime_wasi=trace")),
            "wasmtime_wasi=trace"
        );
    }
}
