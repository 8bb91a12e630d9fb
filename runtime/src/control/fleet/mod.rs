//! Fleet rollouts (`[cluster] registry` with `etcd`): the desired deployment
//! of each function lives in etcd and its modules in an OCI registry; every
//! node follows the desired state into its own functions directory.
//!
//! - [`desired`]: the desired state in etcd, changed by compare-and-swap.
//! - [`oci`]: the modules in the registry, pushed once and pulled by digest.
//! - [`apply`]: a desired state made real in the functions directory.
//! - [`report`]: each node's report of what it serves, under a lease.
//! - [`judge`]: the elected node that judges canaries on the fleet's totals.
//! - [`wire`]: the reports and the fleet's state as etcd keeps them and
//!   `/v1/fleet` serves them.
//!
//! A node lists the desired states, applies those its directory does not
//! hold yet, and then watches etcd for changes from the revision it listed
//! at. Each function it applies goes to the control loop as a
//! [`Change::Fleet`], and swaps as a file change would. A function whose
//! modules cannot be pulled yet keeps serving what it served and is tried
//! again every few seconds; a lost watch lists again.

pub mod apply;
pub mod desired;
pub mod judge;
pub mod oci;
pub mod report;
pub mod wire;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, WatchOptions};

use crate::config::{ClusterConfig, Deployment};
use crate::control::source::{Change, Sender};
pub(crate) use crate::util::clock::now_ms;
use desired::{Desired, DesiredError, Module};
use oci::{OciError, Registry};

/// How often functions whose desired state could not be applied are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// The longest pause before listing again after the watch was lost.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Why a fleet operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The desired state could not be read or changed.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] OciError),
    /// etcd could not be reached.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// How far this node is from a function's desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The revision of the newest desired state seen.
    pub desired: i64,
    /// The revision applied to the functions directory.
    pub applied: i64,
    /// Since when, in milliseconds since the epoch, `applied` trails `desired`.
    pub behind_since_ms: Option<u64>,
    /// Why the last try to apply failed.
    pub error: Option<String>,
}

/// A node's part in fleet rollouts.
pub struct Fleet {
    client: Client,
    prefix: String,
    node: String,
    registry: Registry,
    functions: PathBuf,
    changes: Sender,
    /// Per function: how far this node is behind. Keyed by the functions in
    /// etcd's desired state, which operators write.
    progress: Mutex<BTreeMap<String, Progress>>,
}

