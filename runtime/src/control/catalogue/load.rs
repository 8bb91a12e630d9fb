//! Loading one function: its TOML files, its versions (reused, from the cache,
//! or handed back to be compiled), and the [`Function`] they make; or the
//! remembered last good state when its files do not load at start-up.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Catalogue, CompileJob, LoadError, LoadFailure, LoadStats, Outcome};
use crate::config::valid_name;
use crate::config::{
    ConfigError, DEFAULT_MAX_RESPONSE, DEFAULT_MEMORY, DEFAULT_STREAM_IDLE, Deployment,
    FunctionConfig,
};
use crate::control::catalogue::module;
use crate::guest::engine::Tier;
use crate::node::function::{Compiled, Function, Handler, Settings, Version};
use crate::node::snapshot::{Starting, normalize_route};
use crate::util::natural::natural_cmp;

/// What became of one `<label>.wasm`.
enum VersionLoad {
    Ready(Arc<Version>),
    Compiling,
    Failed(String),
}

impl Catalogue {
    pub(super) fn load_function(
        &self,
        name: &str,
        old: Option<&Function>,
        stats: &mut LoadStats,
        jobs: &mut Vec<CompileJob>,
    ) -> Outcome {
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
        let toml_path = dir.join("function.toml");
        let function_toml = match read_optional(&toml_path) {
            Ok(text) => text,
            Err(e) => return failed(e),
        };
        let deployment_path = dir.join("deployment.toml");
        let deployment_text = match read_optional(&deployment_path) {
            Ok(text) => text,
            Err(e) => return failed(e),
        };
        (&function_toml, &deployment_text).hash(&mut fingerprint);
        let fconfig = match function_toml
            .as_deref()
            .map(|t| FunctionConfig::parse(t, &toml_path))
        {
            Some(Ok(c)) => c,
            Some(Err(e)) => return failed(e),
            None => FunctionConfig::default(),
        };
        let labels = match version_labels(&dir) {
            Ok(l) if l.is_empty() && old.is_none() => {
                return failed(ConfigError::new(&dir, "no <version>.wasm file"));
            }
            Ok(l) if l.is_empty() => return Outcome::Removed,
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        let pinned = deployment_text.is_some();
        let deployment = match deployment_text
            .as_deref()
            .map(|t| Deployment::parse(t, &deployment_path))
        {
            Some(Ok(d)) => d,
            Some(Err(e)) => return failed(e),
            None => Deployment {
                stable: labels.last().cloned().unwrap_or_default(),
                canary: None,
                canary_percent: 0,
                previous_stable: None,
            },
        };
        for label in Function::serving_labels(&deployment) {
            if !labels.contains(label) {
                return failed(ConfigError::new(
                    &deployment_path,
                    format!("deployment names `{label}` but there is no {label}.wasm"),
                ));
            }
        }

        let mut versions = BTreeMap::new();
        let mut failures = Vec::new();
        let mut compiling = Vec::new();
        let jobs_before = jobs.len();
        for label in &labels {
            let path = dir.join(format!("{label}.wasm"));
            match self.load_version(name, &path, label, old, stats, jobs) {
                VersionLoad::Ready(v) => {
                    // The tier counts: optimized code replacing baseline code
                    // is a change to swap in.
                    (label, &v.sha256, v.compiled.tier == Tier::Optimized).hash(&mut fingerprint);
                    versions.insert(label.clone(), v);
                }
                VersionLoad::Compiling => compiling.push(label.clone()),
                VersionLoad::Failed(message) => failures.push(LoadFailure {
                    function: name.to_string(),
                    path,
                    message,
                }),
            }
        }
        // What the files name now: the loaded versions, and those compiling.
        let named = versions.values().map(|v| v.sha256.clone());
        let compiles = jobs[jobs_before..].iter().map(|j| j.sha256.clone());
        self.note_wanted(name, named.chain(compiles).collect());
        if Function::serving_labels(&deployment).any(|l| compiling.contains(l)) {
            return Outcome::Waiting(Starting {
                name: name.into(),
                route: route_of(name, &fconfig),
                host: fconfig.host.clone(),
            });
        }
        // A deployment whose versions do not load keeps the last good state: the
        // one serving, or at start-up the one remembered, if there is one.
        if let Some(broken) =
            Function::serving_labels(&deployment).find(|l| !versions.contains_key(*l))
            && let Some(failure) = failures
                .iter()
                .find(|f| f.path.ends_with(format!("{broken}.wasm")))
            && (old.is_some() || self.last_good.read(name).is_some())
        {
            return Outcome::Failed(LoadFailure {
                message: if old.is_some() {
                    format!("{}; keeping the last good state", failure.message)
                } else {
                    failure.message.clone()
                },
                ..failure.clone()
            });
        }
        let canary_since = match old {
            Some(o) if same_traffic(&o.deployment, &deployment) => o.canary_since,
            _ => Instant::now(),
        };
        Outcome::Loaded(
            Box::new(self.function(
                name,
                fconfig,
                function_toml,
                deployment,
                pinned,
                versions,
                labels,
                fingerprint.finish(),
                canary_since,
            )),
            failures,
        )
    }

    /// Builds a function from its parsed parts.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site per source of state, each naming every part"
    )]
    fn function(
        &self,
        name: &str,
        fconfig: FunctionConfig,
        function_toml: Option<String>,
        deployment: Deployment,
        pinned: bool,
        versions: BTreeMap<String, Arc<Version>>,
        labels: Vec<String>,
        fingerprint: u64,
        canary_since: Instant,
    ) -> Function {
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
            max_stream: fconfig.max_stream.map_or(Duration::ZERO, |d| d.0),
            stream_idle: fconfig.stream_idle.map_or(DEFAULT_STREAM_IDLE, |d| d.0),
            stream_request: fconfig.stream_request,
            kv: fconfig
                .kv
                .clone()
                .unwrap_or_else(|| vec![name.to_string()])
                .into(),
            env: fconfig.env.clone().into_iter().collect(),
            outbound: self.origin_client(name, &fconfig.outbound),
        };
        if settings.stream_request
            && versions
                .values()
                .any(|v| matches!(v.compiled.handler, Handler::Wagi(_)))
        {
            tracing::warn!(
                target: "wedge::registry",
                function = name,
                "stream_request applies to components only: this function's WAGI versions read their request bodies whole"
            );
        }
        Function {
            name: name.into(),
            route: route_of(name, &fconfig),
            host: fconfig.host.clone(),
            settings,
            rollout: fconfig.rollout,
            deployment,
            pinned,
            versions,
            labels,
            fingerprint,
            function_toml,
            from_last_good: false,
            canary_since,
            fleet: self.dir().join(name).join(super::FLEET_MARKER).exists(),
        }
    }

    /// Loads `<label>.wasm`: the previous snapshot's version when the bytes are
    /// the same, else the cache's compiled code, else a compile job.
    fn load_version(
        &self,
        function: &str,
        path: &Path,
        label: &str,
        old: Option<&Function>,
        stats: &mut LoadStats,
        jobs: &mut Vec<CompileJob>,
    ) -> VersionLoad {
        let max = self.config.functions.max_module_size.0;
        let too_large = |size| VersionLoad::Failed(LoadError::TooLarge { size, max }.to_string());
        match std::fs::metadata(path) {
            Ok(m) if m.len() > max => return too_large(m.len()),
            Ok(_) => {}
            Err(e) => return VersionLoad::Failed(format!("cannot read: {e}")),
        }
        let mut bytes = match std::fs::read(path) {
            Ok(b) if b.len() as u64 > max => return too_large(b.len() as u64),
            Ok(b) => b,
            Err(e) => return VersionLoad::Failed(format!("cannot read: {e}")),
        };
        let (sha256, size) = (module::sha256_hex(&bytes), bytes.len() as u64);
        // Baseline code is reused only until the optimized code is there.
        if let Some(v) = old
            .and_then(|f| f.versions.get(label))
            .filter(|v| v.sha256 == sha256)
            .filter(|v| v.compiled.tier == Tier::Optimized || !self.cache.contains(&sha256))
        {
            stats.reused += 1;
            return VersionLoad::Ready(v.clone());
        }
        if let Some(e) = self.refusal(&sha256) {
            return VersionLoad::Failed(e.to_string());
        }
        let imports = match module::check_imports(&bytes) {
            Ok(i) => i,
            Err(e) => {
                self.refuse(&sha256, &e);
                return VersionLoad::Failed(e.to_string());
            }
        };
        let (module, tier) = match self.cache.load(&self.engine, &sha256) {
            Some(Ok(module)) => (module, Tier::Optimized),
            Some(Err(_)) | None => {
                let baseline = self.baseline(&sha256);
                if !baseline.as_ref().is_some_and(|b| b.settled) {
                    // With baseline code this function also waits for the
                    // optimized code, to be reloaded onto it.
                    jobs.push(CompileJob {
                        function: function.to_string(),
                        path: path.to_path_buf(),
                        sha256: sha256.clone(),
                        bytes: std::mem::take(&mut bytes).into(),
                    });
                }
                match baseline {
                    Some(b) => (b.module, Tier::Baseline),
                    None => return VersionLoad::Compiling,
                }
            }
        };
        match module::link(&self.engine, &module, imports, tier) {
            Ok(compiled) => {
                stats.cached += 1;
                VersionLoad::Ready(self.version(function, label, sha256, size, compiled))
            }
            Err(e) => {
                self.refuse(&sha256, &e);
                VersionLoad::Failed(e.to_string())
            }
        }
    }

    /// A loaded version, with the statistics its label has had since start.
    fn version(
        &self,
        function: &str,
        label: &str,
        sha256: String,
        size: u64,
        compiled: Compiled,
    ) -> Arc<Version> {
        Arc::new(Version {
            label: label.into(),
            short_sha: sha256.get(..12).unwrap_or(&sha256).into(),
            size,
            compiled,
            stats: self.telemetry.version(function, label),
            sha256,
        })
    }

    /// Function `name` as its remembered last good state, when the record and
    /// the compiled code of its serving versions are there.
    pub(super) fn last_good_state(&self, name: &str) -> Option<Box<Function>> {
        let record = self.last_good.read(name)?;
        let path = self.dir().join(name).join("function.toml");
        let fconfig = match record.function_toml.as_deref() {
            Some(text) => FunctionConfig::parse(text, &path).ok()?,
            None => FunctionConfig::default(),
        };
        let mut versions = BTreeMap::new();
        for v in &record.versions {
            let (module, tier) = match self.cache.load(&self.engine, &v.sha256) {
                Some(Ok(module)) => (module, Tier::Optimized),
                _ => match self.baseline(&v.sha256) {
                    Some(b) => (b.module, Tier::Baseline),
                    None => continue,
                },
            };
            let Ok(compiled) = module::link(&self.engine, &module, Vec::new(), tier) else {
                continue;
            };
            versions.insert(
                v.label.clone(),
                self.version(name, &v.label, v.sha256.clone(), v.size, compiled),
            );
        }
        if !Function::serving_labels(&record.deployment).all(|l| versions.contains_key(l)) {
            return None;
        }
        let labels = versions.keys().cloned().collect();
        let mut f = self.function(
            name,
            fconfig,
            record.function_toml,
            record.deployment,
            record.pinned,
            versions,
            labels,
            0,
            Instant::now(),
        );
        f.from_last_good = true;
        Some(Box::new(f))
    }
}

/// Whether two deployments send the same traffic to the same versions.
fn same_traffic(a: &Deployment, b: &Deployment) -> bool {
    a.stable == b.stable && a.canary == b.canary && a.canary_percent == b.canary_percent
}

/// A file's text, or `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
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

/// A function's route: its `function.toml`'s, or `/<name>`, normalized.
fn route_of(name: &str, fconfig: &FunctionConfig) -> String {
    normalize_route(fconfig.route.as_deref().unwrap_or(&format!("/{name}")))
}
