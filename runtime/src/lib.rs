//! wedge: an edge-function runtime. It serves HTTP by running each request in a
//! fresh, sandboxed wasmtime instance of a `wasm32-wasip1` handler, speaking WAGI
//! (CGI over WASI) to the guest.
//!
//! # Layout
//!
//! - [`config`]: `wedge.toml`, `function.toml`, `deployment.toml`.
//! - [`admin`]: the admin API on its own listener: functions, deployments, uploads, kv.
//! - [`client`]: the admin API client behind `wedge deploy`, `status` and friends.
//! - [`server`]: the listener, HTTP/1.1 and h2c, connection limits, graceful shutdown.
//! - [`lanes`]: the serving threads, one per core, each with its own connections.
//! - [`handler`]: the request path: admission, routing, body, guest run, access log.
//! - [`router`]: the immutable routing snapshot and prefix matching.
//! - [`rollout`]: version choice per request: override header, sticky key, random draw.
//! - [`registry`]: the functions directory turned into compiled, routable functions;
//!   its watcher reloads what changes.
//! - [`control`]: reload and swap, one at a time, for the watcher and the admin API.
//! - [`engine`]: the wasmtime engine (pooling, epochs) and the one linker.
//! - [`alloc`]: the allocator controls that hand compile memory back to the system.
//! - [`instance`]: one request's store, limits, deadline and outcome.
//! - [`wagi`]: request to environment/argv, stdout to response.
//! - [`guest_io`]: the WASI calls every request makes (argv, environment, stdio,
//!   exit), served from the request's buffers.
//! - [`stdio`]: the guest's stdout buffer and stderr logger.
//! - [`kv`]: the `wedge` host module: key-value stores on sled, group commit.
//! - [`error`]: statuses the host answers with itself.
//! - [`telemetry`]: per-version counts, latency histograms, traps, kv operations.
//! - [`request_id`], [`log`], [`metrics`]: request ids, log set-up, metric types.
//!
//! Data flows one way: `server` → `handler` → `router` (snapshot) → `instance` +
//! `wagi` → response; `registry` is the only writer of the snapshot.

pub mod admin;
pub mod alloc;
pub mod client;
pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod guest_io;
pub mod handler;
pub mod instance;
pub mod kv;
pub mod lanes;
pub mod log;
pub mod metrics;
pub mod registry;
pub mod request_id;
pub mod rollout;
pub mod router;
pub mod server;
pub mod stdio;
pub mod telemetry;
pub mod wagi;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::control::Control;
use crate::engine::WasmEngine;
use crate::handler::{App, Limits};
use crate::kv::Backend;
use crate::kv::sled::SledBackend;
use crate::registry::Registry;
use crate::server::ConnSettings;
use crate::telemetry::Telemetry;

/// Loads every function, then serves `listener` until `shutdown` resolves and the
/// in-flight requests have finished.
pub async fn serve(
    config: Config,
    listener: TcpListener,
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
    let watcher = registry::watcher::watch(config.functions.dir.clone())
        .with_context(|| format!("cannot watch {}", config.functions.dir.display()))?;
    let telemetry = Arc::new(Telemetry::default());
    let registry = Arc::new(Registry::new(
        engine.clone(),
        config.clone(),
        telemetry.clone(),
    ));
    let (snapshot, stats) = {
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || registry.load_all()).await?
    };
    let functions = snapshot.functions().count();
    tracing::info!(
        target: "wedge::registry",
        functions,
        compiled = stats.compiled,
        cached = stats.cached,
        failures = registry.failures().len(),
        load_ms = started.elapsed().as_millis() as u64,
        "functions loaded"
    );
    let kv_dir = config.store.dir.join("kv");
    let kv: Arc<dyn Backend> = {
        let store = config.store.clone();
        tokio::task::spawn_blocking(move || {
            SledBackend::open(&kv_dir, store.durability, store.flush_interval.0)
                .map(|b| Arc::new(b) as Arc<dyn Backend>)
                .with_context(|| format!("cannot open the key-value store in {}", kv_dir.display()))
        })
        .await??
    };
    let app = Arc::new(App::new(
        engine,
        kv.clone(),
        telemetry,
        snapshot,
        Limits::from_config(&config.server),
    ));
    let control = Arc::new(Control::new(registry, app.clone()));
    watcher.start_reloading(control.clone());
    tokio::spawn(control.clone().watch_canaries());
    tracing::info!(
        target: "wedge::admin",
        addr = %admin_listener.local_addr()?,
        auth = token.is_some(),
        "admin ready"
    );
    tokio::spawn(Arc::new(admin::Admin::new(control.clone(), token)).serve(admin_listener));
    tracing::info!(
        target: "wedge::server",
        addr = %listener.local_addr()?,
        functions,
        load_ms = started.elapsed().as_millis() as u64,
        "wedge ready"
    );
    server::serve(
        listener,
        app,
        ConnSettings::from_config(&config.server),
        shutdown,
    )
    .await
    .context("cannot start the serving threads")?;
    // In-flight requests are done: make every write durable before exiting,
    // whatever the durability setting.
    tokio::task::spawn_blocking(move || kv.flush())
        .await?
        .context("cannot flush the key-value store")?;
    tracing::info!(target: "wedge::kv", "key-value store flushed");
    Ok(())
}
