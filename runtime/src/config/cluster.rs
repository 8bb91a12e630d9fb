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
    /// OCI repository for fleet deploys, `host[:port]/path`: every module is
    /// pushed there, tagged `<function>.<label>` and pulled by digest. Empty:
    /// no fleet rollouts.
    pub registry: String,
    /// Talk to the registry over plain HTTP instead of HTTPS (a registry on
    /// loopback or a private network).
    pub registry_insecure: bool,
    /// A file holding `user:password` for the registry's basic auth; empty:
    /// anonymous.
    pub registry_credentials_file: std::path::PathBuf,
    /// Push what this node compiles to the registry, and take what a node
    /// with the same engine compiled instead of compiling it again. Compiled
    /// code is native code: turn this off unless the registry is trusted as
    /// much as the wedge binary.
    pub share_compiled: bool,
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
            registry_insecure: false,
            registry_credentials_file: std::path::PathBuf::new(),
            share_compiled: true,
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
    /// Whether this node takes part in fleet rollouts.
    pub fn fleet(&self) -> bool {
        !self.registry.is_empty() && !self.etcd.is_empty()
    }

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
        if !self.registry.is_empty() {
            let (host, path) = self
                .registry
                .split_once('/')
                .unwrap_or((&self.registry, ""));
            let path_ok = !path.is_empty()
                && path.split('/').all(|p| {
                    !p.is_empty()
                        && p.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                        })
                });
            let host_ok = !host.contains(['@', ' '])
                && match host.rsplit_once(':') {
                    Some((name, port)) => !name.is_empty() && port.parse::<u16>().is_ok(),
                    None => !host.is_empty(),
                };
            if !host_ok || !path_ok {
                return Some(format!(
                    "cluster.registry {:?} must be host[:port]/repository, the repository in lower case (e.g. \"registry.internal:5000/wedge\")",
                    self.registry
                ));
            }
            if self.etcd.is_empty() {
                return Some(
                    "cluster.registry needs cluster.etcd: the fleet's desired state lives in etcd"
                        .into(),
                );
            }
        }
        if self.timeout.0 < Duration::from_millis(10) {
            return Some("cluster.timeout is at least 10ms".into());
        }
        None
    }
}
