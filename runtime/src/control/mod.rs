//! The node's control plane: reloads functions into a new routing snapshot and
//! swaps it in, one swap at a time. The watcher, finished compiles, the admin
//! API and automatic rollbacks all go through here.
//!
//! - [`source`]: the channel every source of change feeds the control loop
//!   through.
//! - [`catalogue`]: the functions directory turned into compiled, routable
//!   functions: loads, compiles in two tiers in child processes, the module
//!   cache, the remembered last good state, the directory's watcher.
//! - [`fleet`]: fleet rollouts: the desired state in etcd, modules in an OCI
//!   registry, each node following them into its functions directory.
//! - [`canary`]: the canary rule, one pure function of a window's counts,
//!   used by a node for its own functions and by the fleet's judge.
//!
//! Compiling is the slow part of a change, and it never holds anything up: a
//! reload takes what is already compiled and starts compiles in the
//! background, each in its own child process; when one finishes, its function
//! is queued for another reload. A rollback, promote or deployment change is a
//! file write and a reload, so it waits behind no compile, and compiles of
//! different functions run side by side.

pub mod canary;
pub mod catalogue;
pub mod fleet;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Deployment;
use crate::config::valid_name;
use crate::control::catalogue::{Catalogue, CompileJob, write_deployment};
use crate::control::source::{Change, Changes, Sender};
use crate::node::NodeState;
use crate::node::function::{Function, Version};
use crate::telemetry::metrics::CounterVec;
use crate::util::fs::write_atomically;

/// How often canaries are checked for automatic rollback and promotion.
const CANARY_CHECK: Duration = Duration::from_millis(200);

/// Why a deployment change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No such function.
    #[error("no function `{0}`")]
    NoFunction(String),
    /// The change names versions that do not exist or is otherwise malformed.
    #[error("{0}")]
    Invalid(String),
    /// Nothing to do: promote without a canary, rollback with nothing to go back to.
    #[error("{0}")]
    Conflict(String),
    /// Writing the change failed.
    #[error("cannot write the deployment: {0}")]
    Io(#[from] std::io::Error),
}

fn fleet_managed(name: &str) -> ControlError {
    ControlError::Conflict(format!(
        "`{name}` is managed by the fleet: change it with --fleet (the fleet's desired state in etcd)"
    ))
}

/// What start-up found, for its log line.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    /// Functions serving.
    pub functions: usize,
    /// Modules compiling because the cache lacked them.
    pub compiling: usize,
    /// Versions loaded from the module cache.
    pub cached: usize,
}

/// Reloads and swaps; shared by everything that changes what serves.
pub struct Control {
    catalogue: Arc<Catalogue>,
    node: Arc<NodeState>,
    /// Where finished compiles send their function for a reload.
    changes: Sender,
    /// One reload at a time, so two changes never race to swap. Held only
    /// while files are read and the snapshot swapped, never while compiling.
    reloading: tokio::sync::Mutex<()>,
    /// Swaps made, per function.
    swaps: CounterVec,
    /// Automatic rollbacks made, per function.
    rollbacks: CounterVec,
    /// One deployment change at a time: read, write, reload.
    deploying: tokio::sync::Mutex<()>,
}

impl Control {
    /// A control plane over `catalogue` swapping snapshots into `node`; its
    /// finished compiles go to `changes`, the channel every source feeds.
    pub fn new(catalogue: Arc<Catalogue>, node: Arc<NodeState>, changes: Sender) -> Self {
        Self {
            catalogue,
            node,
            changes,
            reloading: tokio::sync::Mutex::new(()),
            swaps: CounterVec::default(),
            rollbacks: CounterVec::default(),
            deploying: tokio::sync::Mutex::new(()),
        }
    }

    /// Automatic rollbacks since start, per function.
    pub fn rollbacks(&self) -> &CounterVec {
        &self.rollbacks
    }

    /// Writes `deployment` for function `name` and reloads it. Every label must
    /// be a version that loaded. Returns the deployment now serving.
    pub async fn set_deployment(
        &self,
        name: &str,
        deployment: Deployment,
    ) -> Result<Deployment, ControlError> {
        let _one_at_a_time = self.deploying.lock().await;
        let function = self.function(name)?;
        self.apply(&function, deployment).await
    }

