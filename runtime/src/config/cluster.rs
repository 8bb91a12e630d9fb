//! `[cluster]`: the fleet a node belongs to, through etcd.

use std::time::Duration;

use serde::Deserialize;

use super::HumanDuration;

/// `[cluster]`: this node's name and the etcd cluster it shares state through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name, unique in the fleet; default: the host name.
    pub node: String,
    /// etcd client endpoints, e.g. `["http://10.0.0.5:2379"]`; empty: a single node.
    pub etcd: Vec<String>,
    /// Every key wedge writes in etcd lives under this prefix.
    pub prefix: String,
    /// OCI repository for fleet deploys.
    pub registry: String,
    /// How long one store call may wait on etcd, retries included, before it
    /// fails with `io`.
    pub timeout: HumanDuration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node: host_name(),
            etcd: Vec::new(),
            prefix: "/wedge".into(),
            registry: String::new(),
            timeout: HumanDuration(Duration::from_secs(2)),
        }
    }
}

/// The kernel's host name, as a valid node name; `wedge` when there is none.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| valid_node(h))
        .unwrap_or_else(|| "wedge".into())
}

/// Node names are 1-64 of `A-Z a-z 0-9 - _ .`: they become etcd key segments
/// and metric labels.
pub fn valid_node(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != ".."
}

impl ClusterConfig {
    /// What is wrong with these settings, if anything.
    pub(crate) fn problem(&self) -> Option<String> {
        if !valid_node(&self.node) {
            return Some(format!(
                "cluster.node {:?} must be 1-64 of A-Z a-z 0-9 - _ .",
                self.node
            ));
        }
        if let Some(bad) = self.etcd.iter().find(|e| !e.starts_with("http://")) {
            return Some(format!(
                "cluster.etcd endpoint {bad:?} must be http://host:port (TLS to etcd is not supported yet)"
            ));
        }
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') || self.prefix.len() > 128 {
            return Some(format!(
                "cluster.prefix {:?} must start with / and not end with one",
                self.prefix
            ));
        }
        if self.timeout.0 < Duration::from_millis(10) {
            return Some("cluster.timeout is at least 10ms".into());
        }
        None
    }
}
