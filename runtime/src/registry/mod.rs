//! The functions directory: each `functions/<name>/` becomes a [`Function`] with
//! its versions compiled off the request path, and the whole becomes a routing
//! [`Snapshot`]. The registry is the only writer of snapshots.
//!
//! A change that fails (bad TOML, bad wasm, a forbidden import, a route clash, a
//! deployment naming a version that does not load) changes nothing that serves:
//! the function keeps its last good state and the error is recorded for the
//! admin API and the log.

pub mod cache;
mod function;
pub mod loader;
mod natural;
pub mod watcher;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::{
    Config, ConfigError, DEFAULT_MAX_RESPONSE, DEFAULT_MEMORY, Deployment, FunctionConfig,
};
use crate::engine::WasmEngine;
use crate::metrics::CounterVec;
use crate::router::{Snapshot, normalize_route};
use crate::telemetry::Telemetry;
use cache::ModuleCache;

pub use function::{Function, Settings, Version};
pub use loader::{Compiled, Import, LoadError};
pub use natural::natural_cmp;

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

/// How much work a load took: modules compiled, and modules taken from the cache.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoadStats {
    /// Compiled from wasm.
    pub compiled: usize,
    /// Loaded from the compiled-module cache.
    pub cached: usize,
    /// Reused from the previous snapshot: same label, same bytes.
    pub reused: usize,
}

/// Turns the functions directory into snapshots.
pub struct Registry {
    engine: Arc<WasmEngine>,
    cache: ModuleCache,
    config: Config,
    /// The latest failure per function, cleared when the function loads cleanly.
    failures: Mutex<BTreeMap<String, LoadFailure>>,
    /// Load failures since start, per function.
    failure_count: CounterVec,
    /// Hands each version its statistics.
    telemetry: Arc<Telemetry>,
}

/// One function's outcome in a reload.
enum Outcome {
    Loaded(Box<Function>, Vec<LoadFailure>),
    Removed,
    Failed(LoadFailure),
}

impl Registry {
    /// A registry over `config.functions.dir`, caching compiled code in `config.store.dir`.
    pub fn new(engine: Arc<WasmEngine>, config: Config, telemetry: Arc<Telemetry>) -> Self {
        let cache = ModuleCache::new(&config.store.dir, &engine);
        Self {
            telemetry,
            engine,
            cache,
            config,
            failures: Mutex::default(),
            failure_count: CounterVec::default(),
        }
    }

    /// The directory functions live in.
    pub fn dir(&self) -> &Path {
        &self.config.functions.dir
    }

    /// Checks that `bytes` would load as a version: imports, compilation,
    /// linking. The compiled code lands in the cache, so the reload that follows
    /// an upload does not compile again. Blocking: run it on a blocking thread.
    pub fn validate(&self, bytes: &[u8]) -> Result<(), LoadError> {
        let checked = loader::compile(&self.engine, Some(&self.cache), bytes).map(|_| ());
        self.engine.release_compiler();
        checked
    }

