//! A function as it serves: its route, limits, deployment and compiled
//! versions. The registry builds these; the router, rollouts and instances
//! read them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{InstancePre, ModuleExport};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::config::{Deployment, RolloutConfig};
use crate::guest::code::Format;
use crate::guest::engine::{Host, Tier};
use crate::host::outbound::OriginClient;
use crate::host::wasi_http::ProxyHost;
use crate::telemetry::VersionStats;

/// One `functions/<name>/` directory, loaded. Immutable: a change builds a new one.
pub struct Function {
    /// Directory name under `functions/`.
    pub name: Arc<str>,
    /// Normalized path prefix.
    pub route: String,
    /// Host the route is limited to, if any.
    pub host: Option<String>,
    /// Limits and environment for every instance.
    pub settings: Settings,
    /// Gray-release behaviour from `[rollout]`.
    pub rollout: RolloutConfig,
    /// Which versions take traffic: `deployment.toml`, or the highest label.
    pub deployment: Deployment,
    /// Whether `deployment.toml` exists (an upload must then not move traffic).
    pub pinned: bool,
    /// Versions that compiled, by label.
    pub versions: BTreeMap<String, Arc<Version>>,
    /// Every `<label>.wasm` in the directory, lowest first in natural order.
    pub labels: Vec<String>,
    /// A hash of everything the function was loaded from (its TOML files and
    /// each version's label and sha256): equal fingerprints, nothing changed.
    pub fingerprint: u64,
    /// The text of `function.toml`, remembered with the last good state.
    pub function_toml: Option<String>,
    /// Served from the remembered last good state because its files did not
    /// load at start-up.
    pub from_last_good: bool,
    /// When the current deployment took effect: the canary's clock for
    /// `promote_after`. Any change of stable, canary or share restarts it.
    pub canary_since: Instant,
    /// Managed by the fleet: its deployment changes only through the fleet's
    /// desired state, and the fleet judges its canary.
    pub fleet: bool,
}

impl Function {
    /// The stable version, when it compiled.
    pub fn stable(&self) -> Option<&Arc<Version>> {
        self.versions.get(&self.deployment.stable)
    }

    /// The canary version, when there is one and it compiled.
    pub fn canary(&self) -> Option<&Arc<Version>> {
        self.deployment
            .canary
            .as_ref()
            .and_then(|label| self.versions.get(label))
    }

    /// The labels a deployment names, the stable and the canary whatever its
    /// share: all of them must load for the deployment to serve.
    pub fn serving_labels(deployment: &Deployment) -> impl Iterator<Item = &String> {
        std::iter::once(&deployment.stable).chain(deployment.canary.as_ref())
    }
}

/// What every instance of a function runs under.
pub struct Settings {
    /// Wall-clock limit per request.
    pub timeout: Duration,
    /// Linear memory cap per instance, bytes.
    pub memory: usize,
    /// Cap on the response, bytes: stdout for a WAGI module, the body for a
    /// component, streamed or not.
    pub max_response: usize,
    /// How long a streamed body may go on after its head; zero: until `timeout`.
    pub max_stream: Duration,
    /// Longest wait for a streamed body's next bytes.
    pub stream_idle: Duration,
    /// A component reads its request body as it arrives.
    pub stream_request: bool,
    /// Stores the function may open.
    pub kv: Arc<[String]>,
    /// Static environment, in file order.
    pub env: Arc<[(String, String)]>,
    /// The function's way to its origins; none with an empty `outbound` list.
    pub outbound: Option<Arc<OriginClient>>,
}

/// One compiled `<label>.wasm`. Shared between snapshots while its bytes are
/// unchanged, so its statistics survive reloads.
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
    /// What its requests did; shared with every reload of the same label.
    pub stats: Arc<VersionStats>,
}

/// A compiled handler, linked against the host and ready to instantiate per request.
pub struct Compiled {
    /// The linked code, in its format.
    pub handler: Handler,
    /// The module's imports.
    pub imports: Vec<Import>,
    /// The compiler that made its code.
    pub tier: Tier,
}

/// A compiled handler of either format, pre-linked: per request only a
/// fresh `Store` is made.
pub enum Handler {
    /// A WAGI core module.
    Wagi(WagiCode),
    /// A component exporting `wasi:http/incoming-handler`.
    Http(Arc<ProxyPre<ProxyHost>>),
}

impl Handler {
    /// The format the handler is of.
    pub fn format(&self) -> Format {
        match self {
            Self::Wagi(_) => Format::Wagi,
            Self::Http(_) => Format::Http,
        }
    }
}

/// A WAGI module, pre-linked.
pub struct WagiCode {
    /// Pre-linked instance.
    pub pre: Arc<InstancePre<Host>>,
    /// Where the entry point lives (`_start`, or a reactor's `wedge_handle`),
    /// resolved once instead of by name per request.
    pub entry: ModuleExport,
    /// Where the exported `memory` lives, if the module exports one.
    pub memory: Option<ModuleExport>,
}

/// One import of a module, as `wedge check` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Import module (`wasi_snapshot_preview1`); empty for a component's.
    pub module: String,
    /// Field name (`fd_write`), or a component's interface
    /// (`wasi:http/types@0.2.6`).
    pub name: String,
    /// `func`, `memory`, `table`, `global` or `tag`; `instance` for a
    /// component's interface.
    pub kind: &'static str,
}
