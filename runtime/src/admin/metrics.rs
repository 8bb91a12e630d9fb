//! `/metrics`: what the node knows, in Prometheus text format.

use crate::control::Control;
use crate::metrics::{CounterVec, Exposition};
use crate::registry::Version;
use crate::router::Snapshot;

/// Renders every metric.
pub fn render(control: &Control) -> String {
    let app = control.app();
    let snapshot = app.snapshot();
    let mut e = Exposition::default();
    e.family(
        "wedge_inflight_requests",
        "gauge",
        "Requests being served right now.",
    )
    .sample("wedge_inflight_requests", &[], app.inflight());
    per_function(
        &mut e,
        "wedge_module_swaps_total",
        "Snapshots swapped in that changed the function.",
        control.swaps(),
    );
    per_function(
        &mut e,
        "wedge_rollbacks_total",
        "Canaries rolled back automatically.",
        control.rollbacks(),
    );
    per_function(
        &mut e,
        "wedge_module_load_failures_total",
        "Changes to the function that failed to load.",
        control.registry().failure_count(),
    );
    per_version(
        &mut e,
        &snapshot,
        "wedge_version_requests_total",
        "Requests served, per version.",
        |v| v.stats.totals().0,
    );
    per_version(
        &mut e,
        &snapshot,
        "wedge_version_errors_total",
        "Requests answered with a 5xx (traps and timeouts included), per version.",
        |v| v.stats.totals().1,
    );
    e.finish()
}

fn per_version(
    e: &mut Exposition,
    snapshot: &Snapshot,
    name: &str,
    help: &str,
    value: impl Fn(&Version) -> u64,
) {
    e.family(name, "counter", help);
    for f in snapshot.functions() {
        for v in f.versions.values() {
            e.sample(
                name,
                &[("function", &f.name), ("version", &v.label)],
                value(v),
            );
        }
    }
}

fn per_function(e: &mut Exposition, name: &str, help: &str, counter: &CounterVec) {
    e.family(name, "counter", help);
    for (function, n) in counter.values() {
        e.sample(name, &[("function", &function)], n);
    }
}