    /// The canary becomes stable at 100 %; the old stable is remembered for a
    /// later rollback.
    pub async fn promote(&self, name: &str) -> Result<Deployment, ControlError> {
        let _one_at_a_time = self.deploying.lock().await;
        let function = self.function(name)?;
        let promoted = function
            .deployment
            .promoted(name)
            .map_err(ControlError::Conflict)?;
        self.apply(&function, promoted).await
    }

    /// With a canary taking traffic: the canary gets 0 %. Without one: the stable
    /// before the last promote becomes stable again.
    pub async fn rollback(&self, name: &str) -> Result<Deployment, ControlError> {
        let _one_at_a_time = self.deploying.lock().await;
        let function = self.function(name)?;
        let rolled = function
            .deployment
            .rolled_back(name)
            .map_err(ControlError::Conflict)?;
        self.apply(&function, rolled).await
    }

    /// Validates `bytes` as version `label` of function `name` and writes it into
    /// `functions/` (temporary file, then rename). An upload never moves traffic:
    /// where no `deployment.toml` exists, the current stable is pinned in one
    /// first. The module is compiled before anything is written and before any
    /// lock is taken, so other uploads and deployment changes go on meanwhile.
    /// Returns once the version is loaded.
    pub async fn upload(
        &self,
        name: &str,
        label: &str,
        bytes: Vec<u8>,
    ) -> Result<Arc<Version>, ControlError> {
        if !valid_name(name) || !valid_name(label) {
            return Err(ControlError::Invalid(
                "function names and version labels are 1-64 of A-Z a-z 0-9 - _ . (not starting with a dot)".into(),
            ));
        }
        let bytes: Arc<[u8]> = bytes.into();
        // Its code stays until the reload below has loaded it.
        let _held = self
            .catalogue
            .validate(bytes.clone())
            .await
            .map_err(|e| ControlError::Invalid(e.to_string()))?;

        let _one_at_a_time = self.deploying.lock().await;
        let dir = self.catalogue.dir().join(name);
        let current = self.node.snapshot().get(name).cloned();
        if current.as_ref().is_some_and(|f| f.fleet) {
            return Err(fleet_managed(name));
        }
        let pin = current
            .as_ref()
            .filter(|f| !f.pinned)
            .map(|f| f.deployment.clone());
        let wasm = dir.join(format!("{label}.wasm"));
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            if let Some(pin) = pin {
                write_deployment(&dir, &pin)?;
            }
            write_atomically(&wasm, &bytes)
        })
        .await
        .map_err(|e| ControlError::Io(std::io::Error::other(e)))??;
        self.reload(vec![name.to_string()]).await;
        self.node
            .snapshot()
            .get(name)
            .and_then(|f| f.versions.get(label).cloned())
            .ok_or_else(|| {
                ControlError::Invalid(self.failure_message(name, "the version did not load"))
            })
    }

    /// Why function `name`'s last change did not load, or `fallback`.
    fn failure_message(&self, name: &str, fallback: &str) -> String {
        self.catalogue
            .failure(name)
            .map_or_else(|| fallback.to_string(), |f| f.message)
    }

    /// Function `name`, which this node may change by itself: not the fleet's.
    fn function(&self, name: &str) -> Result<Arc<Function>, ControlError> {
        let function = self
            .node
            .snapshot()
            .get(name)
            .cloned()
            .ok_or_else(|| ControlError::NoFunction(name.to_string()))?;
        match function.fleet {
            true => Err(fleet_managed(name)),
            false => Ok(function),
        }
    }

    async fn apply(
        &self,
        function: &Function,
        deployment: Deployment,
    ) -> Result<Deployment, ControlError> {
        for label in std::iter::once(&deployment.stable).chain(&deployment.canary) {
            if !function.versions.contains_key(label) {
                return Err(ControlError::Invalid(format!(
                    "`{}` has no loaded version `{label}` (versions: {})",
                    function.name,
                    function
                        .versions
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        deployment.check().map_err(ControlError::Invalid)?;
        let dir = self.catalogue.dir().join(&*function.name);
        let written = deployment.clone();
        tokio::task::spawn_blocking(move || write_deployment(&dir, &written))
            .await
            .map_err(|e| ControlError::Io(std::io::Error::other(e)))??;
        self.reload(vec![function.name.to_string()]).await;
        let serving = self
            .node
            .snapshot()
            .get(&function.name)
            .map(|f| f.deployment.clone())
            .ok_or_else(|| ControlError::NoFunction(function.name.to_string()))?;
        if serving != deployment {
            return Err(ControlError::Invalid(
                self.failure_message(&function.name, "the change did not load"),
            ));
        }
        Ok(serving)
    }

    /// Checks canaries forever, periodically and after every failed request: a
    /// canary over its error budget is rolled back at once; one healthy for
    /// `promote_after` is promoted.
    pub async fn watch_canaries(self: Arc<Self>) {
        let failures = self.node.failures().clone();
        loop {
            tokio::select! {
                () = tokio::time::sleep(CANARY_CHECK) => {}
                () = failures.notified() => {}
            }
            self.check_canaries().await;
        }
    }

    async fn check_canaries(&self) {
        let snapshot = self.node.snapshot();
        // The fleet's functions are judged by the fleet, on its totals.
        for f in snapshot.functions().filter(|f| !f.fleet) {
            let Some(canary) = f.canary().filter(|_| f.deployment.canary_percent > 0) else {
                continue;
            };
            let window =
                f.rollout
                    .auto_rollback
                    .as_ref()
                    .map_or_else(canary::Window::default, |rb| {
                        let (requests, errors) = canary.stats.recent(rb.window.0);
                        canary::Window { requests, errors }
                    });
            match canary::judge(&f.rollout, window, f.canary_since.elapsed()) {
                Some(canary::Verdict::RollBack(w)) => match self.rollback(&f.name).await {
                    Ok(_) => {
                        self.rollbacks.inc(&f.name);
                        tracing::warn!(
                            target: "wedge::rollout",
                            function = %f.name,
                            canary = %canary.label,
                            requests = w.requests,
                            errors = w.errors,
                            error_rate = w.error_rate(),
                            max_error_rate = f.rollout.auto_rollback.as_ref().map_or(0.0, |rb| rb.max_error_rate),
                            "canary rolled back automatically"
                        );
                    }
                    Err(e) => {
                        tracing::error!(target: "wedge::rollout", function = %f.name, "automatic rollback failed: {e}")
                    }
                },
                Some(canary::Verdict::Promote) => match self.promote(&f.name).await {
                    Ok(_) => {
                        tracing::info!(
                            target: "wedge::rollout",
                            function = %f.name,
                            version = %canary.label,
                            after = %f.rollout.promote_after.map(|a| a.to_string()).unwrap_or_default(),
                            "healthy canary promoted automatically"
                        );
                    }
                    Err(e) => {
                        tracing::error!(target: "wedge::rollout", function = %f.name, "automatic promotion failed: {e}")
                    }
                },
                None => {}
            }
        }
    }

    /// The catalogue, for its failures and directory.
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }

    /// Functions that serve nothing yet because they are still compiling.
    pub fn pending(&self) -> usize {
        self.catalogue.pending(&self.node.snapshot())
    }

    /// The node's state, whose snapshot this swaps.
    pub fn node(&self) -> &Arc<NodeState> {
        &self.node
    }

    /// Module swaps since start, per function.
    pub fn swaps(&self) -> &CounterVec {
        &self.swaps
    }

    /// Start-up, the control loop's first reload: every function in the
    /// functions directory on top of nothing, from what is compiled (a
    /// function whose files are broken serves its remembered last good
    /// state). It swaps the result in, remembers it, forgets the state of
    /// functions removed while the node was down, bounds the module cache,
    /// and starts the compiles the cache lacked.
    pub async fn start(&self) -> anyhow::Result<Started> {
        let _one_at_a_time = self.reloading.lock().await;
        let catalogue = self.catalogue.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let loaded = catalogue.load_all();
            let all: Vec<String> = loaded
                .snapshot
                .functions()
                .map(|f| f.name.to_string())
                .collect();
            catalogue.remember(&loaded.snapshot, &all);
            catalogue.forget_removed();
            catalogue.evict(&loaded.snapshot);
            loaded
        })
        .await?;
        let started = Started {
            functions: loaded.snapshot.functions().count(),
            compiling: loaded.jobs.len(),
            cached: loaded.stats.cached,
        };
        self.node.swap(Arc::new(loaded.snapshot));
        for job in loaded.jobs {
            self.compile_in_background(job);
        }
        Ok(started)
    }

    /// The control loop: reloads what every source sends, in debounced
    /// batches, until the task is dropped or every source is gone.
    pub async fn run_reloads(self: Arc<Self>, mut changes: Changes) {
        while let Some(names) = changes.next_batch().await {
            self.reload(names).await;
        }
    }

    /// Reloads the functions in `names` and swaps the result in. Requests
    /// already running keep the snapshot they started with. Modules that need
    /// compiling are compiled in the background; their function is reloaded
    /// again when they are done. Returns the names that changed.
    pub async fn reload(&self, names: Vec<String>) -> Vec<String> {
        if names.is_empty() {
            return Vec::new();
        }
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.node.snapshot();
        let catalogue = self.catalogue.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || catalogue.reload(&current, &names)).await;
        let reloaded = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "wedge::registry", "reload failed: {e}");
                return Vec::new();
            }
        };
        for job in reloaded.jobs {
            self.compile_in_background(job);
        }
        let (changed, stats) = (reloaded.changed, reloaded.stats);
        if changed.is_empty() && !reloaded.starting_changed {
            return changed;
        }
        // What is about to serve is the last good state to fall back on
        // after a crash: remembered first, so a crash right after the swap
        // still finds it.
        let snapshot = Arc::new(reloaded.snapshot);
        let catalogue = self.catalogue.clone();
        let (remembering, remembered) = (snapshot.clone(), changed.clone());
        let _ = tokio::task::spawn_blocking(move || catalogue.remember(&remembering, &remembered))
            .await;
        self.node.swap(snapshot);
        let snapshot = self.node.snapshot();
        for name in &changed {
            self.swaps.inc(name);
            match snapshot.get(name) {
                Some(f) => tracing::info!(
                    target: "wedge::registry",
                    function = %name,
                    stable = %f.deployment.stable,
                    canary = %f.deployment.canary.as_deref().unwrap_or(""),
                    canary_percent = f.deployment.canary_percent,
                    versions = f.versions.len(),
                    cached = stats.cached,
                    reload_ms = started.elapsed().as_millis() as u64,
                    "swapped"
                ),
                None => tracing::info!(target: "wedge::registry", function = %name, "removed"),
            }
        }
        if stats.cached > 0 {
            let catalogue = self.catalogue.clone();
            let _ = tokio::task::spawn_blocking(move || catalogue.evict(&snapshot)).await;
        }
        changed
    }

    /// Compiles `job` in child processes unless it is compiling already,
    /// baseline then optimized code, and sends its functions for a reload
    /// after each.
    pub fn compile_in_background(&self, job: CompileJob) {
        if !self.catalogue.begin_compile(&job) {
            return;
        }
        tracing::info!(
            target: "wedge::registry",
            function = %job.function,
            path = %job.path.display(),
            sha256 = %job.sha256,
            size = job.bytes.len(),
            "compiling"
        );
        let (catalogue, changes, node) = (
            self.catalogue.clone(),
            self.changes.clone(),
            self.node.clone(),
        );
        tokio::spawn(async move {
            // Baseline code first, for the functions to serve within moments;
            // then the optimized code they are reloaded onto.
            // Either stops when no function names the module any more.
            let serving = || node.snapshot();
            let Ok(ready) = catalogue.compile_baseline(&job, &serving).await else {
                return;
            };
            for function in ready {
                let _ = changes.send(Change::Compiled(function)).await;
            }
            let Ok(waiting) = catalogue.compile(&job, &serving).await else {
                return;
            };
            // The cache grew: evict here, as the reload that follows swaps
            // nothing when the version was replaced while it compiled.
            let (evicting, snapshot) = (catalogue.clone(), node.snapshot());
            let _ = tokio::task::spawn_blocking(move || evicting.evict(&snapshot)).await;
            for function in waiting {
                let _ = changes.send(Change::Compiled(function)).await;
            }
        });
    }
}
