//! Two compiler tiers. A new module serves from Winch's baseline code, which
//! compiles in a fraction of Cranelift's time, as soon as that is ready; the
//! optimized compile runs after it at a lower priority, and the function is
//! reloaded onto the optimized code when it lands: the same swap as any
//! other, so requests in flight finish on the code they started with. Only
//! optimized code goes into the module cache, so a restart serves it at once.
//!
//! A reactor is initialized once, in the baseline compile; its snapshot is
//! kept beside the cache for the optimized compile, so both tiers run the
//! same initialized state. Baseline code is kept on disk too until the
//! optimized code lands, so a node that stops in between restarts with code
//! for everything it served.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use super::{Catalogue, CompileJob, LoadError, cache_write_error, lock};
use crate::guest::code::Code;
use crate::guest::engine::Tier;
use crate::node::snapshot::Snapshot;

/// A compile nothing wants any more was abandoned: the job is over.
#[derive(Debug)]
pub struct Superseded;

/// Baseline code that serves a module until its optimized code is ready.
#[derive(Clone)]
pub(super) struct Baseline {
    pub(super) module: Code,
    /// The optimized compile failed: this code serves for good, and no
    /// further compile is asked for.
    pub(super) settled: bool,
}

impl Catalogue {
    /// The baseline code of module `sha256`, if there is some: the module,
    /// and whether it is settled (no optimized code is coming).
    /// Baseline code found on disk (a node that stopped before the optimized
    /// code landed) is taken up again.
    pub(super) fn baseline(&self, sha256: &str) -> Option<Baseline> {
        if let Some(b) = lock(&self.baseline).get(sha256) {
            return Some(b.clone());
        }
        let module = self.cache.load_baseline(&self.engine, sha256)?.ok()?;
        let b = Baseline {
            module,
            settled: false,
        };
        lock(&self.baseline).insert(sha256.to_string(), b.clone());
        Some(b)
    }

    /// Compiles a claimed job's baseline code and returns the functions
    /// waiting for the module, to reload onto it now. None of them when there
    /// is nothing to reload yet: another node shared optimized code (now in
    /// the cache), baseline code is there already, or Winch could not compile
    /// it (the optimized compile then decides). A failed or timed-out
    /// initialization, which the optimized compile would only repeat, is
    /// remembered as the module's refusal, and the waiting functions reload
    /// to record it. [`Superseded`] when nothing wants the module any more
    /// (see [`Catalogue::still_wanted`]): the job is over.
    pub async fn compile_baseline(
        &self,
        job: &CompileJob,
        serving: &(dyn Fn() -> Arc<Snapshot> + Sync),
    ) -> Result<BTreeSet<String>, Superseded> {
        if self.baseline(&job.sha256).is_some() {
            return Ok(BTreeSet::new());
        }
        if let Some(shared) = self.shared.get().cloned()
            && self
                .take_shared(shared.as_ref(), &job.sha256, self.cache.engine_name())
                .await
        {
            return Ok(BTreeSet::new());
        }
        let started = Instant::now();
        let go_on = || self.still_wanted(&job.sha256, &serving());
        match self
            .compile_baseline_code(&job.bytes, &job.sha256, &go_on)
            .await
        {
            Ok(()) => {
                tracing::info!(
                    target: "wedge::registry",
                    function = %job.function,
                    path = %job.path.display(),
                    sha256 = %job.sha256,
                    size = job.bytes.len(),
                    tier = Tier::Baseline.as_str(),
                    compile_ms = started.elapsed().as_millis() as u64,
                    "compiled"
                );
                Ok(lock(&self.compiling)
                    .get(&job.sha256)
                    .cloned()
                    .unwrap_or_default())
            }
            Err(LoadError::Superseded) => Err(Superseded),
            Err(e @ (LoadError::Init(_) | LoadError::CompileTimeout(_))) => {
                self.refuse(&job.sha256, &e);
                Ok(BTreeSet::new())
            }
            Err(e) => {
                tracing::debug!(target: "wedge::registry", sha256 = %job.sha256, "no baseline code: {e}");
                Ok(BTreeSet::new())
            }
        }
    }

    /// Compiles the baseline code of `bytes` (and a reactor's snapshot, kept
    /// for the optimized compile) and keeps it to serve from.
    pub(super) async fn compile_baseline_code(
        &self,
        bytes: &Arc<[u8]>,
        sha256: &str,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), LoadError> {
        let dest = self.cache.temp_path(sha256).map_err(cache_write_error)?;
        let snapshot = self.cache.snapshot_path(sha256);
        let result = self
            .compiler
            .compile(bytes.clone(), &dest, Tier::Baseline, Some(&snapshot), go_on)
            .await;
        if let Err(e) = result.and_then(|()| {
            self.cache
                .commit_baseline(&dest, sha256)
                .map_err(cache_write_error)
        }) {
            let _ = std::fs::remove_file(&dest);
            return Err(e);
        }
        let module = match self.cache.load_baseline(&self.engine, sha256) {
            Some(Ok(module)) => module,
            Some(Err(e)) => return Err(LoadError::Invalid(format!("{e:#}"))),
            None => return Err(LoadError::Compiler("the baseline code vanished".into())),
        };
        lock(&self.baseline).insert(
            sha256.to_string(),
            Baseline {
                module,
                settled: false,
            },
        );
        Ok(())
    }

    /// The bytes the optimized compile of `job` compiles: the snapshot the
    /// baseline compile made of a reactor, or the module itself.
    pub(super) fn optimized_input(&self, job: &CompileJob) -> Arc<[u8]> {
        match std::fs::read(self.cache.snapshot_path(&job.sha256)) {
            Ok(snapshot) => snapshot.into(),
            Err(_) => job.bytes.clone(),
        }
    }

    /// After the optimized compile of `sha256`: the baseline code goes when
    /// the optimized code is there, and stays for good when it is not.
    pub(super) fn optimized_done(&self, sha256: &str, compiled: bool) {
        match compiled {
            true => self.drop_baseline(sha256),
            false => {
                let _ = std::fs::remove_file(self.cache.snapshot_path(sha256));
                if let Some(b) = lock(&self.baseline).get_mut(sha256) {
                    b.settled = true;
                }
            }
        }
    }

    /// Forgets module `sha256`'s baseline code and snapshot, kept and on disk.
    pub(super) fn drop_baseline(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.cache.snapshot_path(sha256));
        lock(&self.baseline).remove(sha256);
        self.cache.remove_baseline(sha256);
    }

    /// Module `sha256`'s compile was abandoned: its snapshot goes (an
    /// optimized compile, if the module comes back, initializes it again)
    /// and its baseline code leaves memory but stays in the cache, to serve
    /// again at once if the module comes back before it is evicted.
    pub(super) fn set_baseline_aside(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.cache.snapshot_path(sha256));
        lock(&self.baseline).remove(sha256);
    }

    /// Drops baseline code no version in `used` runs and no compile waits for.
    pub(super) fn drop_unused_baseline(&self, used: &std::collections::HashSet<&str>) {
        let compiling = lock(&self.compiling);
        lock(&self.baseline)
            .retain(|sha, _| used.contains(sha.as_str()) || compiling.contains_key(sha));
    }
}
