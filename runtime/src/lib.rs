//! wedge: an edge-function runtime. It serves HTTP by running each request in a
//! fresh, sandboxed wasmtime instance of a handler: a `wasm32-wasip1` module
//! spoken to in WAGI (CGI over WASI), or a component exporting
//! `wasi:http/incoming-handler`.
//!
//! # Layout
//!
//! One folder per part of the node, from the top layer down. A module uses
//! only modules of its own layer and the layers below it, and `cargo xtask
//! layout` fails CI on an upward use, on a cycle (between folders or inside
//! one) and on a name here that is no module.
//!
//! - [`admin`]: the admin API on its own listener, its typed requests and
//!   responses ([`admin::api`]) and its client ([`admin::client`]), behind
//!   `wedge deploy`, `status` and friends.
//! - [`control`]: the control plane: the one control loop that reloads and
//!   swaps, the channel every change comes through ([`control::source`]), the
//!   functions catalogue and its compiles ([`control::catalogue`]), fleet
//!   rollouts ([`control::fleet`]) and the canary rule ([`control::canary`]).
//! - [`request`]: the request path: routing, version choice
//!   ([`request::rollout`]), the run of a guest in either format
//!   ([`request::run_wagi`], [`request::run_component`]), the response and
//!   the access log ([`request::handler`]).
//! - [`edge`]: the listener, the serving threads, connections and their
//!   timeouts, TLS, per-address limits and request checks; it hands each
//!   request to the request path through [`edge::Serve`].
//! - [`node`]: the node's state below both planes: the routing snapshot in
//!   force, functions as they serve, telemetry, the failure signal.
//! - [`guest`]: a handler's code: the wasmtime engines and their linkers,
//!   both formats' compiled code, reactor snapshots.
//! - [`host`]: what a guest imports: the stores ([`host::store`]) and
//!   outbound calls ([`host::outbound`]), each with its wasip1 and its WIT
//!   binding side by side, WASI for both formats, and the `wedge` module's ABI.
//! - [`store`]: the key-value backends: sled (group commit, recovery from
//!   storage errors) and etcd (transactions with op records, escrow blocks).
//! - [`telemetry`]: per-version counts and histograms, connections, metric
//!   types ([`telemetry::metrics`]) and the log ([`telemetry::log`]).
//! - [`config`], [`util`]: `wedge.toml`, `function.toml` and
//!   `deployment.toml`; small helpers (crash-safe writes, clocks).
//!
//! A request flows [`edge::server`] → [`edge::conn`] → [`request::handler`]
//! → the snapshot in [`node::state`] → [`request::rollout`] →
//! [`request::run_wagi`] or [`request::run_component`] → response. A change
//! flows from a source ([`control::catalogue::watcher`], an admin call, the
//! fleet) through [`control::source`] into the control loop, which reloads
//! through [`control::catalogue`] and swaps the snapshot in [`node::state`].

pub mod admin;
pub mod config;
pub mod control;
pub mod edge;
pub mod guest;
pub mod host;
pub mod node;
pub mod request;
pub mod store;
pub mod telemetry;
pub mod util;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{Config, StoreBackend};
use crate::control::Control;
use crate::control::catalogue::Catalogue;
use crate::edge::conn::ConnSettings;
use crate::edge::peers::Peers;
use crate::edge::server::ListenSettings;
use crate::guest::engine::WasmEngine;
use crate::host::outbound::Outbound;
use crate::node::NodeState;
use crate::node::snapshot::Snapshot;
use crate::request::handler::{App, Limits};
use crate::store::Backend;
use crate::store::etcd::EtcdBackend;
use crate::store::sled::SledBackend;
use crate::telemetry::Telemetry;

/// File descriptors kept back from `server.max_connections` for everything else
/// a node opens: the admin API, the store, module files, compiler pipes.
const RESERVED_FDS: u64 = 256;

/// Connections the admin API serves at once; more wait in its backlog.
pub const ADMIN_CONNECTIONS: usize = 64;

