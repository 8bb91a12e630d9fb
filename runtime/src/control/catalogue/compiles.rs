//! The catalogue's compiles: claimed once per module, run in child processes
//! (baseline code, then optimized code into the cache), and in a fleet
//! shared with the other nodes.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::shared::SharedCode;
use super::{Catalogue, CompileJob, LoadError, Superseded, cache_write_error, lock};
use crate::guest::engine::Tier;
use crate::node::snapshot::Snapshot;

/// When code a node compiled is offered to the others.
#[derive(Debug, Clone, Copy)]
pub(super) enum Offer {
    /// Before the compile counts as done: a module checked before a fleet
    /// deploy is shared before the fleet hears of it, so no node compiles it
    /// again.
    First,
    /// In the background: the node's own swap does not wait for the upload.
    Meanwhile,
}

/// How long a compile waits for another node's code before compiling itself.
const SHARED_CODE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Catalogue {
    /// Functions waiting for a compile that serve nothing yet: new ones, at
    /// start-up those the cache lacked. A function whose new version
    /// compiles while an older one serves is not counted.
    pub fn pending(&self, serving: &Snapshot) -> usize {
        let waiting: BTreeSet<String> = lock(&self.compiling)
            .values()
            .flat_map(|names| names.iter().cloned())
            .collect();
        waiting
            .iter()
            .filter(|name| serving.get(name).is_none())
            .count()
    }

    /// Claims the compile of `job`; false when the module is being compiled
    /// already, and `job`'s function then waits for that compile too.
    pub fn begin_compile(&self, job: &CompileJob) -> bool {
        let mut compiling = lock(&self.compiling);
        match compiling.get_mut(&job.sha256) {
            Some(waiting) => {
                waiting.insert(job.function.clone());
                false
            }
            None => {
                compiling.insert(job.sha256.clone(), BTreeSet::from([job.function.clone()]));
                true
            }
        }
    }

    /// Compiles a claimed job's optimized code into the cache (after
    /// [`Self::compile_baseline`]) and returns the functions waiting for it,
    /// to reload. A failure (the compile timed out, or the module is invalid)
    /// with no baseline code to serve is remembered, and their next reload
    /// records it as a load failure; with baseline code, that code serves on.
    /// [`Superseded`] when nothing wants the module any more.
    pub async fn compile(
        &self,
        job: &CompileJob,
        serving: &(dyn Fn() -> Arc<Snapshot> + Sync),
    ) -> Result<BTreeSet<String>, Superseded> {
        let started = std::time::Instant::now();
        let go_on = || self.still_wanted(&job.sha256, &serving());
        let result = match self.refusal(&job.sha256) {
            Some(refused) => Err(refused),
            None if self.cache.contains(&job.sha256) => Ok(()),
            None => {
                let input = self.optimized_input(job);
                self.compile_into_cache(&input, &job.sha256, Offer::Meanwhile, &go_on)
                    .await
            }
        };
        if let Err(LoadError::Superseded) = result {
            return Err(Superseded);
        }
        self.optimized_done(&job.sha256, result.is_ok());
        let waiting = lock(&self.compiling)
            .remove(&job.sha256)
            .unwrap_or_default();
        match result {
            Ok(()) => tracing::info!(
                target: "wedge::registry",
                function = %job.function,
                path = %job.path.display(),
                sha256 = %job.sha256,
                size = job.bytes.len(),
                tier = Tier::Optimized.as_str(),
                compile_ms = started.elapsed().as_millis() as u64,
                "compiled"
            ),
            Err(e) if self.baseline(&job.sha256).is_some() => tracing::warn!(
                target: "wedge::registry",
                function = %job.function,
                path = %job.path.display(),
                "the optimized compile failed; the baseline code serves on: {e}"
            ),
            Err(e) => self.refuse(&job.sha256, &e),
        }
        Ok(waiting)
    }

    /// Compiles `bytes` into the cache, unless another node shared the code;
    /// offers what it compiles as `offer` says.
    pub(super) async fn compile_into_cache(
        &self,
        bytes: &Arc<[u8]>,
        sha256: &str,
        offer: Offer,
        go_on: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), LoadError> {
        let shared = self.shared.get().cloned();
        let engine = self.cache.engine_name().to_string();
        if let Some(shared) = &shared
            && self.take_shared(shared.as_ref(), sha256, &engine).await
        {
            return Ok(());
        }
        let tmp = self.cache.temp_path(sha256).map_err(cache_write_error)?;
        self.compiler
            .compile(bytes.clone(), &tmp, Tier::Optimized, None, go_on)
            .await?;
        self.cache.commit(&tmp, sha256).map_err(cache_write_error)?;
        if let Some(shared) = shared {
            let (path, sha256) = (self.cache.path(sha256), sha256.to_string());
            let offered = async move {
                if let Ok(code) = tokio::fs::read(&path).await {
                    shared.offer(&sha256, &engine, code).await;
                }
            };
            match offer {
                Offer::First => offered.await,
                Offer::Meanwhile => drop(tokio::spawn(offered)),
            }
        }
        Ok(())
    }

    /// Puts the code another node compiled from `sha256` into the cache, if
    /// it was shared and loads on this engine; whether it did.
    pub(super) async fn take_shared(
        &self,
        shared: &dyn SharedCode,
        sha256: &str,
        engine: &str,
    ) -> bool {
        let Ok(Some(code)) =
            tokio::time::timeout(SHARED_CODE_WAIT, shared.fetch(sha256, engine)).await
        else {
            return false;
        };
        let Ok(tmp) = self.cache.temp_path(sha256) else {
            return false;
        };
        let written =
            tokio::fs::write(&tmp, &code).await.is_ok() && self.cache.commit(&tmp, sha256).is_ok();
        if !written {
            let _ = std::fs::remove_file(&tmp);
            return false;
        }
        match self.cache.load(&self.engine, sha256) {
            Some(Ok(_)) => {
                tracing::info!(target: "wedge::registry", sha256 = %&sha256[..12.min(sha256.len())], size = code.len(), "took code another node compiled");
                true
            }
            _ => {
                tracing::warn!(target: "wedge::registry", sha256 = %sha256, "shared compiled code does not load here; compiling instead");
                let _ = std::fs::remove_file(self.cache.path(sha256));
                false
            }
        }
    }
}
