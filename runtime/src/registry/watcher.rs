//! Watches the functions directory and reloads the functions a change touches,
//! debounced, so a burst of writes to one file becomes one reload.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::control::Control;

/// Quiet time after the last event before a reload starts. Long enough to take in
/// a truncate-and-write as one change, short enough that a swap lands within tens
/// of milliseconds.
pub const DEBOUNCE: Duration = Duration::from_millis(15);

/// Functions waiting for a reload: bounded by the number of function directories.
#[derive(Default)]
struct Pending {
    names: Mutex<BTreeSet<String>>,
    wake: Notify,
}

/// A watch on the functions directory. Changes are collected from the moment it
/// starts; [`start_reloading`](Self::start_reloading) applies them. Dropping it
/// stops the watch.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
    pending: Arc<Pending>,
}

impl DirWatcher {
    /// Applies collected and future changes through `control`, debounced.
    pub fn start_reloading(&self, control: Arc<Control>) {
        let pending = self.pending.clone();
        tokio::spawn(async move {
            loop {
                pending.wake.notified().await;
                tokio::time::sleep(DEBOUNCE).await;
                let names: Vec<String> =
                    std::mem::take(&mut *pending.names.lock().unwrap_or_else(|p| p.into_inner()))
                        .into_iter()
                        .collect();
                control.reload(names).await;
            }
        });
    }
}

/// Starts watching `dir` (recursively), collecting the functions that change.
pub fn watch(dir: PathBuf) -> notify::Result<DirWatcher> {
    let pending = Arc::new(Pending::default());
    let sink = pending.clone();
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
        let mut names = sink.names.lock().unwrap_or_else(|p| p.into_inner());
        let before = names.len();
        names.extend(event.paths.iter().filter_map(|p| function_of(&root, p)));
        if names.len() != before {
            sink.wake.notify_one();
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    Ok(DirWatcher {
        _watcher: watcher,
        pending,
    })
}

/// The function a path under the functions directory belongs to.
fn function_of(root: &Path, path: &Path) -> Option<String> {
    match path.strip_prefix(root).ok()?.components().next()? {
        Component::Normal(name) => name.to_str().map(str::to_string),
        _ => None,
    }
    .filter(|n| crate::registry::valid_name(n))
}

#[cfg(test)]
mod tests {
    use super::function_of;
    use std::path::Path;

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
}
