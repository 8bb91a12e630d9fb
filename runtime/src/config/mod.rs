//! The files an operator writes: `wedge.toml`, `function.toml` and `deployment.toml`.
//!
//! Every key has a default and unknown keys are refused with the key's name, so a
//! typo never silently falls back to a default.

mod units;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use units::{ByteSize, HumanDuration};

/// A configuration file that could not be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ConfigError {
    /// The file at fault, so the operator knows where to look.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: &Path, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// A TOML error on one line, with its position: `line 3, column 1: unknown field ...`.
    fn toml(path: &Path, text: &str, error: &toml::de::Error) -> Self {
        let message = error.message().trim().replace('\n', " ");
        let Some(span) = error.span() else {
            return Self::new(path, message);
        };
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        Self::new(path, format!("line {line}, column {column}: {message}"))
    }
}

/// Parses TOML text, with errors on one line.
fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::toml(path, text, &e))
}

/// `wedge.toml`: the node-wide settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The public HTTP listener and its limits.
    pub server: ServerConfig,
    /// The operator's API.
    pub admin: AdminConfig,
    /// Where durable state lives.
    pub store: StoreConfig,
    /// Where handler modules are read from.
    pub functions: FunctionsConfig,
}

/// `[server]`: the public listener and the limits that protect it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the public listener binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Copied into every log line and metric so a fleet's logs can be told apart.
    pub region: String,
    /// Per-request wall-clock limit for functions that set no `timeout` of their own.
    pub request_timeout: HumanDuration,
    /// Larger request bodies are refused with 413 before they are read.
    pub max_request_body: ByteSize,
    /// Request line plus headers; beyond this a request gets 431.
    pub max_header_bytes: ByteSize,
    /// Requests served at once; beyond this a request gets 503 at once rather than a queue.
    pub max_inflight: u32,
    /// A connection that has not sent a complete request head within this time is closed.
    pub header_read_timeout: HumanDuration,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    pub shutdown_timeout: HumanDuration,
    /// Serving threads, each with its own connections; 0 means one per core.
    pub workers: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            region: "local".into(),
            request_timeout: HumanDuration(Duration::from_secs(5)),
            max_request_body: ByteSize(1 << 20),
            max_header_bytes: ByteSize(16 << 10),
            max_inflight: 1000,
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            shutdown_timeout: HumanDuration(Duration::from_secs(30)),
            workers: 0,
        }
    }
}

impl ServerConfig {
    /// The serving threads to start: `workers`, or one per core.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }
}

/// `[admin]`: the operator's API listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// File holding the bearer token; required when `listen` is not a loopback address.
    pub token_file: PathBuf,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".parse().expect("valid address"),
            token_file: PathBuf::new(),
        }
    }
}

/// How durable a key-value write is before the guest sees success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// On disk before the guest sees success.
    Sync,
    /// Flushed every `flush_interval`.
    Periodic,
}

/// `[store]`: the sled database, the compiled-module cache and wedge's own state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory for all durable state; relative paths are relative to `wedge.toml`.
    pub dir: PathBuf,
    /// When a write counts as done.
    pub durability: Durability,
    /// Flush period for `durability = "periodic"`.
    pub flush_interval: HumanDuration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            dir: "data".into(),
            durability: Durability::Sync,
            flush_interval: HumanDuration(Duration::from_millis(100)),
        }
    }
}

/// `[functions]`: the watched directory that is the single source of truth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionsConfig {
    /// One sub-directory per function; relative paths are relative to `wedge.toml`.
    pub dir: PathBuf,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            dir: "functions".into(),
        }
    }
}