impl Fleet {
    /// Connects to the cluster's etcd and registry. etcd need not be up: the
    /// node serves what its functions directory holds meanwhile.
    pub async fn connect(
        cluster: &ClusterConfig,
        functions: PathBuf,
        changes: Sender,
    ) -> Result<Arc<Self>, FleetError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(cluster.timeout.0.max(Duration::from_secs(2)))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        let client = Client::connect(&cluster.etcd, Some(options)).await?;
        Ok(Arc::new(Self {
            client,
            prefix: cluster.prefix.clone(),
            node: cluster.node.clone(),
            registry: Registry::new(cluster)?,
            functions,
            changes,
            progress: Mutex::new(BTreeMap::new()),
        }))
    }

    /// This node's progress toward each function's desired state.
    pub fn progress(&self) -> BTreeMap<String, Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Follows the desired state until the task is dropped.
    pub async fn follow_forever(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.follow().await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(target: "wedge::fleet", "following the desired state: {e}; serving the last state");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Lists, applies, then watches until the watch ends.
    async fn follow(&self) -> Result<(), FleetError> {
        let (all, revision) = desired::read_all(&self.client, &self.prefix).await?;
        let local = {
            let functions = self.functions.clone();
            tokio::task::spawn_blocking(move || apply::fleet_functions(&functions))
                .await
                .unwrap_or_default()
        };
        for name in local.keys().filter(|n| !all.contains_key(*n)) {
            self.remove(name).await;
        }
        let mut pending = BTreeMap::new();
        for (name, (d, rev)) in all {
            if local.get(&name).map(|m| m.revision) != Some(rev) {
                pending.insert(name, (d, rev));
            } else {
                self.record(&name, rev, Ok(rev));
            }
        }
        self.apply_pending(&mut pending).await;

        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut watch = self
            .client
            .watch_client()
            .watch(desired::functions_prefix(&self.prefix), Some(options))
            .await?;
        let mut retry = tokio::time::interval(RETRY_EVERY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = watch.message() => {
                    let Some(response) = message? else { return Ok(()) };
                    if response.canceled() {
                        return Err(FleetError::Etcd(etcd_client::Error::WatchError(
                            response.cancel_reason().to_string(),
                        )));
                    }
                    let start = desired::functions_prefix(&self.prefix).len();
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        let name = String::from_utf8_lossy(&kv.key()[start..]).into_owned();
                        match event.event_type() {
                            EventType::Delete => {
                                pending.remove(&name);
                                self.remove(&name).await;
                            }
                            EventType::Put => match serde_json::from_slice::<Desired>(kv.value()) {
                                Ok(d) => {
                                    pending.insert(name, (d, kv.mod_revision()));
                                }
                                Err(e) => tracing::error!(target: "wedge::fleet", function = %name, "ignoring a desired state that is not valid JSON: {e}"),
                            },
                        }
                    }
                    self.apply_pending(&mut pending).await;
                }
                _ = retry.tick(), if !pending.is_empty() => self.apply_pending(&mut pending).await,
            }
        }
    }

    /// Applies each pending desired state; those that fail stay pending.
    async fn apply_pending(&self, pending: &mut BTreeMap<String, (Desired, i64)>) {
        let names: Vec<String> = pending.keys().cloned().collect();
        for name in names {
            let (d, rev) = &pending[&name];
            let result = apply::apply(&self.functions, &self.registry, &name, d, *rev).await;
            match result {
                Ok(()) => {
                    let rev = *rev;
                    pending.remove(&name);
                    self.record(&name, rev, Ok(rev));
                    tracing::info!(target: "wedge::fleet", function = %name, revision = rev, "desired state applied");
                    let _ = self.changes.send(Change::Fleet(name)).await;
                }
                Err(e) => {
                    tracing::warn!(target: "wedge::fleet", function = %name, "cannot apply the desired state yet: {e}");
                    self.record(&name, *rev, Err(e.to_string()));
                }
            }
        }
    }

    fn record(&self, name: &str, desired: i64, applied: Result<i64, String>) {
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        let p = progress.entry(name.to_string()).or_default();
        p.desired = p.desired.max(desired);
        match applied {
            Ok(rev) => {
                p.applied = rev;
                p.error = None;
            }
            Err(e) => p.error = Some(e),
        }
        p.behind_since_ms = match p.applied >= p.desired {
            true => None,
            false => p.behind_since_ms.or(Some(now_ms())),
        };
    }

    async fn remove(&self, name: &str) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        match apply::remove(&self.functions, name).await {
            Ok(true) => {
                tracing::info!(target: "wedge::fleet", function = %name, "removed from the fleet");
                let _ = self.changes.send(Change::Fleet(name.to_string())).await;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(target: "wedge::fleet", function = %name, "cannot remove: {e}")
            }
        }
    }

    /// Pushes `module` as version `label` of `name` and adds it to the
    /// desired state, without moving traffic (a new function serves it at
    /// 100 %). `function_toml`, when given, replaces the function's settings.
    pub async fn push(
        &self,
        name: &str,
        label: &str,
        module: &[u8],
        function_toml: Option<String>,
    ) -> Result<(Desired, i64), FleetError> {
        let digest = self.registry.push_module(name, label, module).await?;
        let entry = Module {
            digest,
            size: module.len() as u64,
            pushed_ms: now_ms(),
        };
        let by = format!("version {label} pushed through {}", self.node);
        let written = desired::update(&self.client, &self.prefix, name, |current| {
            let mut next = current.unwrap_or_else(|| Desired {
                function_toml: String::new(),
                versions: BTreeMap::new(),
                deployment: Deployment {
                    stable: label.to_string(),
                    canary: None,
                    canary_percent: 0,
                    previous_stable: None,
                },
                since_ms: now_ms(),
                reason: String::new(),
            });
            if let Some(old) = next.versions.get(label)
                && old.digest != entry.digest
                && next.names(label)
            {
                return Err(DesiredError::Refused(format!(
                    "version {label} of `{name}` takes traffic with other bytes; push under a new label"
                )));
            }
            next.versions.insert(label.to_string(), entry.clone());
            if let Some(toml) = &function_toml {
                next.function_toml = toml.clone();
            }
            next.reason = by.clone();
            Ok(next)
        })
        .await?;
        Ok(written)
    }

    /// Changes `name`'s deployment with `change`, which sees the current
    /// desired state; every version it names must be in the desired state.
    pub async fn deploy(
        &self,
        name: &str,
        reason: &str,
        change: impl Fn(&Desired) -> Result<Deployment, String>,
    ) -> Result<(Desired, i64), FleetError> {
        let written = desired::update(&self.client, &self.prefix, name, |current| {
            let mut next = existing(current, name)?;
            let deployment = change(&next).map_err(DesiredError::Refused)?;
            deployment.check().map_err(DesiredError::Refused)?;
            for label in std::iter::once(&deployment.stable).chain(&deployment.canary) {
                if !next.versions.contains_key(label) {
                    return Err(DesiredError::Refused(format!(
                        "`{name}` has no version `{label}` in the fleet (versions: {})",
                        next.versions.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            if deployment != next.deployment {
                next.since_ms = now_ms();
            }
            next.deployment = deployment;
            next.reason = reason.to_string();
            Ok(next)
        })
        .await?;
        Ok(written)
    }

    /// Replaces `name`'s `function.toml` in the desired state.
    pub async fn configure(
        &self,
        name: &str,
        reason: &str,
        function_toml: String,
    ) -> Result<(Desired, i64), FleetError> {
        let written = desired::update(&self.client, &self.prefix, name, |current| {
            let mut next = existing(current, name)?;
            next.function_toml = function_toml.clone();
            next.reason = reason.to_string();
            Ok(next)
        })
        .await?;
        Ok(written)
    }

    /// Takes `name` out of the fleet: every node stops serving it and removes
    /// its directory. Its modules stay in the registry. Returns the revision.
    pub async fn retire(&self, name: &str) -> Result<i64, FleetError> {
        let revision = desired::delete(&self.client, &self.prefix, name).await?;
        tracing::info!(target: "wedge::fleet", function = %name, revision, "removed from the fleet's desired state");
        Ok(revision)
    }

    /// Every function's desired state, with its revision.
    pub async fn desired(&self) -> Result<BTreeMap<String, (Desired, i64)>, FleetError> {
        Ok(desired::read_all(&self.client, &self.prefix).await?.0)
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The fleet as `GET /v1/fleet` shows it: the desired state, every live
    /// node's report, and the nodes that do not serve the desired state yet.
    pub async fn state(&self) -> Result<crate::control::fleet::wire::FleetState, FleetError> {
        let desired = self.desired().await?;
        let nodes = self.reports().await?;
        let mut lagging = Vec::new();
        for (name, (d, revision)) in &desired {
            for (node, report) in &nodes {
                let f = report.functions.get(name);
                let applied = f.map_or(0, |f| f.applied_revision);
                if applied < *revision {
                    lagging.push(crate::control::fleet::wire::Lag {
                        node: node.clone(),
                        function: name.clone(),
                        applied_revision: applied,
                        desired_revision: *revision,
                        since_ms: f
                            .and_then(|f| f.behind_since_ms)
                            .or(Some(d.since_ms).filter(|_| f.is_none())),
                        error: f.and_then(|f| f.error.clone()),
                    });
                }
            }
        }
        let desired = desired
            .into_iter()
            .map(|(name, (d, revision))| {
                let f = crate::control::fleet::wire::FleetFunction {
                    revision,
                    versions: d
                        .versions
                        .iter()
                        .map(|(l, m)| (l.clone(), m.digest.clone()))
                        .collect(),
                    deployment: d.deployment,
                    since_ms: d.since_ms,
                    reason: d.reason,
                };
                (name, f)
            })
            .collect();
        Ok(crate::control::fleet::wire::FleetState {
            node: self.node.clone(),
            judge: self.judge_node().await,
            desired,
            nodes,
            lagging,
        })
    }
}

/// Compiled code shared through the registry, keyed by the module's digest
/// and the engine that compiled it.
#[async_trait::async_trait]
impl crate::control::catalogue::shared::SharedCode for Fleet {
    async fn fetch(&self, sha256: &str, engine: &str) -> Option<Vec<u8>> {
        match self
            .registry
            .pull_compiled(&format!("sha256:{sha256}"), engine)
            .await
        {
            Ok(code) => code,
            Err(e) => {
                tracing::debug!(target: "wedge::fleet", "no shared compiled code: {e}");
                None
            }
        }
    }

    async fn offer(&self, sha256: &str, engine: &str, code: Vec<u8>) {
        let digest = format!("sha256:{sha256}");
        match self.registry.push_compiled(&digest, engine, code).await {
            Ok(()) => {
                tracing::info!(target: "wedge::fleet", module = %digest, "compiled code shared through the registry")
            }
            Err(e) => {
                tracing::warn!(target: "wedge::fleet", module = %digest, "cannot share compiled code: {e}")
            }
        }
    }
}

/// The desired state a change applies to; only a push creates one.
fn existing(current: Option<Desired>, name: &str) -> Result<Desired, DesiredError> {
    current.ok_or_else(|| DesiredError::Missing(name.into()))
}

impl Desired {
    /// Whether the deployment names `label`.
    fn names(&self, label: &str) -> bool {
        self.deployment.stable == label || self.deployment.canary.as_deref() == Some(label)
    }
}
