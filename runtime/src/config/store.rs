//! `[store]`: where the key-value stores live and how durable their writes are.

use std::collections::BTreeMap;
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
    /// `[store.escrow]`: stores whose counters each node sells from blocks it
    /// holds (etcd only).
    pub escrow: BTreeMap<String, EscrowConfig>,
}

/// One escrowed store: `"<store>" = { block = 50 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowConfig {
    /// Units a node takes from etcd at a time, per counter.
    pub block: u64,
    /// A node takes its next block in the background once it holds fewer
    /// units than this; default: half a block.
    #[serde(default)]
    pub refill_below: Option<u64>,
    /// A node that sold nothing from a counter for this long gives its units
    /// back to etcd; default 30s.
    #[serde(default = "default_idle_return")]
    pub idle_return: HumanDuration,
}

fn default_idle_return() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

impl EscrowConfig {
    /// Below how many held units the next block is taken.
    pub fn refill_at(&self) -> u64 {
        self.refill_below.unwrap_or(self.block / 2)
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sled,
            dir: "data".into(),
            durability: Durability::Sync,
            flush_interval: HumanDuration(Duration::from_millis(100)),
            escrow: BTreeMap::new(),
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
        if !self.escrow.is_empty() && self.backend != StoreBackend::Etcd {
            return Some("[store.escrow] needs store.backend = \"etcd\"".into());
        }
        for (name, escrow) in &self.escrow {
            if !crate::config::valid_name(name) {
                return Some(format!(
                    "store.escrow: {name:?} is not a store name (1-64 of A-Z a-z 0-9 - _ .)"
                ));
            }
            if escrow.block == 0 || escrow.block > 1 << 40 {
                return Some(format!("store.escrow.{name}.block must be 1 to 2^40"));
            }
            if escrow.refill_at() > escrow.block {
                return Some(format!(
                    "store.escrow.{name}.refill_below is at most the block"
                ));
            }
        }
        None
    }
}
