//! The embedded backend: one sled database under `store.dir`, one sled tree per
//! named store, flushed by [`GroupCommit`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::Durability;
use crate::kv::commit::GroupCommit;
use crate::kv::store::{
    Backend, KvError, MAX_PAGE, Page, Store, check_key, check_value, parse_counter,
    valid_store_name,
};

/// sled, with wedge's durability on top.
pub struct SledBackend {
    db: sled::Db,
    /// Trees already opened, so a request's `open` is a map lookup.
    stores: RwLock<HashMap<String, Arc<SledStore>>>,
    commit: GroupCommit,
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`.
    pub fn open(
        dir: &Path,
        durability: Durability,
        flush_interval: Duration,
    ) -> Result<Self, KvError> {
        let db = sled::Config::new()
            .path(dir)
            // wedge decides when to flush: per group of writers, or on its own timer.
            .flush_every_ms(None)
            .open()
            .map_err(io)?;
        let flusher = db.clone();
        let commit = GroupCommit::start(durability, flush_interval, move || {
            flusher.flush().map(|_| ()).map_err(|e| e.to_string())
        })
        .map_err(|e| KvError::Io(e.to_string()))?;
        Ok(Self {
            db,
            stores: RwLock::default(),
            commit,
        })
    }
}

#[async_trait::async_trait]
impl Backend for SledBackend {
    fn open(&self, name: &str) -> Result<Arc<dyn Store>, KvError> {
        if !valid_store_name(name) {
            return Err(KvError::Invalid(
                "store names are 1-64 of A-Z a-z 0-9 - _ .",
            ));
        }
        if let Some(store) = self
            .stores
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(store.clone());
        }
        let mut stores = self.stores.write().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = stores.get(name) {
            return Ok(store.clone());
        }
        let store = Arc::new(SledStore {
            tree: self.db.open_tree(format!("store:{name}")).map_err(io)?,
        });
        stores.insert(name.to_string(), store.clone());
        Ok(store)
    }

    async fn durable(&self) -> Result<(), KvError> {
        self.commit.durable().await
    }

    fn flush(&self) -> Result<(), KvError> {
        self.db.flush().map(|_| ()).map_err(io)
    }
}

/// One named store: a sled tree.
pub struct SledStore {
    tree: sled::Tree,
}

fn io(e: sled::Error) -> KvError {
    KvError::Io(e.to_string())
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        Ok(self.tree.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn set(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        check_value(value)?;
        self.tree.insert(key, value).map_err(io)?;
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<bool, KvError> {
        check_key(key)?;
        Ok(self.tree.remove(key).map_err(io)?.is_some())
    }

    fn exists(&self, key: &[u8]) -> Result<bool, KvError> {
        check_key(key)?;
        self.tree.contains_key(key).map_err(io)
    }

    fn list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Result<Page, KvError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut page = Page::default();
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.to_vec()),
            None => std::ops::Bound::Included(prefix.to_vec()),
        };
        for item in self.tree.range((start, std::ops::Bound::Unbounded)) {
            let key = item.map_err(io)?.0;
            if !key.starts_with(prefix) {
                break;
            }
            if page.keys.len() == limit {
                page.more = true;
                break;
            }
            page.keys.push(key.to_vec());
        }
        Ok(page)
    }

    fn add(&self, key: &[u8], delta: i64, min: i64, max: i64) -> Result<i64, KvError> {
        check_key(key)?;
        loop {
            let current = self.tree.get(key).map_err(io)?;
            let value = current
                .as_deref()
                .map(parse_counter)
                .transpose()?
                .unwrap_or(0);
            let next = value
                .checked_add(delta)
                .filter(|n| (min..=max).contains(n))
                .ok_or(KvError::OutOfRange(value))?;
            let swapped = self
                .tree
                .compare_and_swap(key, current, Some(next.to_string().into_bytes()))
                .map_err(io)?;
            if swapped.is_ok() {
                return Ok(next);
            }
            // Another writer changed the counter between our read and our swap: retry.
        }
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_key(key)?;
        check_value(new)?;
        let swapped = self
            .tree
            .compare_and_swap(key, expected, Some(new))
            .map_err(io)?;
        Ok(swapped.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> (tempfile::TempDir, SledBackend) {
        let dir = tempfile::tempdir().unwrap();
        let b =
            SledBackend::open(dir.path(), Durability::Sync, Duration::from_millis(100)).unwrap();
        (dir, b)
    }

    #[test]
    fn add_is_bounded_and_changes_nothing_when_out_of_range() {
        let (_dir, b) = backend();
        let s = b.open("inventory").unwrap();
        s.set(b"sku", b"3").unwrap();
        assert_eq!(s.add(b"sku", -2, 0, i64::MAX), Ok(1));
        assert_eq!(s.add(b"sku", -2, 0, i64::MAX), Err(KvError::OutOfRange(1)));
        assert_eq!(s.get(b"sku").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.add(b"new", 5, 0, 10), Ok(5), "absent counts as zero");
        assert_eq!(
            s.add(b"new", i64::MAX, i64::MIN, i64::MAX),
            Err(KvError::OutOfRange(5))
        );
        s.set(b"text", b"hello").unwrap();
        assert!(matches!(s.add(b"text", 1, 0, 10), Err(KvError::Invalid(_))));
    }

    #[test]
    fn compare_and_swap_on_value_and_absence() {
        let (_dir, b) = backend();
        let s = b.open("s").unwrap();
        assert_eq!(s.compare_and_swap(b"k", None, b"1"), Ok(true));
        assert_eq!(s.compare_and_swap(b"k", None, b"2"), Ok(false));
        assert_eq!(s.compare_and_swap(b"k", Some(b"1"), b"2"), Ok(true));
        assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn list_pages_by_prefix() {
        let (_dir, b) = backend();
        let s = b.open("s").unwrap();
        for k in ["a1", "a2", "a3", "b1"] {
            s.set(k.as_bytes(), b"x").unwrap();
        }
        let first = s.list(b"a", None, 2).unwrap();
        assert_eq!(first.keys, [b"a1".to_vec(), b"a2".to_vec()]);
        assert!(first.more);
        let second = s.list(b"a", Some(b"a2"), 2).unwrap();
        assert_eq!(second.keys, [b"a3".to_vec()]);
        assert!(!second.more);
    }

    #[test]
    fn stores_are_separate_and_names_checked() {
        let (_dir, b) = backend();
        b.open("one").unwrap().set(b"k", b"1").unwrap();
        assert_eq!(b.open("two").unwrap().get(b"k"), Ok(None));
        assert!(b.open("../etc").is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn durable_writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = SledBackend::open(dir.path(), Durability::Sync, Duration::from_millis(100))
                .unwrap();
            b.open("s").unwrap().set(b"k", b"v").unwrap();
            b.durable().await.unwrap();
        }
        let b =
            SledBackend::open(dir.path(), Durability::Sync, Duration::from_millis(100)).unwrap();
        assert_eq!(
            b.open("s").unwrap().get(b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
}
