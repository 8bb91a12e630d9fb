//! The fleet's desired state: one etcd key per function,
//! `<prefix>/fleet/functions/<name>`, holding JSON. It names every version
//! by the digest of its module, the deployment (stable, canary, share), the
//! text of `function.toml` (route, limits, sticky key, rollback and promote
//! policy), and when the current split began. Every change is a transaction
//! that compares the key's revision, so a deploy and the judge's rollback
//! never overwrite each other.

use std::collections::BTreeMap;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use crate::config::Deployment;

/// Versions a function keeps in its desired state beyond those its
/// deployment names, newest first, so a rollback has somewhere to go.
pub const KEPT_VERSIONS: usize = 8;

/// One function's desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// `function.toml`; empty for the defaults.
    #[serde(default)]
    pub function_toml: String,
    /// Each version's module, by label.
    pub versions: BTreeMap<String, Module>,
    /// Which versions take traffic.
    pub deployment: Deployment,
    /// When the current stable, canary and share took effect, in milliseconds
    /// since the epoch: the canary's clock for `promote_after`, the same on
    /// every node.
    pub since_ms: u64,
    /// Who made the last change, and why.
    #[serde(default)]
    pub reason: String,
}

/// A version's module in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// `sha256:<hex>` of the module's bytes; also its layer's digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was pushed, in milliseconds since the epoch.
    #[serde(default)]
    pub pushed_ms: u64,
}

impl Desired {
    /// Drops the oldest versions the deployment does not name, beyond
    /// [`KEPT_VERSIONS`].
    pub fn prune(&mut self) {
        let named: Vec<&String> = std::iter::once(&self.deployment.stable)
            .chain(&self.deployment.canary)
            .chain(&self.deployment.previous_stable)
            .collect();
        let mut spare: Vec<(u64, String)> = self
            .versions
            .iter()
            .filter(|(label, _)| !named.contains(label))
            .map(|(label, m)| (m.pushed_ms, label.clone()))
            .collect();
        spare.sort_unstable_by(|a, b| b.cmp(a));
        for (_, label) in spare.into_iter().skip(KEPT_VERSIONS) {
            self.versions.remove(&label);
        }
    }
}

/// Where desired states live.
pub fn functions_prefix(prefix: &str) -> String {
    format!("{prefix}/fleet/functions/")
}

/// The key of function `name`'s desired state.
pub fn key(prefix: &str, name: &str) -> String {
    format!("{}{name}", functions_prefix(prefix))
}

/// A desired state and the revision it was read at (0: none yet).
pub type Read = (Option<Desired>, i64);

/// Why a change of the desired state failed.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// etcd could not be reached or refused.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// What etcd holds is not a desired state this wedge reads.
    #[error("the desired state of `{0}` in etcd is not valid JSON: {1}")]
    Corrupt(String, String),
    /// Someone else changed it meanwhile, again and again.
    #[error("the desired state of `{0}` kept changing under this change; try again")]
    Contended(String),
    /// The change itself was refused.
    #[error("{0}")]
    Refused(String),
    /// The fleet has no function of this name.
    #[error("no function `{0}` in the fleet")]
    Missing(String),
}

/// Reads function `name`'s desired state.
pub async fn read(client: &Client, prefix: &str, name: &str) -> Result<Read, DesiredError> {
    let mut kv = client.kv_client();
    let got = kv.get(key(prefix, name), None).await?;
    match got.kvs().first() {
        None => Ok((None, 0)),
        Some(kv) => {
            let desired = serde_json::from_slice(kv.value())
                .map_err(|e| DesiredError::Corrupt(name.into(), e.to_string()))?;
            Ok((Some(desired), kv.mod_revision()))
        }
    }
}

/// Every function's desired state, and the revision of the read.
pub async fn read_all(
    client: &Client,
    prefix: &str,
) -> Result<(BTreeMap<String, (Desired, i64)>, i64), DesiredError> {
    let mut kv = client.kv_client();
    let start = functions_prefix(prefix);
    let got = kv
        .get(start.clone(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = got.header().map_or(0, |h| h.revision());
    let mut all = BTreeMap::new();
    for kv in got.kvs() {
        let name = String::from_utf8_lossy(&kv.key()[start.len()..]).into_owned();
        match serde_json::from_slice(kv.value()) {
            Ok(desired) => {
                all.insert(name, (desired, kv.mod_revision()));
            }
            Err(e) => tracing::error!(
                target: "wedge::fleet",
                function = %name,
                "ignoring a desired state that is not valid JSON: {e}"
            ),
        }
    }
    Ok((all, revision))
}

/// Changes function `name`'s desired state with `change`, which sees the
/// current one (if any) and may refuse; retried while others change it
/// meanwhile. Returns what was written and its revision.
pub async fn update(
    client: &Client,
    prefix: &str,
    name: &str,
    mut change: impl FnMut(Option<Desired>) -> Result<Desired, DesiredError>,
) -> Result<(Desired, i64), DesiredError> {
    for _ in 0..16 {
        let (current, revision) = read(client, prefix, name).await?;
        let mut next = change(current)?;
        next.prune();
        let text = serde_json::to_vec(&next).expect("a desired state serializes");
        let k = key(prefix, name);
        let txn = Txn::new()
            .when([Compare::mod_revision(k.clone(), CompareOp::Equal, revision)])
            .and_then([TxnOp::put(k, text, None)]);
        let done = client.kv_client().txn(txn).await?;
        if done.succeeded() {
            let written = done.header().map_or(0, |h| h.revision());
            return Ok((next, written));
        }
    }
    Err(DesiredError::Contended(name.into()))
}

/// Deletes function `name`'s desired state; every node then removes the
/// function. Returns the revision of the delete.
pub async fn delete(client: &Client, prefix: &str, name: &str) -> Result<i64, DesiredError> {
    let deleted = client.kv_client().delete(key(prefix, name), None).await?;
    match deleted.deleted() {
        0 => Err(DesiredError::Missing(name.into())),
        _ => Ok(deleted.header().map_or(0, |h| h.revision())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(pushed_ms: u64) -> Module {
        Module {
            digest: format!("sha256:{pushed_ms}"),
            size: 1,
            pushed_ms,
        }
    }

    #[test]
    fn pruning_keeps_what_the_deployment_names_and_the_newest() {
        let mut d = Desired {
            function_toml: String::new(),
            versions: (1..=20).map(|i| (format!("v{i}"), module(i))).collect(),
            deployment: Deployment {
                stable: "v1".into(),
                canary: Some("v2".into()),
                canary_percent: 10,
                previous_stable: None,
            },
            since_ms: 0,
            reason: String::new(),
        };
        d.prune();
        assert_eq!(d.versions.len(), 2 + KEPT_VERSIONS);
        assert!(d.versions.contains_key("v1") && d.versions.contains_key("v2"));
        assert!(d.versions.contains_key("v20") && !d.versions.contains_key("v3"));
    }
}
