//! The compiled-module cache: compiled code on disk, keyed by the sha256 of the
//! module's bytes, so a restart with unchanged modules compiles nothing.
//!
//! `<store.dir>/modules/<engine>/<sha256>.cwasm` for optimized code, and the
//! same under the baseline engine's name for the baseline code of modules
//! whose optimized code has not landed. `<engine>` is a digest of
//! wasmtime's own compatibility hash (its version and every compilation
//! setting), taken with sha256 so the name is the same across builds of the
//! same wasmtime: code compiled for another engine is never loaded, and the
//! directories of other engines are removed. Entries are written through a
//! temporary file, a rename and a directory sync. The cache is bounded: every
//! entry a loaded version or a remembered last good state uses is kept, plus
//! the most recently used [`SPARE_ENTRIES`] others of each tier. Baseline
//! code is kept that way too, so a module replaced before its optimized code
//! landed (a swap under load, where optimized compiles wait for idle cores)
//! serves again without a compile when it comes back.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::guest::code::Code;
use sha2::{Digest, Sha256};

use crate::guest::engine::{Tier, WasmEngine};
use crate::util::fs as fsutil;

/// Entries kept beyond those in use, per tier, most recently used first, so
/// rolling back to a recent version does not compile again.
pub const SPARE_ENTRIES: usize = 32;

/// The on-disk cache of compiled modules: optimized code, and the baseline
/// code of modules whose optimized code is not there yet.
pub struct ModuleCache {
    /// `<store.dir>/modules`.
    root: PathBuf,
    /// `<root>/<engine>`: optimized code.
    dir: PathBuf,
    /// `<root>/<baseline engine>`: baseline code, each entry removed when
    /// its module's optimized code lands, so a crash in between still finds
    /// code for the last good state.
    baseline_dir: PathBuf,
}

/// What the temporary files of this process's compiles have in their names.
fn own_temp_marker() -> String {
    format!(".tmp{}-", std::process::id())
}

/// A [`Hasher`] that feeds sha256, so a `Hash` value digests the same way in
/// every build (std's `DefaultHasher` promises no such thing).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

/// The directory name for `engine`'s optimized code.
pub fn engine_dir_name(engine: &WasmEngine) -> String {
    tier_dir_name(engine, Tier::Optimized)
}

/// The directory name for the code of `tier` that `engine` loads.
fn tier_dir_name(engine: &WasmEngine, tier: Tier) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine
        .engine_for(tier)
        .precompile_compatibility_hash()
        .hash(&mut hasher);
    let digest = hasher.0.finalize();
    hex::encode(&digest[..12])
}

impl ModuleCache {
    /// A cache under `store_dir` for modules compiled by `engine`.
    pub fn new(store_dir: &Path, engine: &WasmEngine) -> Self {
        let root = store_dir.join("modules");
        let dir = root.join(engine_dir_name(engine));
        let baseline_dir = root.join(tier_dir_name(engine, Tier::Baseline));
        Self {
            root,
            dir,
            baseline_dir,
        }
    }

    /// Where the baseline code of `sha256` lives.
    fn baseline_path(&self, sha256: &str) -> PathBuf {
        self.baseline_dir.join(format!("{sha256}.cwasm"))
    }

    /// Moves a finished baseline compile at `tmp` into place for `sha256`.
    pub fn commit_baseline(&self, tmp: &Path, sha256: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.baseline_dir)?;
        fsutil::rename_durably(tmp, &self.baseline_path(sha256))
    }

    /// The baseline code of `sha256`, when there is some; an unusable entry
    /// is removed.
    pub fn load_baseline(
        &self,
        engine: &WasmEngine,
        sha256: &str,
    ) -> Option<wasmtime::Result<Code>> {
        load_entry(
            engine.engine_for(Tier::Baseline),
            &self.baseline_path(sha256),
        )
    }

    /// Removes the baseline code of `sha256`: its optimized code is there.
    pub fn remove_baseline(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.baseline_path(sha256));
    }

    /// The engine's name, [`engine_dir_name`]: the same for every node whose
    /// compiled code this node can load.
    pub fn engine_name(&self) -> &str {
        self.dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// Where the entry for `sha256` lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// A fresh temporary path in the cache directory for a compile to write
    /// to, unique to this compile: two compiles of one module never share it.
    pub fn temp_path(&self, sha256: &str) -> std::io::Result<PathBuf> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(&self.dir)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ok(self
            .dir
            .join(format!(".{sha256}.cwasm{}{n}", own_temp_marker())))
    }

    /// Where this process keeps the snapshot of reactor `sha256` between its
    /// baseline and its optimized compile. A temporary file: left by a crash,
    /// the next eviction removes it.
    pub fn snapshot_path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!(".{sha256}.snapshot{}", own_temp_marker()))
    }

    /// Moves a finished compile at `tmp` into place as the entry for `sha256`.
    pub fn commit(&self, tmp: &Path, sha256: &str) -> std::io::Result<()> {
        fsutil::rename_durably(tmp, &self.path(sha256))
    }

    /// Whether the cache has an entry for `sha256`.
    pub fn contains(&self, sha256: &str) -> bool {
        self.path(sha256).exists()
    }

    /// The module for `sha256` when the cache has it. `Some(Err(..))` when the
    /// entry is there but unusable; it is removed, so the next load compiles.
    pub fn load(&self, engine: &WasmEngine, sha256: &str) -> Option<wasmtime::Result<Code>> {
        load_entry(engine.engine(), &self.path(sha256))
    }

    /// Removes other engines' directories and every entry not in `keep` beyond
    /// the [`SPARE_ENTRIES`] most recently used. Returns how many it removed.
    pub fn evict(&self, keep: &HashSet<&str>) -> usize {
        let mut removed = 0;
        if let Ok(engines) = std::fs::read_dir(&self.root) {
            for entry in engines.filter_map(Result::ok) {
                let path = entry.path();
                if path != self.dir
                    && path != self.baseline_dir
                    && std::fs::remove_dir_all(path).is_ok()
                {
                    removed += 1;
                }
            }
        }
        // Baseline code is kept like optimized code: a module replaced
        // before its optimized code landed serves again at once when it
        // comes back (a rollback by file copy), with no compile.
        removed += evict_dir(&self.baseline_dir, keep);
        removed += evict_dir(&self.dir, keep);
        removed
    }
}