impl Config {
    /// Reads `wedge.toml`. Relative directories are resolved against the file's own
    /// directory, so `wedge serve -c /etc/wedge/wedge.toml` works from anywhere.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, format!("cannot read: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parses `wedge.toml` text; `base` anchors relative directories.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = parse_toml(text, path)?;
        config.store.dir = base.join(&config.store.dir);
        config.functions.dir = base.join(&config.functions.dir);
        if !config.admin.token_file.as_os_str().is_empty() {
            config.admin.token_file = base.join(&config.admin.token_file);
        }
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_inflight == 0 {
            return Err(ConfigError::new(
                path,
                "server.max_inflight must be at least 1",
            ));
        }
        if s.max_inflight > 100_000 {
            return Err(ConfigError::new(
                path,
                "server.max_inflight is at most 100000",
            ));
        }
        if s.workers > MAX_WORKERS {
            return Err(ConfigError::new(
                path,
                format!("server.workers is at most {MAX_WORKERS}"),
            ));
        }
        if s.request_timeout.0.is_zero() {
            return Err(ConfigError::new(
                path,
                "server.request_timeout must be positive",
            ));
        }
        if s.max_header_bytes.0 < 1024 {
            return Err(ConfigError::new(
                path,
                "server.max_header_bytes is at least 1KiB",
            ));
        }
        if s.header_read_timeout.0.is_zero() {
            return Err(ConfigError::new(
                path,
                "server.header_read_timeout must be positive",
            ));
        }
        Ok(())
    }
}

/// `function.toml`: how one function is served. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionConfig {
    /// Path prefix, matched on segment boundaries; defaults to `/<name>`.
    pub route: Option<String>,
    /// Serve only requests for this host (the `Host` header without its port).
    pub host: Option<String>,
    /// Wall-clock limit per request; defaults to `server.request_timeout`.
    pub timeout: Option<HumanDuration>,
    /// Linear memory cap per instance.
    pub memory: Option<ByteSize>,
    /// Largest response (headers and body) the guest may write.
    pub max_response: Option<ByteSize>,
    /// Key-value stores this function may open; defaults to one named after the function.
    pub kv: Option<Vec<String>>,
    /// Static environment, set before the request variables (which win).
    pub env: BTreeMap<String, String>,
    /// Gray-release behaviour.
    pub rollout: RolloutConfig,
}

/// `[rollout]` in `function.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// `header:<name>` or `cookie:<name>`: requests with the same key see the same version.
    pub sticky: Option<String>,
    /// Take the canary out of traffic when its error rate climbs.
    pub auto_rollback: Option<AutoRollback>,
    /// A canary that stays healthy this long becomes stable on its own.
    pub promote_after: Option<HumanDuration>,
}

/// `auto_rollback` in `[rollout]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRollback {
    /// Error share (5xx, traps, timeouts) above which the canary is rolled back.
    pub max_error_rate: f64,
    /// Requests the canary must have served in the window before it can be judged.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// The sliding window the rate is measured over.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
}

fn default_min_requests() -> u64 {
    50
}

fn default_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// Defaults that apply to a function when its `function.toml` is silent.
pub const DEFAULT_MEMORY: ByteSize = ByteSize(64 << 20);
/// Default cap on what a guest may write to stdout.
pub const DEFAULT_MAX_RESPONSE: ByteSize = ByteSize(16 << 20);
/// The largest `memory` a function may ask for.
pub const MAX_MEMORY: ByteSize = ByteSize(4 << 30);
/// Most serving threads `server.workers` may ask for.
pub const MAX_WORKERS: u32 = 1024;

impl FunctionConfig {
    /// Parses `function.toml` text for function `name` and checks its values.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: FunctionConfig = parse_toml(text, path)?;
        if let Some(route) = &config.route {
            validate_route(route).map_err(|m| ConfigError::new(path, m))?;
        }
        if let Some(memory) = config.memory
            && (memory.0 < 64 << 10 || memory > MAX_MEMORY)
        {
            return Err(ConfigError::new(
                path,
                "memory must be between 64KiB and 4GiB",
            ));
        }
        if let Some(timeout) = config.timeout
            && timeout.0.is_zero()
        {
            return Err(ConfigError::new(path, "timeout must be positive"));
        }
        for key in config.env.keys() {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(ConfigError::new(
                    path,
                    format!("env key `{key}` is not a valid name"),
                ));
            }
        }
        if config.env.values().any(|v| v.contains('\0')) {
            return Err(ConfigError::new(path, "env values cannot contain NUL"));
        }
        if let Some(rb) = &config.rollout.auto_rollback
            && !(0.0..=1.0).contains(&rb.max_error_rate)
        {
            return Err(ConfigError::new(
                path,
                "max_error_rate must be between 0 and 1",
            ));
        }
        if let Some(sticky) = &config.rollout.sticky {
            validate_sticky(sticky).map_err(|m| ConfigError::new(path, m))?;
        }
        Ok(config)
    }
}

