//! The last good state of each function, remembered in `store.dir`.
//!
//! Whenever a function is swapped in, what it was loaded from is written to
//! `<store.dir>/state/functions/<name>.json`: its `function.toml` text, its
//! deployment, and the label, sha256 and size of every version that loaded.
//! The compiled code of those versions stays in the module cache (eviction
//! keeps it). After a crash in the middle of a write (a half-copied `.wasm`, a
//! garbage `deployment.toml`), a start-up that cannot load a function from its
//! files serves this state instead, and says which file is broken.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Deployment;
use crate::util::fs as fsutil;

/// What a function was last loaded from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The text of `function.toml`, when there was one.
    pub function_toml: Option<String>,
    /// The deployment that served.
    pub deployment: Deployment,
    /// Whether it came from a `deployment.toml`.
    pub pinned: bool,
    /// Every version that loaded.
    pub versions: Vec<RecordedVersion>,
}

/// One version of a [`Record`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedVersion {
    /// The file stem.
    pub label: String,
    /// sha256 of the module, the key of its compiled code in the cache.
    pub sha256: String,
    /// Size of the module in bytes.
    pub size: u64,
}

/// The records, one file per function.
pub struct LastGood {
    dir: PathBuf,
}

impl LastGood {
    /// Records under `<store_dir>/state/functions`.
    pub fn new(store_dir: &Path) -> Self {
        Self {
            dir: store_dir.join("state").join("functions"),
        }
    }

    fn path(&self, function: &str) -> PathBuf {
        self.dir.join(format!("{function}.json"))
    }

    /// The record of `function`, if there is a readable one.
    pub fn read(&self, function: &str) -> Option<Record> {
        let text = std::fs::read(self.path(function)).ok()?;
        match serde_json::from_slice(&text) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(
                    target: "wedge::registry",
                    function,
                    path = %self.path(function).display(),
                    "the remembered last good state is unreadable: {e}"
                );
                None
            }
        }
    }

    /// Remembers `record` for `function`, replacing any earlier one atomically.
    pub fn write(&self, function: &str, record: &Record) -> std::io::Result<()> {
        if self.read(function).as_ref() == Some(record) {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        fsutil::write_atomically(&self.path(function), &json)
    }

    /// Forgets `function` (its directory is gone).
    pub fn remove(&self, function: &str) {
        if std::fs::remove_file(self.path(function)).is_ok() {
            let _ = fsutil::sync_dir(&self.dir);
        }
    }

    /// The functions that have a record.
    pub fn functions(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect()
    }

    /// The sha256 of every version any record names: the cache must keep them.
    pub fn modules(&self) -> HashSet<String> {
        self.functions()
            .iter()
            .filter_map(|f| self.read(f))
            .flat_map(|r| r.versions.into_iter().map(|v| v.sha256))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_name_their_modules() {
        let dir = tempfile::tempdir().unwrap();
        let store = LastGood::new(dir.path());
        assert_eq!(store.read("hello"), None);
        let record = Record {
            function_toml: Some("timeout = \"1s\"\n".into()),
            deployment: Deployment {
                stable: "v1".into(),
                canary: None,
                canary_percent: 0,
                previous_stable: None,
            },
            pinned: false,
            versions: vec![RecordedVersion {
                label: "v1".into(),
                sha256: "ab".repeat(32),
                size: 10,
            }],
        };
        store.write("hello", &record).unwrap();
        assert_eq!(store.read("hello"), Some(record));
        assert!(store.modules().contains(&"ab".repeat(32)));
        store.remove("hello");
        assert_eq!(store.read("hello"), None);
    }
}
