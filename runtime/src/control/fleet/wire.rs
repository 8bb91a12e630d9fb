//! The fleet's records as every node sees them: each node's report, kept in
//! etcd under a lease, and the fleet's state as `GET /v1/fleet` serves it
//! (and [`crate::admin::api`] re-exports for the client).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Deployment;

/// What one node reports to the fleet every second (under a lease, so a dead
/// node's report disappears), and what `GET /v1/fleet` lists per node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: String,
    pub region: String,
    /// When it was written, in milliseconds since the epoch.
    pub at_ms: u64,
    /// Every fleet function the node serves or should.
    pub functions: BTreeMap<String, NodeFunction>,
}

/// One fleet function on one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeFunction {
    /// What the node serves; `None` when the function does not serve yet.
    pub deployment: Option<Deployment>,
    /// The etcd revision of the newest desired state the node has seen, and
    /// of the one it applied.
    pub desired_revision: i64,
    pub applied_revision: i64,
    /// Since when (milliseconds since the epoch) the node trails the
    /// desired state it has seen.
    pub behind_since_ms: Option<u64>,
    /// Why the node could not apply the desired state, if it could not.
    pub error: Option<String>,
    /// Each version's figures on this node.
    pub versions: BTreeMap<String, NodeVersion>,
}

/// One version's figures on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeVersion {
    /// Since the node started.
    pub requests: u64,
    pub errors: u64,
    /// Over the last `window_secs` (the function's `auto_rollback` window):
    /// what the fleet's canary judge adds up.
    pub window_requests: u64,
    pub window_errors: u64,
    pub window_secs: u64,
    /// Latency percentiles, as the upper bound of their histogram bucket.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// `GET /v1/fleet`: the desired state, every node's report, and who lags.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetState {
    /// The node that answered.
    pub node: String,
    /// The node elected to judge the fleet's canaries, if one is.
    pub judge: Option<String>,
    /// Each fleet function's desired state.
    pub desired: BTreeMap<String, FleetFunction>,
    /// Every live node's last report, by node name.
    pub nodes: BTreeMap<String, NodeReport>,
    /// Nodes that do not serve a function's desired state yet.
    pub lagging: Vec<Lag>,
}

/// One function's desired state, as `GET /v1/fleet` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetFunction {
    pub revision: i64,
    pub deployment: Deployment,
    /// Each version's module digest, by label.
    pub versions: BTreeMap<String, String>,
    /// When the current split began, in milliseconds since the epoch.
    pub since_ms: u64,
    /// Who made the last change, and why.
    pub reason: String,
}

/// A node behind a function's desired state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lag {
    pub node: String,
    pub function: String,
    /// The revision it applied, against the desired one.
    pub applied_revision: i64,
    pub desired_revision: i64,
    /// Since when, in milliseconds since the epoch; `None` when the node has
    /// not seen the desired revision yet.
    pub since_ms: Option<u64>,
    pub error: Option<String>,
}
