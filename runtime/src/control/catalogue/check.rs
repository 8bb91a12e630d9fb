//! An upload's check before anything is written: size, imports, a compile
//! into the cache (shared first, in a fleet) and linking.

use std::sync::Arc;

use super::compiles::Offer;
use super::{Catalogue, Held, LoadError, lock, module};
use crate::guest::engine::Tier;

impl Catalogue {
    /// Checks that `bytes` would load as a version: size, imports, compilation
    /// (into the cache, so the reload that follows does not compile again, and
    /// in a fleet offered to the other nodes before this returns) and linking.
    /// The code stays while the returned [`Held`] lives: keep it until the
    /// version is written and reloaded.
    pub async fn validate(&self, bytes: Arc<[u8]>) -> Result<Held<'_>, LoadError> {
        let max = self.config.functions.max_module_size.0;
        if bytes.len() as u64 > max {
            return Err(LoadError::TooLarge {
                size: bytes.len() as u64,
                max,
            });
        }
        let imports = module::check_imports(&bytes)?;
        let sha256 = module::sha256_hex(&bytes);
        if let Some(e) = lock(&self.refused).get(&sha256) {
            return Err(e.clone());
        }
        let held = self.hold(&sha256);
        // Alone, a node checks with a quick baseline compile and serves from
        // it while the optimized code compiles in the background. In a fleet
        // the optimized code is compiled (and shared) first, so that no
        // node compiles it again.
        if !self.cache.contains(&sha256) && self.shared.get().is_none() {
            let baseline = match self.baseline(&sha256) {
                Some(_) => Ok(()),
                None => self.compile_baseline_code(&bytes, &sha256, &|| true).await,
            };
            match (baseline, self.baseline(&sha256)) {
                (_, Some(b)) => {
                    return module::link(&self.engine, &b.module, imports, Tier::Baseline)
                        .map(|_| held);
                }
                (Err(e @ (LoadError::Init(_) | LoadError::CompileTimeout(_))), None) => {
                    return Err(e);
                }
                // Winch could not compile it: Cranelift decides.
                _ => {}
            }
        }
        if !self.cache.contains(&sha256) {
            self.compile_into_cache(&bytes, &sha256, Offer::First, &|| true)
                .await?;
        }
        match self.cache.load(&self.engine, &sha256) {
            Some(Ok(module)) => {
                module::link(&self.engine, &module, imports, Tier::Optimized).map(|_| held)
            }
            Some(Err(e)) => Err(LoadError::Invalid(format!("{e:#}"))),
            None => Err(LoadError::Compiler(
                "the compiled module vanished from the cache".into(),
            )),
        }
    }
}