/// The entry at `path`, compiled by `engine`, when it is there: marked as
/// recently used for eviction, or removed when it does not load, so the
/// next load compiles it again.
fn load_entry(engine: &wasmtime::Engine, path: &Path) -> Option<wasmtime::Result<Code>> {
    if !path.exists() {
        return None;
    }
    // SAFETY: files in the cache's directories are written only through
    // `commit` or `commit_baseline`, from the output of `wedge compile-module`
    // built with the compilation settings the directory's name pins, under
    // a name that is the hash of the source. wasmtime checks the header and
    // the settings again; a file that fails is removed and compiled again.
    #[allow(unsafe_code)]
    let loaded = unsafe { Code::deserialize_file(engine, path) };
    match &loaded {
        Ok(_) => touch(path),
        Err(e) => {
            tracing::warn!(
                target: "wedge::registry",
                path = %path.display(),
                "cached module unusable, it will be compiled again: {e}"
            );
            let _ = std::fs::remove_file(path);
        }
    }
    Some(loaded)
}

/// Removes from `dir` every entry not in `keep` beyond the [`SPARE_ENTRIES`]
/// most recently used, and temporary files a crash left; how many it removed.
fn evict_dir(dir: &Path, keep: &HashSet<&str>) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut spare = Vec::new();
    let mut stale = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        match name.strip_suffix(".cwasm") {
            Some(sha) if keep.contains(sha) => {}
            Some(_) => {
                let used = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                spare.push((used, entry.path()));
            }
            // A temporary file left by a compile that a crash cut short,
            // not one of this process's compiles under way.
            None if name.starts_with('.') && !name.contains(&own_temp_marker()) => {
                stale.push(entry.path());
            }
            None => {}
        }
    }
    spare.sort_by_key(|s| std::cmp::Reverse(s.0));
    stale.extend(spare.into_iter().skip(SPARE_ENTRIES).map(|(_, path)| path));
    let removed = stale
        .into_iter()
        .filter(|path| std::fs::remove_file(path).is_ok())
        .count();
    if removed > 0 {
        let _ = fsutil::sync_dir(dir);
    }
    removed
}

/// Marks the entry at `path` as recently used, for eviction.
fn touch(path: &Path) {
    let _ = std::fs::File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_directory_is_a_stable_digest() {
        let name = engine_dir_name(&WasmEngine::new(1).unwrap());
        assert_eq!(name.len(), 24);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(name, engine_dir_name(&WasmEngine::new(2).unwrap()));
    }

    #[test]
    fn unused_entries_beyond_the_spares_are_evicted() {
        let store = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(store.path(), &WasmEngine::new(1).unwrap());
        std::fs::create_dir_all(&cache.dir).unwrap();
        let other_engine = cache.root.join("0123456789abcdef01234567");
        std::fs::create_dir_all(&other_engine).unwrap();
        let sha = |i: usize| format!("{i:064x}");
        for i in 0..SPARE_ENTRIES + 10 {
            std::fs::write(cache.path(&sha(i)), b"code").unwrap();
        }
        let crashed = cache.dir.join(".aa.cwasm.tmp1-0");
        std::fs::write(&crashed, b"half").unwrap();
        let in_use = sha(0);
        let keep = HashSet::from([in_use.as_str()]);
        cache.evict(&keep);
        assert!(!other_engine.exists());
        assert!(!crashed.exists());
        assert!(cache.contains(&in_use));
        let left = std::fs::read_dir(&cache.dir).unwrap().count();
        assert_eq!(left, 1 + SPARE_ENTRIES);
    }
}
