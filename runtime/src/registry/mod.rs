//! The functions directory: each `functions/<name>/` becomes a [`Function`] with
//! its versions compiled off the request path, and the whole becomes a routing
//! [`Snapshot`]. The registry is the only writer of snapshots.
//!
//! A reload never compiles. It reads the files, reuses every version whose
//! bytes it already has, takes compiled code from the cache, and hands back a
//! [`CompileJob`] for each module that still needs compiling. The control plane
//! runs those in child processes ([`compiler`]) and reloads the function again
//! when one is done. So a reload, and with it a rollback, promote or
//! deployment change, takes milliseconds whatever is compiling meanwhile.
//!
//! A change that fails (bad TOML, bad wasm, a forbidden import, a route clash, a
//! deployment naming a version that does not load, a compile that timed out)
//! changes nothing that serves: the function keeps its last good state and the
//! error is recorded for the admin API and the log. That state is also
//! remembered on disk ([`lastgood`]) for a start-up whose files are broken.

pub mod cache;
pub mod compiler;
pub mod lastgood;
mod load;
pub mod loader;
mod natural;
pub mod shared;
mod superseded;
mod tiers;
pub mod watcher;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::origins::AllowList;
use crate::config::{Config, valid_name};
use crate::engine::{Tier, WasmEngine};
use crate::function::Function;
use crate::metrics::CounterVec;
use crate::outbound::{OriginClient, Outbound};
use crate::router::{Snapshot, Starting};
use crate::telemetry::Telemetry;
use cache::ModuleCache;
use compiler::Compiler;
use lastgood::{LastGood, Record, RecordedVersion};
use shared::SharedCode;

pub use loader::LoadError;
pub use natural::natural_cmp;
pub use superseded::Held;
pub use tiers::Superseded;

/// The file that marks `functions/<name>/` as the fleet's (see
/// [`crate::fleet`]): its deployment comes from the fleet's desired state.
pub const FLEET_MARKER: &str = "fleet.json";

/// When code a node compiled is offered to the others.
#[derive(Debug, Clone, Copy)]
enum Offer {
    /// Before the compile counts as done: a module checked before a fleet
    /// deploy is shared before the fleet hears of it, so no node compiles it
    /// again.
    First,
    /// In the background: the node's own swap does not wait for the upload.
    Meanwhile,
}

/// How long a compile waits for another node's code before compiling itself.
const SHARED_CODE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Modules remembered as refused (did not compile or link), so a bad file is
/// not compiled again at every reload.
const REFUSED_REMEMBERED: usize = 1024;

/// Why a function, or one of its versions, is not in the state it was asked to be.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// The function's name.
    pub function: String,
    /// The file at fault.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// How much work a reload took.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadStats {
    /// Loaded from the compiled-module cache.
    pub cached: usize,
    /// Reused from the previous snapshot: same label, same bytes.
    pub reused: usize,
}

/// A module a reload found with no compiled code yet.
#[derive(Clone)]
pub struct CompileJob {
    /// The function to reload once it is compiled.
    pub function: String,
    /// The file it came from, for errors.
    pub path: PathBuf,
    /// sha256 of `bytes`: its name in the cache.
    pub sha256: String,
    /// The module.
    pub bytes: Arc<[u8]>,
}

/// What a reload came to.
pub struct Reloaded {
    /// The new routing table.
    pub snapshot: Snapshot,
    /// Functions that changed (added, replaced or removed).
    pub changed: Vec<String>,
    /// The work it took.
    pub stats: LoadStats,
    /// Modules to compile; each function is reloaded again when its are done.
    pub jobs: Vec<CompileJob>,
    /// The functions that serve nothing yet are not those of the snapshot
    /// reloaded: swap this one in even if nothing in `changed` changed.
    pub starting_changed: bool,
}

