//! Where reloads come from: the functions directory's watcher, and compiles
//! that finished. Each source adds function names to one [`ReloadQueue`]; the
//! control plane's reload loop takes them in batches, debounced, so a burst of
//! writes to one file becomes one reload.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// Quiet time after the last event before a reload starts. Long enough to take in
/// a truncate-and-write as one change, short enough that a swap lands within tens
/// of milliseconds.
pub const DEBOUNCE: Duration = Duration::from_millis(15);

/// Functions waiting for a reload: a set, so it is bounded by the number of
/// function directories however many events arrive.
#[derive(Default)]
pub struct ReloadQueue {
    names: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl ReloadQueue {
    /// Asks for function `name` to be reloaded.
    pub fn push(&self, name: String) {
        let added = self
            .names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name);
        if added {
            self.wake.notify_one();
        }
    }

    /// Waits for names, lets a burst settle for [`DEBOUNCE`], and takes them all.
    pub async fn next_batch(&self) -> Vec<String> {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(DEBOUNCE).await;
            let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|p| p.into_inner()));
            if !names.is_empty() {
                return names.into_iter().collect();
            }
        }
    }
}

/// A watch on the functions directory feeding a [`ReloadQueue`]. Dropping it
/// stops the watch.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
}

/// Starts watching `dir` (recursively): every change queues its function.
pub fn watch(dir: PathBuf, queue: Arc<ReloadQueue>) -> notify::Result<DirWatcher> {
    let root = dir.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(target: "wedge::registry", "watch error: {e}");
                return;
            }
        };
        // Reads (wedge's own included) say nothing new; a close after writing does.
        if let EventKind::Access(kind) = event.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return;
        }
        for name in event.paths.iter().filter_map(|p| function_of(&root, p)) {
            queue.push(name);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    Ok(DirWatcher { _watcher: watcher })
}

/// The function a path under the functions directory belongs to.
fn function_of(root: &Path, path: &Path) -> Option<String> {
    match path.strip_prefix(root).ok()?.components().next()? {
        Component::Normal(name) => name.to_str().map(str::to_string),
        _ => None,
    }
    .filter(|n| crate::config::valid_name(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_function() {
        let root = Path::new("/srv/functions");
        assert_eq!(
            function_of(root, Path::new("/srv/functions/hello/v1.wasm")).as_deref(),
            Some("hello")
        );
        assert_eq!(
            function_of(root, Path::new("/srv/functions/hello")).as_deref(),
            Some("hello")
        );
        assert_eq!(function_of(root, Path::new("/srv/functions")), None);
        assert_eq!(function_of(root, Path::new("/elsewhere/x")), None);
        assert_eq!(function_of(root, Path::new("/srv/functions/.tmp")), None);
    }

    #[tokio::test]
    async fn a_burst_is_one_batch() {
        let queue = ReloadQueue::default();
        for _ in 0..100 {
            queue.push("hello".into());
        }
        queue.push("inventory".into());
        assert_eq!(queue.next_batch().await, ["hello", "inventory"]);
    }
}
