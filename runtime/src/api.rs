//! The admin API's wire types: what its routes send, and what the CLI's
//! client reads back. One definition for both sides, so they cannot drift.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Deployment;

/// `GET /v1/functions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionList {
    pub functions: Vec<FunctionState>,
}

/// One function as the node holds it; `loaded: false` for a function whose
/// files never loaded (then only `last_error` says more) and for one whose
/// first code is still compiling (then `starting` is true).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FunctionState {
    pub name: String,
    pub loaded: bool,
    /// Its code is compiling: its route answers 503 with `Retry-After` until then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starting: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default)]
    pub versions: Vec<VersionState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    /// Whether `deployment.toml` exists.
    #[serde(default)]
    pub pinned: bool,
    pub last_error: Option<LoadFailure>,
}

/// One `<label>.wasm` of a function; the figures only when it loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionState {
    pub label: String,
    pub loaded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The code it serves from: `baseline` (Winch, while the optimized
    /// compile runs) or `optimized` (Cranelift).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The handler's format: `wagi` or `wasi-http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Requests since the node started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Of those, answered 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
}

/// Why a function's last change did not load: the file at fault and what went wrong.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadFailure {
    pub path: String,
    pub message: String,
}

/// `PUT /v1/functions/{name}/versions/{label}`: the version now loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Uploaded {
    pub function: String,
    pub label: String,
    pub sha256: String,
    pub size: u64,
    pub state: Option<FunctionState>,
}

/// The deployment serving after a change, promote or rollback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentReply {
    pub deployment: Deployment,
}

/// `POST /v1/kv-reclaim/{node}`: the counters whose units went back to the pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReclaimReply {
    pub node: String,
    pub reclaimed: Vec<ReclaimedCounter>,
}

/// One counter given back by a reclaim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReclaimedCounter {
    pub store: String,
    pub key: String,
    pub units: i64,
}

/// `PUT /v1/kv/{store}/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub stored: usize,
}

/// `DELETE /v1/kv/{store}/{key}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: bool,
}

/// Every error the admin API answers with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

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

/// `PUT /v1/fleet/functions/{name}/versions/{label}`: the version pushed and
/// recorded in the desired state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetPushed {
    pub function: String,
    pub label: String,
    pub digest: String,
    pub size: u64,
    /// The desired state's revision after the change.
    pub revision: i64,
    pub deployment: Deployment,
}

/// A function taken out of the fleet (`DELETE /v1/fleet/functions/{name}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetRemoved {
    pub function: String,
    /// The desired state's revision after the delete.
    pub revision: i64,
}

/// A fleet deployment change, promote or rollback: what is desired now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetDeployment {
    pub deployment: Deployment,
    pub revision: i64,
}
