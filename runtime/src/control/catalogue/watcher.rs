//! The functions directory's watcher: every change under it sends its
//! function's name to the control loop ([`crate::control::source`]).

use std::path::{Component, Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::control::source::{Change, Sender};

/// A watch on the functions directory. Dropping it stops the watch.
pub struct DirWatcher {
    _watcher: RecommendedWatcher,
}

/// Starts watching `dir` (recursively): every change sends its function.
pub fn watch(dir: PathBuf, changes: Sender) -> notify::Result<DirWatcher> {
    // Events are matched to functions by stripping this root, so it must be
    // spelled as the events spell their paths: absolute. With the default
    // `./wedge.toml`, the directory is the relative `functions`, and a
    // function directory created while the node ran was never loaded.
    let dir = std::path::absolute(&dir)?;
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
        // notify calls this on its own thread, where waiting for room in the
        // channel holds up nothing but the watch.
        for name in event.paths.iter().filter_map(|p| function_of(&root, p)) {
            if changes.blocking_send(Change::Files(name)).is_err() {
                return;
            }
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
}
