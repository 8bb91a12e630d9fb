//! What the catalogue keeps across reloads and restarts: the last good state
//! of each function on disk, and the compiled code in the bounded module
//! cache.

use std::collections::HashSet;

use super::lastgood::{Record, RecordedVersion};
use super::{Catalogue, lock};
use crate::node::snapshot::Snapshot;

impl Catalogue {
    /// Remembers the state of every function in `changed` as its last good
    /// state, or forgets a function that is gone. Blocking.
    pub fn remember(&self, snapshot: &Snapshot, changed: &[String]) {
        for name in changed {
            let Some(f) = snapshot.get(name) else {
                self.last_good.remove(name);
                continue;
            };
            if f.from_last_good || f.stable().is_none() {
                continue;
            }
            let record = Record {
                function_toml: f.function_toml.clone(),
                deployment: f.deployment.clone(),
                pinned: f.pinned,
                versions: f
                    .versions
                    .values()
                    .map(|v| RecordedVersion {
                        label: v.label.to_string(),
                        sha256: v.sha256.clone(),
                        size: v.size,
                    })
                    .collect(),
            };
            if let Err(e) = self.last_good.write(name, &record) {
                tracing::warn!(target: "wedge::registry", function = %name, "cannot remember the last good state: {e}");
            }
        }
    }

    /// Forgets the remembered state of functions whose directory is gone (removed
    /// while the node was down). Blocking.
    pub fn forget_removed(&self) {
        for name in self.last_good.functions() {
            if !self.dir().join(&name).is_dir() {
                self.last_good.remove(&name);
            }
        }
    }

    /// Removes cached code that neither `current` nor any remembered state
    /// uses, beyond the most recently used spares. Blocking.
    pub fn evict(&self, current: &Snapshot) {
        let remembered = self.last_good.modules();
        let mut keep: HashSet<&str> = remembered.iter().map(String::as_str).collect();
        for f in current.functions() {
            keep.extend(f.versions.values().map(|v| v.sha256.as_str()));
        }
        let held = self.held();
        keep.extend(held.iter().map(String::as_str));
        self.drop_unused_baseline(&keep);
        // Code of compiles under way is not in use yet, but soon will be.
        let compiling: Vec<String> = lock(&self.compiling).keys().cloned().collect();
        keep.extend(compiling.iter().map(String::as_str));
        let removed = self.cache.evict(&keep);
        if removed > 0 {
            tracing::info!(target: "wedge::registry", removed, "evicted unused compiled modules");
        }
    }
}
