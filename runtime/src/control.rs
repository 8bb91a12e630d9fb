//! The node's control plane: reloads functions into a new routing snapshot and
//! swaps it in, one reload at a time. The watcher, the admin API and automatic
//! rollbacks all go through here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::handler::App;
use crate::registry::Registry;

/// Reloads and swaps; shared by everything that changes what serves.
pub struct Control {
    registry: Arc<Registry>,
    app: Arc<App>,
    /// One reload at a time, so two changes never race to swap.
    reloading: tokio::sync::Mutex<()>,
    /// Swaps made, for the admin API and metrics.
    swaps: AtomicU64,
}

impl Control {
    /// A control plane over `registry` swapping snapshots into `app`.
    pub fn new(registry: Arc<Registry>, app: Arc<App>) -> Self {
        Self {
            registry,
            app,
            reloading: tokio::sync::Mutex::new(()),
            swaps: AtomicU64::new(0),
        }
    }

    /// The registry, for its failures and directory.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The request handler whose snapshot this swaps.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Snapshots swapped in since start.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Reloads the functions in `names` (compiling off the async workers) and
    /// swaps the result in. Requests already running keep the snapshot they
    /// started with. Returns the names that changed.
    pub async fn reload(&self, names: Vec<String>) -> Vec<String> {
        if names.is_empty() {
            return Vec::new();
        }
        let _one_at_a_time = self.reloading.lock().await;
        let current = self.app.snapshot();
        let registry = self.registry.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || registry.reload(&current, &names)).await;
        let (snapshot, changed, stats) = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "wedge::registry", "reload failed: {e}");
                return Vec::new();
            }
        };
        if changed.is_empty() {
            return changed;
        }
        self.app.swap(snapshot);
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let snapshot = self.app.snapshot();
        for name in &changed {
            match snapshot.get(name) {
                Some(f) => tracing::info!(
                    target: "wedge::registry",
                    function = %name,
                    stable = %f.deployment.stable,
                    canary = %f.deployment.canary.as_deref().unwrap_or(""),
                    canary_percent = f.deployment.canary_percent,
                    versions = f.versions.len(),
                    compiled = stats.compiled,
                    cached = stats.cached,
                    reload_ms = started.elapsed().as_millis() as u64,
                    "swapped"
                ),
                None => tracing::info!(target: "wedge::registry", function = %name, "removed"),
            }
        }
        changed
    }
}
