//! What requests did, kept per function and version across reloads: counts by
//! status, latency and instantiation histograms, traps by kind, the sliding
//! error window the rollout judges canaries by, and key-value operations.
//!
//! - [`metrics`]: the metric types (counters, histograms) and their
//!   Prometheus text.
//! - [`log`]: the node's log: set-up, format, and the batched writer.

pub mod log;
pub mod metrics;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::telemetry::metrics::{CounterVec, Histogram};

/// How a guest failed, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// A wasm trap: unreachable, out-of-bounds access, stack overflow...
    Trap,
    /// The request's time ran out.
    Timeout,
    /// The guest went over its memory cap.
    Memory,
    /// The guest exited non-zero without a response.
    Exit,
}

impl TrapKind {
    /// Every kind, in the order of their discriminants.
    pub const ALL: [TrapKind; 4] = [Self::Trap, Self::Timeout, Self::Memory, Self::Exit];

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::Memory => "memory",
            Self::Exit => "exit",
        }
    }
}

/// A function and the `outbound` entry one of its calls went through.
pub type FunctionOrigin = (String, Arc<str>);

/// All the node's request telemetry.
#[derive(Default)]
pub struct Telemetry {
    /// Per `(function, version)`, created on first use and never dropped, so
    /// counters stay monotonic across reloads.
    versions: Mutex<BTreeMap<(String, String), Arc<VersionStats>>>,
    /// Instantiation time per function, shared by its versions.
    instantiate: Mutex<BTreeMap<String, Arc<Histogram>>>,
    /// Requests no function served (no route, refused before routing).
    unrouted: StatusCounts,
    /// Key-value operations by store, operation and result.
    kv: CounterVec<(String, &'static str, &'static str)>,
    /// Outbound calls by function, origin (the `outbound` entry that allowed
    /// it, so the operator's words, never the guest's) and status (an HTTP
    /// status or an error's name).
    outbound: CounterVec<(String, Arc<str>, String)>,
    /// Outbound call time to the response head, by function and origin.
    outbound_time: Mutex<BTreeMap<FunctionOrigin, Arc<Histogram>>>,
    /// Streamed responses cut short, by function and cause.
    stream_cuts: CounterVec<(String, &'static str)>,
    /// Client connections: open now, and closed by wedge, by reason.
    pub connections: Arc<Connections>,
}

impl Telemetry {
    /// The statistics of `function`'s version `label`.
    pub fn version(&self, function: &str, label: &str) -> Arc<VersionStats> {
        let instantiate = self
            .instantiate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(function.to_string())
            .or_default()
            .clone();
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((function.to_string(), label.to_string()))
            .or_insert_with(|| {
                Arc::new(VersionStats {
                    instantiate,
                    ..VersionStats::default()
                })
            })
            .clone()
    }

    /// Instantiation time per function.
    pub fn instantiate(&self) -> Vec<(String, Arc<Histogram>)> {
        self.instantiate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every version seen since start.
    pub fn versions(&self) -> Vec<((String, String), Arc<VersionStats>)> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Counts a request no function served.
    pub fn record_unrouted(&self, status: u16) {
        self.unrouted.add(status);
    }

    /// Requests no function served, by status.
    pub fn unrouted(&self) -> &StatusCounts {
        &self.unrouted
    }

    /// Counts a key-value operation.
    pub fn record_kv(&self, store: &str, op: &'static str, result: &'static str) {
        self.kv.add((store.to_string(), op, result));
    }

    /// Counts an outbound call of `function` allowed by `origin`.
    pub fn record_outbound(
        &self,
        function: &str,
        origin: &Arc<str>,
        status: String,
        took: Duration,
    ) {
        self.outbound
            .add((function.to_string(), origin.clone(), status));
        let histogram = self
            .outbound_time
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((function.to_string(), origin.clone()))
            .or_default()
            .clone();
        histogram.observe(took);
    }

    /// Outbound calls by function, origin and status.
    pub fn outbound(&self) -> BTreeMap<(String, Arc<str>, String), u64> {
        self.outbound.values()
    }

    /// Outbound call time by function and origin.
    pub fn outbound_time(&self) -> Vec<(FunctionOrigin, Arc<Histogram>)> {
        self.outbound_time
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Counts a streamed response of `function` cut short by `cause`.
    pub fn record_cut(&self, function: &str, cause: &'static str) {
        self.stream_cuts.add((function.to_string(), cause));
    }

    /// Streamed responses cut short, by function and cause.
    pub fn stream_cuts(&self) -> BTreeMap<(String, &'static str), u64> {
        self.stream_cuts.values()
    }

    /// Key-value operations by store, operation and result.
    pub fn kv(&self) -> BTreeMap<(String, &'static str, &'static str), u64> {
        self.kv.values()
    }
}

/// Why wedge closed a client connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No request in flight for `idle_timeout`.
    Idle,
    /// A request head (or the TLS handshake) did not arrive within `header_read_timeout`.
    HeaderTimeout,
    /// The client accepted no response bytes for `write_timeout`.
    WriteTimeout,
    /// Its address already had `per_ip.max_connections` open.
    PerIpLimit,
    /// The TLS handshake failed.
    Tls,
}

impl CloseReason {
    /// Every reason, in the order of their discriminants.
    pub const ALL: [CloseReason; 5] = [
        Self::Idle,
        Self::HeaderTimeout,
        Self::WriteTimeout,
        Self::PerIpLimit,
        Self::Tls,
    ];