/// Turns the functions directory into snapshots.
pub struct Registry {
    engine: Arc<WasmEngine>,
    cache: ModuleCache,
    compiler: Compiler,
    last_good: LastGood,
    config: Config,
    /// The latest failure per function, cleared when the function loads cleanly.
    failures: Mutex<BTreeMap<String, LoadFailure>>,
    /// Load failures since start, per function.
    failure_count: CounterVec,
    /// Hands each version its statistics.
    telemetry: Arc<Telemetry>,
    /// Modules that did not compile or link, by sha256, with why.
    refused: Mutex<lru::LruCache<String, LoadError>>,
    /// Modules being compiled now, by sha256, with the functions waiting for each.
    compiling: Mutex<HashMap<String, BTreeSet<String>>>,
    /// The modules each function's files name, by function (see
    /// [`superseded`]).
    wanted: Mutex<HashMap<String, HashSet<String>>>,
    /// Modules uploads hold, with how many hold each (see [`Held`]).
    held: Mutex<HashMap<String, usize>>,
    /// Baseline code serving modules whose optimized code is not ready, by
    /// sha256: one entry per module version in the functions directory.
    baseline: Mutex<HashMap<String, tiers::Baseline>>,
    /// Where compiled code is shared with other nodes, in a fleet.
    shared: std::sync::OnceLock<Arc<dyn SharedCode>>,
    /// The node's outbound HTTP.
    outbound: Arc<Outbound>,
    /// Each function's outbound client and the list it was made for, kept
    /// across reloads while the list is unchanged so its pool survives.
    clients: Mutex<BTreeMap<String, ListedClient>>,
}

/// An outbound client and the `outbound` list it was made for.
type ListedClient = (Vec<String>, Arc<OriginClient>);

/// One function's outcome in a reload.
enum Outcome {
    Loaded(Box<Function>, Vec<LoadFailure>),
    Removed,
    Failed(LoadFailure),
    /// A version the deployment names is still compiling: nothing changes
    /// yet. A function that serves nothing yet is starting, at this route.
    Waiting(Starting),
}

