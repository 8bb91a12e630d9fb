//! `[store]`: where the key-value stores live and how durable their writes are.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ClusterConfig, HumanDuration};

/// How durable a key-value write is before the guest sees success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// On disk before the guest sees success.
    Sync,
    /// Flushed every `flush_interval`.
    Periodic,
}

/// Which engine holds the key-value stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// Embedded sled under `store.dir`: this node only, nothing to run.
    #[default]
    Sled,
    /// The cluster's etcd (`[cluster] etcd`): every node sees the same values.
    Etcd,
}

/// `[store]`: the key-value stores, the compiled-module cache and wedge's own state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Which engine holds the key-value stores.
    pub backend: StoreBackend,
    /// Directory for all durable state on this node; relative paths are
    /// relative to `wedge.toml`.
    pub dir: PathBuf,
    /// When a write counts as done.
    pub durability: Durability,
    /// Flush period for `durability = "periodic"`.
    pub flush_interval: HumanDuration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sled,
            dir: "data".into(),
            durability: Durability::Sync,
            flush_interval: HumanDuration(Duration::from_millis(100)),
        }
    }
}

impl StoreConfig {
    /// What is wrong with these settings, if anything.
    pub(crate) fn problem(&self, cluster: &ClusterConfig) -> Option<String> {
        if self.backend == StoreBackend::Etcd && cluster.etcd.is_empty() {
            return Some(
                "store.backend = \"etcd\" needs the etcd endpoints in [cluster] etcd".into(),
            );
        }
        None
    }
}
