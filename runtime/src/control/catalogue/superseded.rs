//! Compiles nothing wants any more are abandoned. A function redeployed
//! again and again (a CI pipeline pushing every commit) queues one compile
//! per version; when a compile's turn comes, or while it runs, and no function
//! names its module any more, on disk or serving, it is dropped (its child
//! killed) with its reactor snapshot, so the compile slots and the cores go
//! to the version that will serve. Baseline code already made stays in the
//! module cache, bounded like the rest, so a module that comes back (a
//! rollback by file copy) serves again at once and compiles nothing before
//! it does.

use std::collections::HashSet;

use super::{Catalogue, lock};
use crate::node::snapshot::Snapshot;

/// Keeps a module's code from eviction and abandonment while it lives: an
/// upload's, from its check until the reload that loads it.
#[must_use = "the module is held only while this lives"]
pub struct Held<'a> {
    catalogue: &'a Catalogue,
    sha256: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = lock(&self.catalogue.held);
        if let Some(n) = held.get_mut(&self.sha256) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.sha256);
            }
        }
    }
}

impl Catalogue {
    /// Holds module `sha256` (see [`Held`]).
    pub(super) fn hold(&self, sha256: &str) -> Held<'_> {
        *lock(&self.held).entry(sha256.to_string()).or_default() += 1;
        Held {
            catalogue: self,
            sha256: sha256.to_string(),
        }
    }

    /// The modules uploads hold now.
    pub(super) fn held(&self) -> Vec<String> {
        lock(&self.held).keys().cloned().collect()
    }

    /// Remembers the modules function `name`'s files name now: those of the
    /// versions that loaded or are compiling.
    pub(super) fn note_wanted(&self, name: &str, modules: HashSet<String>) {
        lock(&self.wanted).insert(name.to_string(), modules);
    }

    /// Function `name` is gone: its files name nothing.
    pub(super) fn forget_wanted(&self, name: &str) {
        lock(&self.wanted).remove(name);
    }

    /// Whether the compile of `sha256` should go on: some function's files
    /// name the module, or it serves in `serving`. When neither holds the
    /// compile is abandoned here, at once: its functions wait no more, and
    /// its snapshot is removed; its baseline code stays in the cache.
    pub(super) fn still_wanted(&self, sha256: &str, serving: &Snapshot) -> bool {
        // Under the lock of the compiles, so a reload that names the module
        // again either sees the compile (and waits for it) or claims a new one.
        let mut compiling = lock(&self.compiling);
        let named = lock(&self.wanted).values().any(|m| m.contains(sha256))
            || lock(&self.held).contains_key(sha256);
        let serves = serving
            .functions()
            .any(|f| f.versions.values().any(|v| v.sha256 == sha256));
        if named || serves {
            return true;
        }
        compiling.remove(sha256);
        drop(compiling);
        self.set_baseline_aside(sha256);
        tracing::info!(
            target: "wedge::registry",
            sha256 = %sha256,
            "compile abandoned: no function names this module any more"
        );
        false
    }
}
