//! The node's state that both planes share: the request path reads it, the
//! control plane replaces it.
//!
//! - [`state`]: the routing snapshot in force, the node's telemetry, and the
//!   signal every failed request raises for the canary judge.
//! - [`snapshot`]: the immutable routing snapshot and prefix matching.
//! - [`function`]: a function as it serves: route, limits, deployment and
//!   compiled versions.

pub mod function;
pub mod snapshot;
pub mod state;

pub use state::NodeState;
