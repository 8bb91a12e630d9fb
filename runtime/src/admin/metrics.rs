//! `/metrics`: what the node knows, in Prometheus text format.

use crate::control::Control;
use crate::telemetry::metrics::{CounterVec, Exposition};

/// Renders every metric.
pub fn render(control: &Control) -> String {
    let node = control.node();
    let mut e = Exposition::default();
    e.family(
        "wedge_inflight_requests",
        "gauge",
        "Requests being served right now.",
    )
    .sample("wedge_inflight_requests", &[], node.inflight());
    let connections = &node.telemetry().connections;
    e.family(
        "wedge_open_connections",
        "gauge",
        "Client connections open on the public listener.",
    )
    .sample("wedge_open_connections", &[], connections.open());
    e.family(
        "wedge_connections_closed_total",
        "counter",
        "Client connections wedge closed itself, by reason.",
    );
    for (reason, n) in connections.closed_counts() {
        e.sample(
            "wedge_connections_closed_total",
            &[("reason", reason.as_str())],
            n,
        );
    }
    let store = node.kv().health();
    e.family(
        "wedge_store_ready",
        "gauge",
        "1 when the key-value store takes writes, 0 while it recovers from a storage error.",
    )
    .sample("wedge_store_ready", &[], u8::from(store.ready()));
    e.family(
        "wedge_store_errors_total",
        "counter",
        "Storage errors of the key-value store (failed reads, writes and flushes).",
    )
    .sample("wedge_store_errors_total", &[], store.errors());
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
        control.catalogue().failure_count(),
    );
    let telemetry = node.telemetry();
    let versions = telemetry.versions();
    e.family(
        "wedge_requests_total",
        "counter",
        "Requests answered, by function, version and status.",
    );
    for ((function, version), stats) in &versions {
        for (status, n) in stats.statuses() {
            let status = status.to_string();
            e.sample(
                "wedge_requests_total",
                &[
                    ("function", function),
                    ("version", version),
                    ("status", &status),
                ],
                n,
            );
        }
    }
    for (status, n) in telemetry.unrouted().seen() {
        let status = status.to_string();
        e.sample(
            "wedge_requests_total",
            &[("function", ""), ("version", ""), ("status", &status)],
            n,
        );
    }
    e.family(
        "wedge_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its response.",
    );
    for ((function, version), stats) in &versions {
        stats.duration.render(
            &mut e,
            "wedge_request_duration_seconds",
            &[("function", function), ("version", version)],
        );
    }
    e.family(
        "wedge_instantiate_duration_seconds",
        "histogram",
        "Time to create a request's instance.",
    );
    for (function, histogram) in telemetry.instantiate() {
        histogram.render(
            &mut e,
            "wedge_instantiate_duration_seconds",
            &[("function", &function)],
        );
    }
    e.family(
        "wedge_guest_traps_total",
        "counter",
        "Guests that failed: trapped, timed out, hit the memory cap, or exited non-zero without a response.",
    );
    for ((function, version), stats) in &versions {
        for (kind, n) in stats.traps() {
            e.sample(
                "wedge_guest_traps_total",
                &[
                    ("function", function),
                    ("version", version),
                    ("kind", kind.as_str()),
                ],
                n,
            );
        }
    }
    e.family(
        "wedge_streams_open",
        "gauge",
        "Streamed responses whose head went out and whose body has not ended.",
    )
    .sample("wedge_streams_open", &[], node.streams() as u64);
    e.family(
        "wedge_stream_cuts_total",
        "counter",
        "Streamed responses aborted after their head, by function and cause (trap, timeout, memory, exit, max_response, stream_idle, max_stream, unfinished, overloaded).",
    );
    for ((function, cause), n) in telemetry.stream_cuts() {
        e.sample(
            "wedge_stream_cuts_total",
            &[("function", &function), ("cause", cause)],
            n,
        );
    }
    e.family(
        "wedge_kv_operations_total",
        "counter",
        "Key-value operations by store, operation and result.",
    );
    for ((store, op, result), n) in telemetry.kv() {
        e.sample(
            "wedge_kv_operations_total",
            &[("store", &store), ("op", op), ("result", result)],
            n,
        );
    }
    e.family(
        "wedge_outbound_requests_total",
        "counter",
        "Outbound HTTP calls by function, origin (the outbound entry that allowed them) and status (HTTP status, or denied, timeout, connect, tls, too_large, invalid, busy, io).",
    );
    for ((function, origin, status), n) in telemetry.outbound() {
        e.sample(
            "wedge_outbound_requests_total",
            &[
                ("function", &function),
                ("origin", &origin),
                ("status", &status),
            ],
            n,
        );
    }
    e.family(
        "wedge_outbound_request_duration_seconds",
        "histogram",
        "Outbound HTTP calls: time from sending to the response head.",
    );
    for ((function, origin), histogram) in telemetry.outbound_time() {
        histogram.render(
            &mut e,
            "wedge_outbound_request_duration_seconds",
            &[("function", &function), ("origin", &origin)],
        );
    }
    e.finish()
}

fn per_function(e: &mut Exposition, name: &str, help: &str, counter: &CounterVec) {
    e.family(name, "counter", help);
    for (function, n) in counter.values() {
        e.sample(name, &[("function", &function)], n);
    }
}