impl Registry {
    /// A registry over `config.functions.dir`, caching compiled code in
    /// `config.store.dir` and compiling with `compiler_exe compile-module`.
    pub fn new(
        engine: Arc<WasmEngine>,
        config: Config,
        telemetry: Arc<Telemetry>,
        outbound: Arc<Outbound>,
        compiler_exe: PathBuf,
    ) -> Self {
        let cache = ModuleCache::new(&config.store.dir, &engine);
        let compiler = Compiler::new(
            compiler_exe,
            Compiler::slots(),
            config.functions.compile_timeout.0,
        );
        Self {
            telemetry,
            engine,
            cache,
            compiler,
            last_good: LastGood::new(&config.store.dir),
            config,
            failures: Mutex::default(),
            failure_count: CounterVec::default(),
            refused: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(REFUSED_REMEMBERED).expect("non-zero"),
            )),
            compiling: Mutex::default(),
            wanted: Mutex::default(),
            held: Mutex::default(),
            baseline: Mutex::default(),
            shared: std::sync::OnceLock::new(),
            outbound,
            clients: Mutex::default(),
        }
    }

    /// The outbound client of function `name` with the list `outbound`: the
    /// one it had while the list is the same. None for an empty list.
    fn origin_client(&self, name: &str, outbound: &[String]) -> Option<Arc<OriginClient>> {
        let mut clients = lock(&self.clients);
        if outbound.is_empty() {
            clients.remove(name);
            return None;
        }
        if let Some((list, client)) = clients.get(name)
            && list.as_slice() == outbound
        {
            return Some(client.clone());
        }
        // The list was checked when function.toml was parsed.
        let allow = AllowList::parse(outbound).ok()?;
        let client = self.outbound.client(allow);
        clients.insert(name.to_string(), (outbound.to_vec(), client.clone()));
        Some(client)
    }

    /// Shares compiled code through `shared` from now on.
    pub fn share_compiled(&self, shared: Arc<dyn SharedCode>) {
        let _ = self.shared.set(shared);
    }

    /// The directory functions live in.
    pub fn dir(&self) -> &Path {
        &self.config.functions.dir
    }

    /// `functions.max_module_size`, in bytes.
    pub fn max_module_size(&self) -> usize {
        self.config.functions.max_module_size.as_usize()
    }

    /// The latest load failure of function `name`, if it has one.
    pub fn failure(&self, name: &str) -> Option<LoadFailure> {
        lock(&self.failures).get(name).cloned()
    }

    /// The latest load failure of each function that has one.
    pub fn failures(&self) -> BTreeMap<String, LoadFailure> {
        lock(&self.failures).clone()
    }

    /// Load failures since start, per function.
    pub fn failure_count(&self) -> &CounterVec {
        &self.failure_count
    }

    /// Loads everything on top of nothing. Blocking: run it on a blocking thread.
    pub fn load_all(&self) -> Reloaded {
        let names = match function_names(self.dir()) {
            Ok(n) => n,
            Err(e) => {
                self.record(LoadFailure {
                    function: String::new(),
                    path: self.dir().to_path_buf(),
                    message: format!("cannot read the functions directory: {e}"),
                });
                Vec::new()
            }
        };
        self.reload(&Snapshot::default(), &names)
    }

    /// Reloads the functions in `names` on top of `current`, keeping every other
    /// function as it is. Never compiles; blocking file reads: run it on a
    /// blocking thread.
    pub fn reload(&self, current: &Snapshot, names: &[String]) -> Reloaded {
        let mut stats = LoadStats::default();
        let mut jobs = Vec::new();
        let mut functions: BTreeMap<Arc<str>, Arc<Function>> = current
            .functions()
            .map(|f| (f.name.clone(), f.clone()))
            .collect();
        let mut changed = Vec::new();
        let mut starting: BTreeMap<Arc<str>, Starting> = current
            .starting_functions()
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect();
        for name in names {
            starting.remove(name.as_str());
            let old = functions.get(name.as_str()).cloned();
            let loaded = match self.load_function(name, old.as_deref(), &mut stats, &mut jobs) {
                Outcome::Removed => {
                    lock(&self.clients).remove(name.as_str());
                    self.forget_wanted(name);
                    if functions.remove(name.as_str()).is_some() {
                        changed.push(name.clone());
                    }
                    self.settle(name, Vec::new());
                    continue;
                }
                Outcome::Waiting(first) => {
                    if old.is_none() {
                        starting.insert(first.name.clone(), first);
                    }
                    continue;
                }
                Outcome::Failed(failure) => match old {
                    Some(_) => {
                        self.record(failure);
                        continue;
                    }
                    None => match self.last_good_state(name) {
                        Some(f) => (f, vec![serving_last_good(failure)]),
                        None => {
                            self.record(failure);
                            continue;
                        }
                    },
                },
                Outcome::Loaded(f, failures) => (f, failures),
            };
            let (f, failures) = loaded;
            if old.as_ref().is_some_and(|o| o.fingerprint == f.fingerprint) {
                // Same files, same bytes: nothing to swap.
                self.settle(name, failures);
                continue;
            }
            if let Some(other) = functions
                .values()
                .find(|o| *o.name != *name && o.route == f.route && o.host == f.host)
            {
                let keeping = if old.is_some() {
                    "; keeping the last good state"
                } else {
                    ""
                };
                self.record(LoadFailure {
                    function: name.clone(),
                    path: self.dir().join(name).join("function.toml"),
                    message: format!(
                        "route `{}` is already taken by `{}`{keeping}",
                        f.route, other.name
                    ),
                });
                continue;
            }
            self.settle(name, failures);
            functions.insert(f.name.clone(), Arc::from(f));
            changed.push(name.clone());
        }
        let (snapshot, _) = Snapshot::build(
            functions.into_values().collect(),
            starting.into_values().collect(),
        );
        let starting_changed = snapshot.starting_functions() != current.starting_functions();
        Reloaded {
            snapshot,
            changed,
            stats,
            jobs,
            starting_changed,
        }
    }

    /// Remembers the state of every function in `changed` as its last good
    /// state, or forgets a function that is gone. Blocking.
    pub fn remember(&self, snapshot: &Snapshot, changed: &[String]) {
        for name in changed {
            let Some(f) = snapshot.get(name) else {
                self.last_good.remove(name);
                continue;
            };
            if f.from_last_good || f.stable().is_none() {
                continue;
            }
            let record = Record {
                function_toml: f.function_toml.clone(),
                deployment: f.deployment.clone(),
                pinned: f.pinned,
                versions: f
                    .versions
                    .values()
                    .map(|v| RecordedVersion {
                        label: v.label.to_string(),
                        sha256: v.sha256.clone(),
                        size: v.size,
                    })
                    .collect(),
            };
            if let Err(e) = self.last_good.write(name, &record) {
                tracing::warn!(target: "wedge::registry", function = %name, "cannot remember the last good state: {e}");
            }
        }
    }

    /// Forgets the remembered state of functions whose directory is gone (removed
    /// while the node was down). Blocking.
    pub fn forget_removed(&self) {
        for name in self.last_good.functions() {
            if !self.dir().join(&name).is_dir() {
                self.last_good.remove(&name);
            }
        }
    }

    /// Removes cached code that neither `current` nor any remembered state
    /// uses, beyond the most recently used spares. Blocking.
    pub fn evict(&self, current: &Snapshot) {
        let remembered = self.last_good.modules();
        let mut keep: HashSet<&str> = remembered.iter().map(String::as_str).collect();
        for f in current.functions() {
            keep.extend(f.versions.values().map(|v| v.sha256.as_str()));
        }
        let held = self.held();
        keep.extend(held.iter().map(String::as_str));
        self.drop_unused_baseline(&keep);
        // Code of compiles under way is not in use yet, but soon will be.
        let compiling: Vec<String> = lock(&self.compiling).keys().cloned().collect();
        keep.extend(compiling.iter().map(String::as_str));
        let removed = self.cache.evict(&keep);
        if removed > 0 {
            tracing::info!(target: "wedge::registry", removed, "evicted unused compiled modules");
        }
    }

    /// Functions waiting for a compile that serve nothing yet: new ones, at
    /// start-up those the cache lacked. A function whose new version
    /// compiles while an older one serves is not counted.
    pub fn pending(&self, serving: &Snapshot) -> usize {
        let waiting: BTreeSet<String> = lock(&self.compiling)
            .values()
            .flat_map(|names| names.iter().cloned())
            .collect();
        waiting
            .iter()
            .filter(|name| serving.get(name).is_none())
            .count()
    }

    /// Claims the compile of `job`; false when the module is being compiled
    /// already, and `job`'s function then waits for that compile too.
    pub fn begin_compile(&self, job: &CompileJob) -> bool {
        let mut compiling = lock(&self.compiling);
        match compiling.get_mut(&job.sha256) {
            Some(waiting) => {
                waiting.insert(job.function.clone());
                false
            }
            None => {
                compiling.insert(job.sha256.clone(), BTreeSet::from([job.function.clone()]));
                true
            }
        }
    }

    /// Compiles a claimed job's optimized code into the cache (after
    /// [`Self::compile_baseline`]) and returns the functions waiting for it,
    /// to reload. A failure (the compile timed out, or the module is invalid)
    /// with no baseline code to serve is remembered, and their next reload
    /// records it as a load failure; with baseline code, that code serves on.
    /// [`Superseded`] when nothing wants the module any more.
    pub async fn compile(
        &self,
        job: &CompileJob,
        serving: &(dyn Fn() -> Arc<Snapshot> + Sync),
    ) -> Result<BTreeSet<String>, Superseded> {
        let started = std::time::Instant::now();
        let go_on = || self.still_wanted(&job.sha256, &serving());
        let result = match self.refusal(&job.sha256) {
            Some(refused) => Err(refused),
            None if self.cache.contains(&job.sha256) => Ok(()),
            None => {
                let input = self.optimized_input(job);
                self.compile_into_cache(&input, &job.sha256, Offer::Meanwhile, &go_on)
                    .await
            }
        };
        if let Err(LoadError::Superseded) = result {
            return Err(Superseded);
        }
        self.optimized_done(&job.sha256, result.is_ok());
        let waiting = lock(&self.compiling)
            .remove(&job.sha256)
            .unwrap_or_default();
        match result {
            Ok(()) => tracing::info!(
                target: "wedge::registry",
                function = %job.function,
                path = %job.path.display(),
                sha256 = %job.sha256,
                size = job.bytes.len(),
                tier = Tier::Optimized.as_str(),
                compile_ms = started.elapsed().as_millis() as u64,
                "compiled"
            ),
            Err(e) if self.baseline(&job.sha256).is_some() => tracing::warn!(
                target: "wedge::registry",
                function = %job.function,
                path = %job.path.display(),
                "the optimized compile failed; the baseline code serves on: {e}"
            ),
            Err(e) => self.refuse(&job.sha256, &e),
        }
        Ok(waiting)
    }

    /// Compiles `bytes` into the cache, unless another node shared the code;
    /// offers what it compiles as `offer` says.
    async fn compile_into_cache(
        &self,
        bytes: &Arc<[u8]>,
        sha256: &str,
        offer: Offer,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), LoadError> {
        let shared = self.shared.get().cloned();
        let engine = self.cache.engine_name().to_string();
        if let Some(shared) = &shared
            && self.take_shared(shared.as_ref(), sha256, &engine).await
        {
            return Ok(());
        }
        let tmp = self.cache.temp_path(sha256).map_err(cache_write_error)?;
        self.compiler
            .compile(bytes.clone(), &tmp, Tier::Optimized, None, go_on)
            .await?;
        self.cache.commit(&tmp, sha256).map_err(cache_write_error)?;
        if let Some(shared) = shared {
            let (path, sha256) = (self.cache.path(sha256), sha256.to_string());
            let offered = async move {
                if let Ok(code) = tokio::fs::read(&path).await {
                    shared.offer(&sha256, &engine, code).await;
                }
            };
            match offer {
                Offer::First => offered.await,
                Offer::Meanwhile => drop(tokio::spawn(offered)),
            }
        }
        Ok(())
    }

    /// Puts the code another node compiled from `sha256` into the cache, if
    /// it was shared and loads on this engine; whether it did.
    async fn take_shared(&self, shared: &dyn SharedCode, sha256: &str, engine: &str) -> bool {
        let Ok(Some(code)) =
            tokio::time::timeout(SHARED_CODE_WAIT, shared.fetch(sha256, engine)).await
        else {
            return false;
        };
        let Ok(tmp) = self.cache.temp_path(sha256) else {
            return false;
        };
        let written =
            tokio::fs::write(&tmp, &code).await.is_ok() && self.cache.commit(&tmp, sha256).is_ok();
        if !written {
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        match self.cache.load(&self.engine, sha256) {
            Some(Ok(_)) => {
                tracing::info!(target: "wedge::registry", sha256 = %&sha256[..12.min(sha256.len())], size = code.len(), "took code another node compiled");
                true
            }
            _ => {
                tracing::warn!(target: "wedge::registry", sha256 = %sha256, "shared compiled code does not load here; compiling instead");
                let _ = std::fs::remove_file(self.cache.path(sha256));
                false
            }
        }
    }

    /// Checks that `bytes` would load as a version: size, imports, compilation
    /// (into the cache, so the reload that follows does not compile again, and
    /// in a fleet offered to the other nodes before this returns) and linking.
    /// The code stays while the returned [`Held`] lives: keep it until the
    /// version is written and reloaded.
    pub async fn validate(&self, bytes: Arc<[u8]>) -> Result<Held<'_>, LoadError> {
        let max = self.config.functions.max_module_size.0;
        if bytes.len() as u64 > max {
            return Err(LoadError::TooLarge {
                size: bytes.len() as u64,
                max,
            });
        }
        let imports = loader::check_imports(&bytes)?;
        let sha256 = loader::sha256_hex(&bytes);
        if let Some(e) = lock(&self.refused).get(&sha256) {
            return Err(e.clone());
        }
        let held = self.hold(&sha256);
        // Alone, a node checks with a quick baseline compile and serves from
        // it while the optimized code compiles in the background. In a fleet
        // the optimized code is compiled (and shared) first, so that no
        // node compiles it again.
        if !self.cache.contains(&sha256) && self.shared.get().is_none() {
            let baseline = match self.baseline(&sha256) {
                Some(_) => Ok(()),
                None => self.compile_baseline_code(&bytes, &sha256, &|| true).await,
            };
            match (baseline, self.baseline(&sha256)) {
                (_, Some(b)) => {
                    return loader::link(&self.engine, &b.module, imports, Tier::Baseline)
                        .map(|_| held);
                }
                (Err(e @ (LoadError::Init(_) | LoadError::CompileTimeout(_))), None) => {
                    return Err(e);
                }
                // Winch could not compile it: Cranelift decides.
                _ => {}
            }
        }
        if !self.cache.contains(&sha256) {
            self.compile_into_cache(&bytes, &sha256, Offer::First, &|| true)
                .await?;
        }
        match self.cache.load(&self.engine, &sha256) {
            Some(Ok(module)) => {
                loader::link(&self.engine, &module, imports, Tier::Optimized).map(|_| held)
            }
            Some(Err(e)) => Err(LoadError::Invalid(format!("{e:#}"))),
            None => Err(LoadError::Compiler(
                "the compiled module vanished from the cache".into(),
            )),
        }
    }

    fn refusal(&self, sha256: &str) -> Option<LoadError> {
        lock(&self.refused).get(sha256).cloned()
    }

    fn refuse(&self, sha256: &str, error: &LoadError) {
        lock(&self.refused).put(sha256.to_string(), error.clone());
    }

    fn record(&self, failure: LoadFailure) {
        self.failure_count.inc(&failure.function);
        tracing::error!(
            target: "wedge::registry",
            function = %failure.function,
            path = %failure.path.display(),
            "cannot load: {}",
            failure.message
        );
        lock(&self.failures).insert(failure.function.clone(), failure);
    }

    /// After a successful load: remembers failures of versions that are not
    /// serving, or clears the function's failure.
    fn settle(&self, name: &str, failures: Vec<LoadFailure>) {
        match failures.into_iter().last() {
            Some(f) => self.record(f),
            None => {
                lock(&self.failures).remove(name);
            }
        }
    }
}

/// A start-up failure answered with the remembered state.
fn serving_last_good(failure: LoadFailure) -> LoadFailure {
    LoadFailure {
        message: format!(
            "{}; serving the last good state remembered in store.dir",
            failure.message
        ),
        ..failure
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn function_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| valid_name(n))
        .collect();
    names.sort();
    Ok(names)
}

/// Writes `deployment.toml` for the function in `dir` through a temporary file
/// and a rename, so readers never see half a file.
pub fn write_deployment(dir: &Path, deployment: &crate::config::Deployment) -> std::io::Result<()> {
    let text = toml::to_string(deployment).map_err(std::io::Error::other)?;
    crate::fsutil::write_atomically(&dir.join("deployment.toml"), text.as_bytes())
}

/// A write to the module cache that failed.
fn cache_write_error(e: std::io::Error) -> LoadError {
    LoadError::Compiler(format!("cannot write the module cache: {e}"))
}