    /// The latest load failure of function `name`, if it has one.
    pub fn failure(&self, name: &str) -> Option<LoadFailure> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The latest load failure of each function that has one.
    pub fn failures(&self) -> BTreeMap<String, LoadFailure> {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads everything. Blocking and CPU-heavy: run it on a blocking thread.
    pub fn load_all(&self) -> (Snapshot, LoadStats) {
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
        let mut stats = LoadStats::default();
        let mut functions = Vec::new();
        for name in names {
            match self.load_function(&name, None, &mut stats) {
                Outcome::Loaded(f, failures) => {
                    self.settle(&name, failures);
                    functions.push(Arc::from(f));
                }
                Outcome::Failed(failure) => self.record(failure),
                Outcome::Removed => {}
            }
        }
        let (snapshot, clashes) = Snapshot::build(functions);
        for c in clashes {
            self.record(LoadFailure {
                function: c.second.clone(),
                path: self.dir().join(&c.second).join("function.toml"),
                message: c.to_string(),
            });
        }
        self.engine.release_compiler();
        (snapshot, stats)
    }

    /// Reloads the functions in `names` on top of `current`, keeping every other
    /// function as it is. Returns the new snapshot and the names that changed.
    pub fn reload(
        &self,
        current: &Snapshot,
        names: &[String],
    ) -> (Snapshot, Vec<String>, LoadStats) {
        let mut stats = LoadStats::default();
        let mut functions: BTreeMap<Arc<str>, Arc<Function>> = current
            .functions()
            .map(|f| (f.name.clone(), f.clone()))
            .collect();
        let mut changed = Vec::new();
        for name in names {
            let old = functions.get(name.as_str()).cloned();
            match self.load_function(name, old.as_deref(), &mut stats) {
                Outcome::Removed => {
                    if functions.remove(name.as_str()).is_some() {
                        changed.push(name.clone());
                    }
                    self.settle(name, Vec::new());
                }
                Outcome::Failed(failure) => self.record(failure),
                Outcome::Loaded(f, failures) => {
                    if old.as_ref().is_some_and(|o| o.fingerprint == f.fingerprint) {
                        // Same files, same bytes: nothing to swap.
                        self.settle(name, failures);
                        continue;
                    }
                    if let Some(other) = functions
                        .values()
                        .find(|o| *o.name != *name && o.route == f.route && o.host == f.host)
                    {
                        self.record(LoadFailure {
                            function: name.clone(),
                            path: self.dir().join(name).join("function.toml"),
                            message: format!(
                                "route `{}` is already taken by `{}`; keeping the last good state",
                                f.route, other.name
                            ),
                        });
                        continue;
                    }
                    self.settle(name, failures);
                    functions.insert(f.name.clone(), Arc::from(f));
                    changed.push(name.clone());
                }
            }
        }
        self.engine.release_compiler();
        let (snapshot, _) = Snapshot::build(functions.into_values().collect());
        (snapshot, changed, stats)
    }

    /// Load failures since start, per function.
    pub fn failure_count(&self) -> &CounterVec {
        &self.failure_count
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
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(failure.function.clone(), failure);
    }

    /// After a successful load: remembers failures of versions that are not
    /// serving, or clears the function's failure.
    fn settle(&self, name: &str, failures: Vec<LoadFailure>) {
        match failures.into_iter().last() {
            Some(f) => self.record(f),
            None => {
                self.failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(name);
            }
        }
    }

    fn load_function(&self, name: &str, old: Option<&Function>, stats: &mut LoadStats) -> Outcome {
        let dir = self.dir().join(name);
        if !dir.is_dir() {
            return Outcome::Removed;
        }
        let failed = |e: ConfigError| {
            Outcome::Failed(LoadFailure {
                function: name.to_string(),
                path: e.path,
                message: e.message,
            })
        };
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        for file in ["function.toml", "deployment.toml"] {
            std::fs::read(dir.join(file)).ok().hash(&mut fingerprint);
        }
        let fconfig = match read_optional(&dir.join("function.toml"), FunctionConfig::parse) {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => return failed(e),
        };
        let labels = match version_labels(&dir) {
            Ok(l) if l.is_empty() && old.is_none() => {
                return failed(ConfigError::new(&dir, "no <version>.wasm file"));
            }
            Ok(l) if l.is_empty() => return Outcome::Removed,
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        let pinned_deployment = match read_optional(&dir.join("deployment.toml"), Deployment::parse)
        {
            Ok(d) => d,
            Err(e) => return failed(e),
        };
        let pinned = pinned_deployment.is_some();
        let deployment = pinned_deployment.unwrap_or_else(|| Deployment {
            stable: labels.last().cloned().unwrap_or_default(),
            canary: None,
            canary_percent: 0,
            previous_stable: None,
        });
        for label in std::iter::once(&deployment.stable).chain(&deployment.canary) {
            if !labels.contains(label) {
                return failed(ConfigError::new(
                    &dir.join("deployment.toml"),
                    format!("deployment names `{label}` but there is no {label}.wasm"),
                ));
            }
        }

        let mut versions = BTreeMap::new();
        let mut failures = Vec::new();
        for label in &labels {
            let path = dir.join(format!("{label}.wasm"));
            match self.load_version(name, &path, label, old, stats) {
                Ok(v) => {
                    (label, &v.sha256).hash(&mut fingerprint);
                    versions.insert(label.clone(), v);
                }
                Err(message) => failures.push(LoadFailure {
                    function: name.to_string(),
                    path,
                    message,
                }),
            }
        }
        // A deployment whose versions do not load keeps the last good state.
        let serving = std::iter::once(&deployment.stable).chain(&deployment.canary);
        if old.is_some()
            && let Some(broken) = serving.clone().find(|l| !versions.contains_key(*l))
            && let Some(failure) = failures
                .iter()
                .find(|f| f.path.ends_with(format!("{broken}.wasm")))
        {
            return Outcome::Failed(LoadFailure {
                message: format!("{}; keeping the last good state", failure.message),
                ..failure.clone()
            });
        }

        let settings = Settings {
            timeout: fconfig
                .timeout
                .unwrap_or(self.config.server.request_timeout)
                .0,
            memory: fconfig.memory.unwrap_or(DEFAULT_MEMORY).as_usize(),
            max_response: fconfig
                .max_response
                .unwrap_or(DEFAULT_MAX_RESPONSE)
                .as_usize(),
            kv: fconfig
                .kv
                .clone()
                .unwrap_or_else(|| vec![name.to_string()])
                .into(),
            env: fconfig.env.clone().into_iter().collect(),
        };
        Outcome::Loaded(
            Box::new(Function {
                name: name.into(),
                route: normalize_route(fconfig.route.as_deref().unwrap_or(&format!("/{name}"))),
                host: fconfig.host.clone(),
                settings,
                rollout: fconfig.rollout,
                deployment,
                pinned,
                versions,
                labels,
                fingerprint: fingerprint.finish(),
            }),
            failures,
        )
    }

    /// Loads `<label>.wasm`, reusing the previous snapshot's version when the
    /// bytes are the same, and the compiled-module cache otherwise.
    fn load_version(
        &self,
        function: &str,
        path: &Path,
        label: &str,
        old: Option<&Function>,
        stats: &mut LoadStats,
    ) -> Result<Arc<Version>, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        let sha256 = loader::sha256_hex(&bytes);
        if let Some(v) = old
            .and_then(|f| f.versions.get(label))
            .filter(|v| v.sha256 == sha256)
        {
            stats.reused += 1;
            return Ok(v.clone());
        }
        let (compiled, cached) =
            loader::compile(&self.engine, Some(&self.cache), &bytes).map_err(|e| e.to_string())?;
        if cached {
            stats.cached += 1;
        } else {
            stats.compiled += 1;
        }
        Ok(Arc::new(Version {
            label: label.into(),
            short_sha: sha256[..12].into(),
            sha256,
            size: bytes.len() as u64,
            compiled,
            stats: self.telemetry.version(function, label),
        }))
    }
}

/// Function names are directory names usable in a URL and a metric label.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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

fn read_optional<T>(
    path: &Path,
    parse: fn(&str, &Path) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::new(path, format!("cannot read: {e}"))),
    }
}

/// Labels of every `<label>.wasm` in `dir`, lowest first in natural order.
fn version_labels(dir: &Path) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ConfigError::new(dir, e.to_string()))?;
    let mut labels: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".wasm").map(str::to_string))
        .filter(|l| valid_name(l))
        .collect();
    labels.sort_by(|a, b| natural_cmp(a, b).then(a.cmp(b)));
    Ok(labels)
}

/// Writes `deployment.toml` for the function in `dir` through a temporary file
/// and a rename, so readers never see half a file.
pub fn write_deployment(dir: &Path, deployment: &Deployment) -> std::io::Result<()> {
    let text = toml::to_string(deployment).map_err(std::io::Error::other)?;
    write_atomically(&dir.join("deployment.toml"), text.as_bytes())
}

/// Writes `path` through a temporary file in the same directory and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
