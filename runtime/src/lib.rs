//! wedge: an edge-function runtime. It serves HTTP by running each request in a
//! fresh, sandboxed wasmtime instance of a handler: a `wasm32-wasip1` module
//! spoken to in WAGI (CGI over WASI), or a component exporting
//! `wasi:http/incoming-handler`.
//!
//! # Layout
//!
//! - [`config`]: `wedge.toml`, `function.toml`, `deployment.toml`.
//! - [`admin`]: the admin API on its own listener: functions, deployments, uploads, kv.
//! - [`api`]: the admin API's request and response types, shared by both ends.
//! - [`client`]: the admin API client behind `wedge deploy`, `status` and friends.
//! - [`server`]: the listener: connection limits, accept back-off, graceful shutdown.
//! - [`conn`]: one connection: TLS or protocol sniffing, HTTP/1.1 or HTTP/2, and
//!   its header-read, idle and write timeouts.
//! - [`tls`]: certificates for the public listener, reloaded when their files change.
//! - [`peers`]: per-address connection counts and request rates.
//! - [`lanes`]: the serving threads, one per core, each with its own connections.
//! - [`alloc`]: the allocator call that hands a lane's freed memory back.
//! - [`handler`]: the request path: checks, routing, body, admission, guest run,
//!   response, access log.
//! - [`validate`]: what a request must be before any of it reaches a guest.
//! - [`function`]: a function as it serves: route, limits, deployment and
//!   compiled versions.
//! - [`router`]: the immutable routing snapshot and prefix matching.
//! - [`rollout`]: version choice per request: override header, sticky key, random draw.
//! - [`registry`]: the functions directory turned into compiled, routable functions;
//!   compiles in child processes in two tiers (Winch's baseline code first,
//!   Cranelift's optimized code after, a compile abandoned once nothing names
//!   its module), the module cache, the remembered last good state, and the
//!   functions directory's watcher.
//! - [`source`]: the channel every source of change (the directory watcher,
//!   the fleet's desired state, finished compiles) feeds the control loop through.
//! - [`control`]: the control loop: reload and swap, one swap at a time, for
//!   every source of change.
//! - [`engine`]: the wasmtime engines, one per compiler tier (pooling, epochs),
//!   and their linkers.
//! - [`code`]: the two handler formats, told apart by their bytes, and their
//!   compiled code.
//! - [`limits`]: a guest's memory cap and table limit inside its store.
//! - [`instance`]: one request's run of a WAGI module: store, limits,
//!   deadline and outcome.
//! - [`wasi_http`]: a component's per-request host state, the worlds it may
//!   import from, its stdout and stderr into the log, `wasi:keyvalue` on the
//!   node's stores, and `wasi:http/outgoing-handler` through `outbound`.
//! - [`component`]: one request's run of a wasi:http component, its response
//!   read whole within the response cap.
//! - [`segments`]: a module's data segments joined into few, so instantiating
//!   it does not walk thousands (Go emits one per symbol).
//! - [`preinit`]: reactor handlers: `_initialize` run once at load and
//!   snapshotted with `wasmtime-wizer`, `wedge_handle` per request.
//! - [`wagi`]: request to environment/argv, stdout to response.
//! - [`guest_io`]: the WASI calls every request makes (argv, environment, stdio,
//!   exit), served from the request's buffers.
//! - [`stdio`]: the guest's stdout buffer and stderr logger.
//! - [`kv`]: the `wedge` host module: key-value stores on sled (group commit,
//!   recovery from storage errors) or on etcd (transactions with op records,
//!   escrow blocks of hot counters sold from a local ledger).
//! - [`outbound`]: the `wedge` module's outbound HTTP: the allow-list on URLs
//!   and resolved addresses, pooled connections per function, the DNS cache,
//!   TLS, and each request's open responses.
//! - [`fleet`]: fleet rollouts: the desired state in etcd, modules in an OCI
//!   registry, each node following them into its functions directory.
//! - [`error`]: statuses the host answers with itself.
//! - [`telemetry`]: per-version counts, latency histograms, traps, kv operations,
//!   connections.
//! - [`fsutil`]: crash-safe file writes.
//! - [`request_id`], [`log`], [`metrics`]: request ids, log set-up, metric types.
//!
//! Modules depend on each other one way, and `cargo xtask layout` fails CI on
//! a cycle. At the bottom are `config`, `metrics`, `telemetry`, `source`,
//! `segments`, `code` and `limits`. Above them
//! sit `kv`, `outbound` (which uses `kv`'s status codes and memory access),
//! `guest_io`, `wagi`, `wasi_http` (over `kv` and `outbound`) and `engine`, then `preinit` and
//! `function`. `instance`, `component`, `router` and `rollout` read
//! functions, and `registry` builds them into routing snapshots. `handler` serves a request from a snapshot and `control`
//! swaps snapshots. `conn`, `server` and `admin` are on top. A request flows
//! `server` → `conn` → `handler` → `router` (snapshot) → `instance` + `wagi`
//! (or `component`) → response, and `registry` is the only writer of the snapshot.