/// Loads every function, then serves `listener` until `shutdown` resolves and the
/// in-flight requests have finished. `compiler` is the `wedge` binary, which
/// compiles modules as `wedge compile-module`.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    compiler: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let token = match config.admin.token_file.as_os_str().is_empty() {
        true => None,
        false => Some(admin::Token::from_file(&config.admin.token_file)?),
    };
    if token.is_none() && !config.admin.listen.ip().is_loopback() {
        anyhow::bail!(
            "admin.listen {} is not a loopback address: set admin.token_file to protect the admin API",
            config.admin.listen
        );
    }
    let max_connections = connection_budget(config.server.max_connections);
    let tls = match &config.server.tls {
        Some(tls) => Some(edge::tls::Tls::start(tls).context("cannot set up [server.tls]")?),
        None => None,
    };
    let admin_listener = TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", config.admin.listen))?;
    let engine = Arc::new(WasmEngine::new(config.server.max_inflight)?);
    std::fs::create_dir_all(&config.functions.dir).with_context(|| {
        format!(
            "cannot create functions directory {}",
            config.functions.dir.display()
        )
    })?;
    let started = std::time::Instant::now();
    // Watch before loading, so nothing written during the load is missed.
    let (changes, control_loop) = control::source::channel();
    let _watcher =
        control::catalogue::watcher::watch(config.functions.dir.clone(), changes.clone())
            .with_context(|| format!("cannot watch {}", config.functions.dir.display()))?;
    let telemetry = Arc::new(Telemetry::default());
    let outbound = Outbound::new(&config.outbound).context("cannot set up [outbound]")?;
    let catalogue = Arc::new(Catalogue::new(
        engine.clone(),
        config.clone(),
        telemetry.clone(),
        outbound,
        compiler,
    ));
    let kv = open_store(&config).await?;
    let node = Arc::new(NodeState::new(Snapshot::default(), telemetry, kv.clone()));
    let app = Arc::new(App::new(
        node.clone(),
        engine,
        Limits::from_config(&config.server),
        Arc::new(Peers::new(&config.server.per_ip)),
    ));
    let fleet = match config.cluster.fleet() {
        false => None,
        true => {
            let fleet = control::fleet::Fleet::connect(
                &config.cluster,
                config.functions.dir.clone(),
                changes.clone(),
            )
            .await
            .context("cannot set up fleet rollouts ([cluster] registry)")?;
            if config.cluster.share_compiled {
                catalogue.share_compiled(fleet.clone());
            }
            tokio::spawn(fleet.clone().follow_forever());
            tokio::spawn(fleet.clone().judge_forever());
            tokio::spawn(
                fleet
                    .clone()
                    .report_forever(node.clone(), config.server.region.clone()),
            );
            tracing::info!(
                target: "wedge::fleet",
                registry = %config.cluster.registry,
                node = %config.cluster.node,
                "following the fleet's desired state"
            );
            Some(fleet)
        }
    };
    let control = Arc::new(Control::new(catalogue, node, changes));
    // The control loop's first reload: every function, from what is
    // compiled. What the cache lacked compiles now, while the rest serves:
    // each function goes live when its baseline code is ready.
    let loaded = control.start().await?;
    tracing::info!(
        target: "wedge::registry",
        functions = loaded.functions,
        compiling = loaded.compiling,
        cached = loaded.cached,
        failures = control.catalogue().failures().len(),
        load_ms = started.elapsed().as_millis() as u64,
        "functions loaded"
    );
    tokio::spawn(control.clone().run_reloads(control_loop));
    tokio::spawn(control.clone().watch_canaries());
    tracing::info!(
        target: "wedge::admin",
        addr = %admin_listener.local_addr()?,
        auth = token.is_some(),
        "admin ready"
    );
    tokio::spawn(Arc::new(admin::Admin::new(control.clone(), fleet, token)).serve(admin_listener));
    tracing::info!(
        target: "wedge::server",
        addr = %listener.local_addr()?,
        functions = loaded.functions,
        tls = tls.is_some(),
        max_connections,
        load_ms = started.elapsed().as_millis() as u64,
        "wedge ready"
    );
    edge::server::serve(
        listener,
        app,
        ListenSettings {
            max_connections,
            shutdown_timeout: config.server.shutdown_timeout.0,
            workers: config.server.worker_threads(),
        },
        ConnSettings::from_config(&config.server, tls.as_ref().map(|t| t.acceptor().clone())),
        shutdown,
    )
    .await
    .context("cannot start the serving threads")?;
    // In-flight requests are done: make every write durable before exiting,
    // whatever the durability setting.
    kv.close()
        .await
        .context("cannot close the key-value store")?;
    tracing::info!(target: "wedge::kv", "key-value store closed");
    Ok(())
}

/// Opens the key-value backend `[store] backend` names.
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Backend>> {
    match config.store.backend {
        StoreBackend::Sled => {
            let store = config.store.clone();
            let dir = store.dir.join("kv");
            tokio::task::spawn_blocking(move || {
                SledBackend::open(&dir, store.durability, store.flush_interval.0)
                    .map(|b| Arc::new(b) as Arc<dyn Backend>)
                    .with_context(|| {
                        format!("cannot open the key-value store in {}", dir.display())
                    })
            })
            .await?
        }
        StoreBackend::Etcd => {
            let backend = EtcdBackend::connect(&config.cluster, &config.store).await?;
            tracing::info!(
                target: "wedge::kv",
                etcd = ?config.cluster.etcd,
                prefix = %config.cluster.prefix,
                node = %config.cluster.node,
                "key-value stores in etcd"
            );
            Ok(Arc::new(backend))
        }
    }
}

/// `server.max_connections`, within what the process's file descriptor limit
/// allows. The soft limit is raised to the hard limit first; if that still
/// leaves too few, the budget shrinks and a warning says so, rather than
/// accepts failing with "too many open files" and taking the admin API with
/// them.
fn connection_budget(wanted: u32) -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let budget = limit
        .saturating_sub(RESERVED_FDS + ADMIN_CONNECTIONS as u64)
        .max(1);
    if u64::from(wanted) > budget {
        tracing::warn!(
            target: "wedge::server",
            max_connections = wanted,
            fd_limit = limit,
            using = budget,
            "server.max_connections is above what the file descriptor limit allows; raise `ulimit -n` (LimitNOFILE=) to use it"
        );
        return budget as usize;
    }
    wanted as usize
}
