//! The files an operator writes: `wedge.toml`, `function.toml` and `deployment.toml`.
//!
//! Every key has a default and unknown keys are refused with the key's name, so a
//! typo never silently falls back to a default.

mod cluster;
mod function;
pub mod origins;
mod outbound;
mod server;
mod store;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use cluster::ClusterConfig;
pub use function::{
    AutoRollback, DEFAULT_MAX_RESPONSE, DEFAULT_MEMORY, DEFAULT_STREAM_IDLE, Deployment,
    FunctionConfig, MAX_MEMORY, RolloutConfig, validate_route,
};
pub use outbound::OutboundConfig;
pub use server::{MAX_WORKERS, PerIpConfig, ServerConfig, TlsConfig};
pub use store::{Durability, EscrowConfig, StoreBackend, StoreConfig};
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

/// `<section>.<key> must be positive` for the first of `durations` that is zero.
fn first_zero(section: &str, durations: &[(&str, HumanDuration)]) -> Option<String> {
    durations
        .iter()
        .find(|(_, d)| d.0.is_zero())
        .map(|(key, _)| format!("{section}.{key} must be positive"))
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
    /// The fleet this node belongs to, if any.
    pub cluster: ClusterConfig,
    /// Handlers' calls to their origins.
    pub outbound: OutboundConfig,
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

/// `[functions]`: the watched directory that is the single source of truth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionsConfig {
    /// One sub-directory per function; relative paths are relative to `wedge.toml`.
    pub dir: PathBuf,
    /// Larger modules are refused at load and at upload, before any compiling.
    pub max_module_size: ByteSize,
    /// A compile that takes longer is abandoned and counted as a load failure.
    pub compile_timeout: HumanDuration,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            dir: "functions".into(),
            max_module_size: ByteSize(64 << 20),
            compile_timeout: HumanDuration(Duration::from_secs(60)),
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
        if !config.outbound.ca_file.as_os_str().is_empty() {
            config.outbound.ca_file = base.join(&config.outbound.ca_file);
        }
        if let Some(tls) = &mut config.server.tls {
            tls.cert = base.join(&tls.cert);
            tls.key = base.join(&tls.key);
        }
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let problem = self
            .server
            .problem()
            .or_else(|| self.cluster.problem())
            .or_else(|| self.store.problem(&self.cluster))
            .or_else(|| self.outbound.problem());
        if let Some(problem) = problem {
            return Err(ConfigError::new(path, problem));
        }
        if self.functions.compile_timeout.0.is_zero() {
            return Err(ConfigError::new(
                path,
                "functions.compile_timeout must be positive",
            ));
        }
        if self.functions.max_module_size.0 < 1024 {
            return Err(ConfigError::new(
                path,
                "functions.max_module_size is at least 1KiB",
            ));
        }
        Ok(())
    }
}

/// Names of functions, versions and stores: usable as a directory name, in a
/// URL and as a metric label.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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
    fn connection_limits_per_ip_and_tls_parse_and_are_checked() {
        let parse = |text: &str| Config::parse(text, Path::new("w.toml"), Path::new("/etc/wedge"));
        let c = parse(
            "[server]\nmax_connections = 50\nidle_timeout = \"5s\"\n\
             [server.per_ip]\nrate = 10\nburst = 20\n\
             [server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n\
             [functions]\nmax_module_size = \"8MiB\"\ncompile_timeout = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(c.server.max_connections, 50);
        assert_eq!(c.server.idle_timeout.0, Duration::from_secs(5));
        assert_eq!(c.server.write_timeout.0, Duration::from_secs(30));
        assert_eq!(c.server.per_ip.rate, 10);
        assert_eq!(c.server.per_ip.max_connections, 256);
        let tls = c.server.tls.unwrap();
        assert_eq!(tls.cert, Path::new("/etc/wedge/tls/cert.pem"));
        assert_eq!(c.functions.max_module_size.0, 8 << 20);
        assert_eq!(c.functions.compile_timeout.0, Duration::from_secs(30));

        for (text, named) in [
            ("[server]\nwrite_timeout = \"0s\"", "server.write_timeout"),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            (
                "[server.per_ip]\nmax_connections = 0",
                "per_ip.max_connections",
            ),
            ("[server.per_ip]\nrate = 5\nburst = 0", "per_ip.burst"),
            ("[server.tls]\ncert = \"c.pem\"", "key"),
            ("[server.per_ip]\nrte = 5", "rte"),
            ("[functions]\ncompile_timeout = \"0s\"", "compile_timeout"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn the_etcd_store_needs_a_cluster() {
        let parse = |text: &str| Config::parse(text, Path::new("w.toml"), Path::new("."));
        let c = parse(
            "[store]\nbackend = \"etcd\"\n[cluster]\nnode = \"edge-1\"\netcd = [\"http://10.0.0.5:2379\"]\ntimeout = \"500ms\"\n",
        )
        .unwrap();
        assert_eq!(c.store.backend, StoreBackend::Etcd);
        assert_eq!(c.cluster.prefix, "/wedge");
        assert_eq!(c.cluster.timeout.0, Duration::from_millis(500));
        assert_eq!(parse("").unwrap().store.backend, StoreBackend::Sled);
        let etcd = "[store]\nbackend = \"etcd\"\n[cluster]\netcd = [\"http://e:2379\"]\n";
        let c = parse(&format!(
            "{etcd}[store.escrow]\ninventory = {{ block = 40 }}\n"
        ))
        .unwrap();
        let escrow = &c.store.escrow["inventory"];
        assert_eq!((escrow.block, escrow.refill_at()), (40, 20));
        assert_eq!(escrow.idle_return.0, Duration::from_secs(30));
        for (text, named) in [
            ("inventory = { block = 0 }", "block"),
            (
                "inventory = { block = 5, refill_below = 6 }",
                "refill_below",
            ),
            ("inventory = { blok = 5 }", "blok"),
            ("\"a/b\" = { block = 5 }", "not a store name"),
        ] {
            let err = parse(&format!("{etcd}[store.escrow]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
        for (text, named) in [
            ("[store]\nbackend = \"etcd\"", "[cluster] etcd"),
            ("[store]\nbackend = \"redis\"", "`redis`"),
            ("[cluster]\nnode = \"a/b\"", "cluster.node"),
            ("[cluster]\netcd = [\"10.0.0.5:2379\"]", "http://"),
            ("[cluster]\nprefix = \"wedge\"", "cluster.prefix"),
            ("[cluster]\ntimeout = \"0s\"", "cluster.timeout"),
            (
                "[store.escrow]\ninventory = { block = 10 }",
                "needs store.backend",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn the_sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/wedge.toml");
        Config::load(&path).unwrap();
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
