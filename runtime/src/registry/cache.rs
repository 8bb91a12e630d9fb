//! The compiled-module cache: compiled code on disk, keyed by the sha256 of the
//! module's bytes, so a restart with unchanged modules compiles nothing.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Module;

use crate::engine::WasmEngine;

/// `<store.dir>/modules/<engine>/<sha256>.cwasm`. The engine directory changes
/// with wasmtime's version and compilation settings, so stale code is never loaded.
pub struct ModuleCache {
    dir: PathBuf,
}

impl ModuleCache {
    /// A cache under `store_dir` for modules compiled by `engine`.
    pub fn new(store_dir: &Path, engine: &WasmEngine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine
            .engine()
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        Self {
            dir: store_dir
                .join("modules")
                .join(format!("{:016x}", hasher.finish())),
        }
    }

    /// The module for `bytes`: from the cache when it is there, else compiled and
    /// written to the cache. Says which.
    pub fn module(
        &self,
        engine: &WasmEngine,
        bytes: &[u8],
        sha256: &str,
    ) -> wasmtime::Result<(Module, bool)> {
        let path = self.dir.join(format!("{sha256}.cwasm"));
        if path.exists() {
            // SAFETY: files in this directory are written only by `store` below,
            // from `Module::serialize` of this engine's configuration (the
            // directory name pins it), under a name that is the hash of the
            // source. A file that fails wasmtime's own checks is recompiled.
            #[allow(unsafe_code)]
            match unsafe { Module::deserialize_file(engine.engine(), &path) } {
                Ok(module) => return Ok((module, true)),
                Err(e) => tracing::warn!(
                    target: "wedge::registry",
                    path = %path.display(),
                    "cached module unusable, compiling again: {e}"
                ),
            }
        }
        let compiled = engine.precompile(bytes)?;
        // Served from the file once it is written: its pages are the page
        // cache's, as after a restart, rather than anonymous memory.
        let module = match self.store(&compiled, &path) {
            // SAFETY: as above; the file was written from this engine's output.
            #[allow(unsafe_code)]
            Ok(()) => unsafe { Module::deserialize_file(engine.engine(), &path) }?,
            Err(e) => {
                tracing::warn!(target: "wedge::registry", path = %path.display(), "cannot cache compiled module: {e}");
                // SAFETY: `compiled` is this engine's own output.
                #[allow(unsafe_code)]
                unsafe { Module::deserialize(engine.engine(), &compiled) }?
            }
        };
        Ok((module, false))
    }

    /// Writes through a temporary file and a rename, so a crash never leaves a
    /// half-written entry under the real name.
    fn store(&self, compiled: &[u8], path: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, compiled)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
