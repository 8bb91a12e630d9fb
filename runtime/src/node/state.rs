//! The node's shared state: what serves now, what it did, and the stores. The
//! request path reads it on every request; the control plane swaps the
//! snapshot and listens for failures; the admin API and the fleet's report
//! read it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;

use crate::node::snapshot::Snapshot;
use crate::store::Backend;
use crate::telemetry::Telemetry;

/// The node's state, below both the request path and the control plane.
pub struct NodeState {
    /// The routing table; replaced whole, never edited.
    snapshot: ArcSwap<Snapshot>,
    /// Counts what every request did.
    telemetry: Arc<Telemetry>,
    /// Woken by every failed request, so a failing canary is judged at once
    /// rather than at the next periodic check.
    failures: Arc<tokio::sync::Notify>,
    /// The key-value stores guests open.
    kv: Arc<dyn Backend>,
    /// Requests being served now, for the `max_inflight` admission check.
    inflight: Arc<AtomicUsize>,
    /// Responses streaming now (head sent, body not ended), for `max_streams`.
    streams: Arc<AtomicUsize>,
}

impl NodeState {
    /// A node serving `snapshot` over the stores `kv`.
    pub fn new(snapshot: Snapshot, telemetry: Arc<Telemetry>, kv: Arc<dyn Backend>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            telemetry,
            failures: Arc::default(),
            kv,
            inflight: Arc::default(),
            streams: Arc::default(),
        }
    }

    /// The current routing snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The current routing snapshot, borrowed for one request.
    pub fn snapshot_guard(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Replaces the routing snapshot. Requests already running keep the old one.
    pub fn swap(&self, snapshot: Arc<Snapshot>) {
        self.snapshot.store(snapshot);
    }

    /// The node's request telemetry.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Notified whenever a request fails with a 5xx.
    pub fn failures(&self) -> &Arc<tokio::sync::Notify> {
        &self.failures
    }

    /// The key-value backend.
    pub fn kv(&self) -> &Arc<dyn Backend> {
        &self.kv
    }

    /// The count of requests in flight, which the request path's admission
    /// raises and lowers.
    pub fn inflight_counter(&self) -> &Arc<AtomicUsize> {
        &self.inflight
    }

    /// The count of responses streaming now, which a stream raises when its
    /// head goes out and lowers when its body ends.
    pub fn streams_counter(&self) -> &Arc<AtomicUsize> {
        &self.streams
    }

    /// Responses streaming right now.
    pub fn streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    /// Requests being served right now.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }
}