/// Routes are absolute paths without query or fragment.
pub fn validate_route(route: &str) -> Result<(), String> {
    if !route.starts_with('/') {
        return Err(format!("route `{route}` must start with `/`"));
    }
    if route.contains(['?', '#']) || route.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "route `{route}` may not contain `?`, `#` or white space"
        ));
    }
    if route.contains("//") {
        return Err(format!("route `{route}` has an empty segment"));
    }
    Ok(())
}

fn validate_sticky(sticky: &str) -> Result<(), String> {
    match sticky.split_once(':') {
        Some(("header" | "cookie", name)) if !name.is_empty() => Ok(()),
        _ => Err(format!(
            "sticky `{sticky}` must be `header:<name>` or `cookie:<name>`"
        )),
    }
}

/// `deployment.toml`: which versions take traffic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The version that takes the traffic the canary does not.
    pub stable: String,
    /// A version taking `canary_percent` of traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<String>,
    /// Share of traffic for the canary, 0 to 100.
    #[serde(default)]
    pub canary_percent: u8,
    /// The stable version before the last promote, for a rollback without a canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_stable: Option<String>,
}

impl Deployment {
    /// Parses `deployment.toml` text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let d: Deployment = parse_toml(text, path)?;
        if d.canary_percent > 100 {
            return Err(ConfigError::new(
                path,
                "canary_percent must be between 0 and 100",
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_every_key() {
        let c = Config::parse("", Path::new("wedge.toml"), Path::new("/srv")).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.max_inflight, 1000);
        assert_eq!(c.server.max_header_bytes.0, 16 << 10);
        assert_eq!(c.functions.dir, Path::new("/srv/functions"));
        assert_eq!(c.store.durability, Durability::Sync);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse(
            "[server]\nlisten_on = \"x\"\n",
            Path::new("w.toml"),
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
        assert!(err.to_string().contains("line 2, column 1"), "{err}");
        assert!(!err.to_string().contains('\n'), "one line: {err}");
        let err = FunctionConfig::parse("rout = \"/x\"", Path::new("function.toml")).unwrap_err();
        assert!(err.to_string().contains("rout"), "{err}");
    }

    #[test]
    fn function_config_values_are_checked() {
        let p = Path::new("function.toml");
        assert!(FunctionConfig::parse("route = \"nope\"", p).is_err());
        assert!(FunctionConfig::parse("memory = \"1KiB\"", p).is_err());
        assert!(FunctionConfig::parse("[rollout]\nsticky = \"ip\"", p).is_err());
        let ok = FunctionConfig::parse(
            "route = \"/api\"\ntimeout = \"250ms\"\nmemory = \"16MiB\"\nenv = { A = \"1\" }\n[rollout]\nsticky = \"header:x-user-id\"\n",
            p,
        )
        .unwrap();
        assert_eq!(ok.route.as_deref(), Some("/api"));
        assert_eq!(ok.memory, Some(ByteSize(16 << 20)));
        assert_eq!(ok.env["A"], "1");
    }

    #[test]
    fn workers_default_to_one_per_core_and_are_bounded() {
        let parse = |text: &str| Config::parse(text, Path::new("w.toml"), Path::new("."));
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(parse("").unwrap().server.worker_threads(), cores);
        assert_eq!(
            parse("[server]\nworkers = 3")
                .unwrap()
                .server
                .worker_threads(),
            3
        );
        let err = parse("[server]\nworkers = 5000").unwrap_err();
        assert!(
            err.to_string().contains("server.workers is at most 1024"),
            "{err}"
        );
    }

    #[test]
    fn deployment_percent_is_bounded() {
        let p = Path::new("deployment.toml");
        assert!(
            Deployment::parse("stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 101", p).is_err()
        );
        let d = Deployment::parse("stable = \"v1\"", p).unwrap();
        assert_eq!(d.canary, None);
    }
}