    /// The label in `wedge_connections_closed_total` and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::HeaderTimeout => "header_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::PerIpLimit => "per_ip_limit",
            Self::Tls => "tls_handshake",
        }
    }
}

/// Client connections, lock-free.
#[derive(Debug, Default)]
pub struct Connections {
    open: AtomicU64,
    closed: [AtomicU64; CloseReason::ALL.len()],
}

impl Connections {
    /// Counts a connection as open until the guard drops.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// Counts a connection wedge closed.
    pub fn closed(&self, reason: CloseReason) {
        self.closed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections wedge closed, by reason.
    pub fn closed_counts(&self) -> [(CloseReason, u64); CloseReason::ALL.len()] {
        CloseReason::ALL.map(|r| (r, self.closed[r as usize].load(Ordering::Relaxed)))
    }
}

/// One open connection; counted until dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<Connections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A counter per HTTP status, lock-free.
pub struct StatusCounts {
    counts: Box<[AtomicU64]>,
}

impl Default for StatusCounts {
    fn default() -> Self {
        Self {
            counts: (100..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl StatusCounts {
    fn add(&self, status: u16) {
        if let Some(c) = status
            .checked_sub(100)
            .and_then(|i| self.counts.get(usize::from(i)))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Statuses with their counts, the ones seen only.
    pub fn seen(&self) -> Vec<(u16, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((i as u16 + 100, n))
            })
            .collect()
    }
}

/// Seconds since the process started, the clock of the error windows.
fn now_secs() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

/// Longest error window kept, in one-second buckets.
const MAX_WINDOW_SECS: u64 = 3600;

/// Everything counted about one version.
#[derive(Default)]
pub struct VersionStats {
    requests: AtomicU64,
    errors: AtomicU64,
    statuses: StatusCounts,
    /// Whole-request latency.
    pub duration: Histogram,
    /// Time to create the instance; the function's histogram.
    pub instantiate: Arc<Histogram>,
    /// Traps by kind: trap, timeout, memory, exit.
    traps: [AtomicU64; 4],
    /// `(second, requests, errors)`, oldest first.
    window: Mutex<VecDeque<(u64, u64, u64)>>,
}

/// What one request came to, as counted.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// The status sent.
    pub status: u16,
    /// Time from the request's arrival to its response.
    pub total: Duration,
    /// Time to create the instance, when one was created.
    pub instantiate: Option<Duration>,
    /// How the guest failed, if it did.
    pub trap: Option<TrapKind>,
    /// A streamed response the function's run cut short after its head (a
    /// trap, an exit, a stream limit): an error whatever the status said.
    pub cut: bool,
}

impl VersionStats {
    /// Counts one request. 5xx statuses (traps and timeouts among them) are errors.
    pub fn record(&self, outcome: Outcome) {
        let error = outcome.status >= 500 || outcome.cut;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.statuses.add(outcome.status);
        self.duration.observe(outcome.total);
        if let Some(d) = outcome.instantiate {
            self.instantiate.observe(d);
        }
        if let Some(kind) = outcome.trap {
            self.traps[kind as usize].fetch_add(1, Ordering::Relaxed);
        }
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let now = now_secs();
        let mut window = self.window.lock().unwrap_or_else(|p| p.into_inner());
        match window.back_mut() {
            Some(last) if last.0 == now => {
                last.1 += 1;
                last.2 += u64::from(error);
            }
            _ => window.push_back((now, 1, u64::from(error))),
        }
        while window.front().is_some_and(|f| f.0 + MAX_WINDOW_SECS < now) {
            window.pop_front();
        }
    }

    /// Requests and errors since the process started.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// Requests by status.
    pub fn statuses(&self) -> Vec<(u16, u64)> {
        self.statuses.seen()
    }

    /// Traps of each kind.
    pub fn traps(&self) -> [(TrapKind, u64); 4] {
        TrapKind::ALL.map(|k| (k, self.traps[k as usize].load(Ordering::Relaxed)))
    }

    /// Requests and errors over the last `window`.
    pub fn recent(&self, window: Duration) -> (u64, u64) {
        let (now, span) = (now_secs(), window.as_secs().max(1));
        let buckets = self.window.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .iter()
            .filter(|b| b.0 + span > now)
            .fold((0, 0), |(r, e), b| (r + b.1, e + b.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, trap: Option<TrapKind>) -> Outcome {
        Outcome {
            status,
            total: Duration::from_micros(30),
            instantiate: Some(Duration::from_micros(8)),
            trap,
            cut: false,
        }
    }

    #[test]
    fn versions_count_statuses_traps_and_windows() {
        let s = VersionStats::default();
        s.record(outcome(200, None));
        s.record(outcome(500, Some(TrapKind::Trap)));
        s.record(outcome(504, Some(TrapKind::Timeout)));
        assert_eq!(s.totals(), (3, 2));
        assert_eq!(s.recent(Duration::from_secs(60)), (3, 2));
        assert_eq!(s.statuses(), [(200, 1), (500, 1), (504, 1)]);
        assert_eq!(s.traps()[0], (TrapKind::Trap, 1));
        assert_eq!(s.traps()[1], (TrapKind::Timeout, 1));
    }

    #[test]
    fn version_stats_outlive_reloads() {
        let t = Telemetry::default();
        t.version("f", "v1").record(outcome(200, None));
        assert_eq!(t.version("f", "v1").totals(), (1, 0));
    }
}