pub mod admin;
pub mod alloc;
pub mod api;
pub mod client;
pub mod code;
pub mod component;
pub mod config;
pub mod conn;
pub mod control;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod fsutil;
pub mod function;
pub mod guest_io;
pub mod handler;
pub mod instance;
pub mod kv;
pub mod lanes;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod outbound;
pub mod peers;
pub mod preinit;
pub mod registry;
pub mod request_id;
pub mod rollout;
pub mod router;
pub mod segments;
pub mod server;
pub mod source;
pub mod stdio;
pub mod telemetry;
pub mod tls;
pub mod validate;
pub mod wagi;
pub mod wasi_http;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{Config, StoreBackend};
use crate::conn::ConnSettings;
use crate::control::Control;
use crate::engine::WasmEngine;
use crate::handler::{App, Limits};
use crate::kv::Backend;
use crate::kv::etcd::EtcdBackend;
use crate::kv::sled::SledBackend;
use crate::outbound::Outbound;
use crate::peers::Peers;
use crate::registry::{Registry, Reloaded};
use crate::server::ListenSettings;
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
        Some(tls) => Some(tls::Tls::start(tls).context("cannot set up [server.tls]")?),
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
    let (changes, control_loop) = source::channel();
    let _watcher = registry::watcher::watch(config.functions.dir.clone(), changes.clone())
        .with_context(|| format!("cannot watch {}", config.functions.dir.display()))?;
    let telemetry = Arc::new(Telemetry::default());
    let outbound = Outbound::new(&config.outbound).context("cannot set up [outbound]")?;
    let registry = Arc::new(Registry::new(
        engine.clone(),
        config.clone(),
        telemetry.clone(),
        outbound,
        compiler,
    ));
    let loaded = load_functions(&registry).await?;
    let functions = loaded.snapshot.functions().count();
    tracing::info!(
        target: "wedge::registry",
        functions,
        compiling = loaded.jobs.len(),
        cached = loaded.stats.cached,
        failures = registry.failures().len(),
        load_ms = started.elapsed().as_millis() as u64,
        "functions loaded"
    );
    let kv = open_store(&config).await?;
    let app = Arc::new(App::new(
        engine,
        kv.clone(),
        telemetry,
        loaded.snapshot,
        Limits::from_config(&config.server),
        Arc::new(Peers::new(&config.server.per_ip)),
    ));
    let fleet = match config.cluster.fleet() {
        false => None,
        true => {
            let fleet = fleet::Fleet::connect(
                &config.cluster,
                config.functions.dir.clone(),
                changes.clone(),
            )
            .await
            .context("cannot set up fleet rollouts ([cluster] registry)")?;
            if config.cluster.share_compiled {
                registry.share_compiled(fleet.clone());
            }
            tokio::spawn(fleet.clone().follow_forever());
            tokio::spawn(fleet.clone().judge_forever());
            tokio::spawn(
                fleet
                    .clone()
                    .report_forever(app.clone(), config.server.region.clone()),
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
    let control = Arc::new(Control::new(registry, app.clone(), changes));
    tokio::spawn(control.clone().run_reloads(control_loop));
    // What the cache lacked compiles now, while the rest serves: each
    // function goes live when its baseline code is ready.
    for job in loaded.jobs {
        control.compile_in_background(job);
    }
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
        functions,
        tls = tls.is_some(),
        max_connections,
        load_ms = started.elapsed().as_millis() as u64,
        "wedge ready"
    );
    server::serve(
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

/// Loads the functions directory from what is compiled (the module cache) and
/// hands back, as jobs, the modules still to compile: the node serves the rest
/// at once.
async fn load_functions(registry: &Arc<Registry>) -> anyhow::Result<Reloaded> {
    let registry = registry.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let loaded = registry.load_all();
        // What serves now is the state to fall back on after a crash.
        let all: Vec<String> = loaded
            .snapshot
            .functions()
            .map(|f| f.name.to_string())
            .collect();
        registry.remember(&loaded.snapshot, &all);
        registry.forget_removed();
        registry.evict(&loaded.snapshot);
        loaded
    })
    .await?;
    Ok(loaded)
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
