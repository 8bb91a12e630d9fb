//! The functions directory: each `functions/<name>/` becomes a [`Function`] with the
//! versions its deployment serves, compiled off the request path.

pub mod loader;
mod natural;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{
    Config, ConfigError, DEFAULT_MAX_RESPONSE, DEFAULT_MEMORY, Deployment, FunctionConfig,
};
use crate::engine::WasmEngine;
use crate::router::{Snapshot, normalize_route};

pub use loader::{Compiled, Import, LoadError};
pub use natural::natural_cmp;

/// A function as it serves: its route, limits and the versions its deployment names.
pub struct Function {
    /// Directory name under `functions/`.
    pub name: Arc<str>,
    /// Normalized path prefix.
    pub route: String,
    /// Host the route is limited to, if any.
    pub host: Option<String>,
    /// Limits and environment for every instance.
    pub settings: Settings,
    /// Which versions take traffic.
    pub deployment: Deployment,
    /// The stable version, when it compiled.
    pub stable: Option<Arc<Version>>,
    /// Every `.wasm` label in the directory, in natural order.
    pub labels: Vec<String>,
    /// Why the stable version is not serving, when it is not.
    pub load_error: Option<String>,
}

/// What every instance of a function runs under.
pub struct Settings {
    /// Wall-clock limit per request.
    pub timeout: Duration,
    /// Linear memory cap per instance, bytes.
    pub memory: usize,
    /// Cap on stdout, bytes.
    pub max_response: usize,
    /// Stores the function may open.
    pub kv: Arc<[String]>,
    /// Static environment, in file order.
    pub env: Vec<(String, String)>,
}

/// One compiled `<label>.wasm`.
pub struct Version {
    /// The file stem.
    pub label: Arc<str>,
    /// sha256 of the bytes.
    pub sha256: String,
    /// The first 12 hex digits of the hash, for logs.
    pub short_sha: Arc<str>,
    /// Size of the file in bytes.
    pub size: u64,
    /// The module, ready to instantiate.
    pub compiled: Compiled,
}

/// A function directory that could not be turned into a [`Function`] at all.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// The function's name.
    pub function: String,
    /// The file at fault.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Loads everything under the functions directory. Blocking and CPU-heavy: run it
/// on a blocking thread.
pub fn load_all(engine: &WasmEngine, config: &Config) -> (Snapshot, Vec<LoadFailure>) {
    let dir = &config.functions.dir;
    let mut failures = Vec::new();
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_name(n))
            .collect(),
        Err(e) => {
            failures.push(LoadFailure {
                function: String::new(),
                path: dir.clone(),
                message: format!("cannot read the functions directory: {e}"),
            });
            Vec::new()
        }
    };
    names.sort();
    let mut functions = Vec::with_capacity(names.len());
    for name in names {
        match load_function(engine, config, &dir.join(&name), &name) {
            Ok(f) => {
                if let Some(err) = &f.load_error {
                    failures.push(LoadFailure {
                        function: name.clone(),
                        path: dir
                            .join(&name)
                            .join(format!("{}.wasm", f.deployment.stable)),
                        message: err.clone(),
                    });
                }
                functions.push(Arc::new(f));
            }
            Err(e) => failures.push(LoadFailure {
                function: name,
                path: e.path,
                message: e.message,
            }),
        }
    }
    let (snapshot, clashes) = Snapshot::build(functions);
    failures.extend(clashes.into_iter().map(|c| LoadFailure {
        function: c.second.clone(),
        path: dir.join(&c.second).join("function.toml"),
        message: c.to_string(),
    }));
    (snapshot, failures)
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

fn load_function(
    engine: &WasmEngine,
    config: &Config,
    dir: &Path,
    name: &str,
) -> Result<Function, ConfigError> {
    let fconfig =
        read_optional(&dir.join("function.toml"), FunctionConfig::parse)?.unwrap_or_default();
    let labels = version_labels(dir)?;
    let deployment = match read_optional(&dir.join("deployment.toml"), Deployment::parse)? {
        Some(d) => d,
        None => Deployment {
            stable: labels
                .last()
                .cloned()
                .ok_or_else(|| ConfigError::new(dir, "no <version>.wasm file"))?,
            canary: None,
            canary_percent: 0,
        },
    };
    let settings = Settings {
        timeout: fconfig.timeout.unwrap_or(config.server.request_timeout).0,
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
    let (stable, load_error) = if labels.contains(&deployment.stable) {
        match load_version(engine, dir, &deployment.stable) {
            Ok(v) => (Some(Arc::new(v)), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (
            None,
            Some(format!(
                "deployment names stable `{}` but there is no {}.wasm",
                deployment.stable, deployment.stable
            )),
        )
    };
    Ok(Function {
        name: name.into(),
        route: normalize_route(fconfig.route.as_deref().unwrap_or(&format!("/{name}"))),
        host: fconfig.host.clone(),
        settings,
        deployment,
        stable,
        labels,
        load_error,
    })
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

/// Reads, hashes and compiles `<label>.wasm`.
pub fn load_version(engine: &WasmEngine, dir: &Path, label: &str) -> Result<Version, String> {
    let path = dir.join(format!("{label}.wasm"));
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let sha256 = loader::sha256_hex(&bytes);
    let compiled = loader::compile(engine, &bytes).map_err(|e| e.to_string())?;
    Ok(Version {
        label: label.into(),
        short_sha: sha256[..12].into(),
        sha256,
        size: bytes.len() as u64,
        compiled,
    })
}
