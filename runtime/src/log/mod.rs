//! Log set-up: `tracing` to stderr, as text or one JSON object per line, through a
//! bounded, lossy batching writer so logging never blocks a request. Every line
//! carries the node's `region`.

mod batch;

use std::fmt;

pub use batch::{FLUSH_INTERVAL, FlushGuard, batch_writer};

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::registry::LookupSpan;

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let region = region.to_string();
    match format {
        LogFormat::Text => builder
            .event_format(WithRegion {
                inner: tracing_subscriber::fmt::format()
                    .with_ansi(false)
                    .with_target(true),
                region,
                json: false,
            })
            .init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(WithRegion {
                inner: tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_target(true),
                region,
                json: true,
            })
            .init(),
    }
    Ok(guard)
}

/// Adds `region` to every event the inner format writes.
struct WithRegion<F> {
    inner: F,
    region: String,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRegion<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.trim_end_matches('\n');
        match line.strip_prefix('{').filter(|_| self.json) {
            Some(rest) => {
                let region = serde_json::to_string(&self.region).map_err(|_| fmt::Error)?;
                writeln!(writer, "{{\"region\":{region},{rest}")
            }
            None => writeln!(writer, "{line} region={}", self.region),
        }
    }
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
