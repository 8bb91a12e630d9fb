//! The functions directory: each `functions/<name>/` becomes a [`Function`] with
//! its versions compiled off the request path, and the whole becomes a routing
//! [`Snapshot`]. The catalogue is the only writer of snapshots.
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
//!
//! The [`Catalogue`]'s jobs, a file each: [`load`] reads a function's files
//! into versions; [`compiles`] claims and runs compiles, in two tiers
//! ([`tiers`]) through child processes ([`compiler`]), sharing code in a
//! fleet ([`shared`]); [`superseded`] abandons compiles nothing wants;
//! [`keep`] remembers the last good state and bounds the module cache
//! ([`cache`]); [`check`] checks an upload before it is written; [`module`]
//! holds the steps of a module's preparation, compile and link; [`watcher`]
//! turns the directory's changes into reloads.

pub mod cache;
mod check;
pub mod compiler;
mod compiles;
mod keep;
pub mod lastgood;
mod load;
pub mod module;
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
use crate::guest::engine::WasmEngine;
use crate::host::outbound::{OriginClient, Outbound};
use crate::node::function::Function;
use crate::node::snapshot::{Snapshot, Starting};
use crate::telemetry::Telemetry;
use crate::telemetry::metrics::CounterVec;
use cache::ModuleCache;
use compiler::Compiler;
use lastgood::LastGood;
use shared::SharedCode;

pub use module::LoadError;
pub use superseded::Held;
pub use tiers::Superseded;

/// The file that marks `functions/<name>/` as the fleet's (see
/// [`crate::control::fleet`]): its deployment comes from the fleet's desired state.
pub const FLEET_MARKER: &str = "fleet.json";

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
pub struct Catalogue {
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

impl Catalogue {
    /// A catalogue over `config.functions.dir`, caching compiled code in
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
    crate::util::fs::write_atomically(&dir.join("deployment.toml"), text.as_bytes())
}

/// A write to the module cache that failed.
fn cache_write_error(e: std::io::Error) -> LoadError {
    LoadError::Compiler(format!("cannot write the module cache: {e}"))
}
