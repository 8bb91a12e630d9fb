//! The admin API's wire types: what its routes send, and what the CLI's
//! client reads back. One definition for both sides, so they cannot drift.

use serde::{Deserialize, Serialize};

use crate::config::Deployment;

pub use crate::control::fleet::wire::{
    FleetFunction, FleetState, Lag, NodeFunction, NodeReport, NodeVersion,
};

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
