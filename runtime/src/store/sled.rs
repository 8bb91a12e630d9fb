//! The embedded backend: one sled database under `store.dir`, one sled tree per
//! named store, flushed by [`GroupCommit`].
//!
//! sled stops taking writes for good after one failed write to disk (a full
//! disk, say). wedge then takes the database out of service: new calls fail
//! fast with `io`, `/readyz` says why, and a recovery thread waits for the
//! requests still holding the old database to finish, opens the database
//! again from what is on disk (every acknowledged write, since a write is
//! acknowledged only once flushed) and makes one probe write durable. It tries
//! again with back-off until that succeeds, so the store comes back by itself
//! once the cause is gone, with no restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use crate::config::Durability;
use crate::store::backend::{
    Backend, KvError, MAX_PAGE, OpId, Page, Store, check_key, check_store_name, check_value,
    parse_counter, recorded,
};
use crate::store::commit::GroupCommit;
use crate::store::health::StoreHealth;
use crate::store::replay::{self, Replayed, refuse};

/// The first pause between two recovery attempts; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// The tree the recovery's probe write goes to; not a store a guest can name
/// (store names cannot contain `:`).
const PROBE_TREE: &str = "wedge:health";
/// Free space the store's file system must have before the store is taken
/// back into service, so a disk that is still all but full does not flap
/// between failing and recovering.
const MIN_FREE: u64 = 4 << 20;

/// sled, with wedge's durability and recovery on top.
pub struct SledBackend {
    shared: Arc<Shared>,
    recovery: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    durability: Durability,
    flush_interval: Duration,
    /// The database in service; `None` while it is being recovered.
    current: RwLock<Option<Arc<Open>>>,
    health: StoreHealth,
    /// Set when the database in service failed; the recovery thread waits on it.
    broken: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
}

/// One opening of the database.
struct Open {
    db: sled::Db,
    /// Trees already opened, so a request's `open` is a map lookup.
    trees: RwLock<HashMap<String, sled::Tree>>,
    commit: GroupCommit,
    /// Records of named writes ([`replay`]).
    ops: sled::Tree,
    /// This opening saw a storage error and is out of service.
    failed: Arc<AtomicBool>,
}

impl SledBackend {
    /// Opens (or creates) the database in `dir`.
    pub fn open(
        dir: &Path,
        durability: Durability,
        flush_interval: Duration,
    ) -> Result<Self, KvError> {
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            durability,
            flush_interval,
            current: RwLock::new(None),
            health: StoreHealth::default(),
            broken: Mutex::new(false),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let first = Open::start(&shared)?;
        *shared.current.write().unwrap_or_else(|p| p.into_inner()) = Some(first);
        let worker = shared.clone();
        let recovery = std::thread::Builder::new()
            .name("wedge-kv-recovery".into())
            .spawn(move || recover_forever(&worker))
            .map_err(|e| KvError::Io(e.to_string()))?;
        Ok(Self {
            shared,
            recovery: Some(recovery),
        })
    }

    fn current(&self) -> Result<Arc<Open>, KvError> {
        self.shared
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|o| !o.failed.load(Ordering::Acquire))
            .ok_or_else(recovering)
    }
}

impl Drop for SledBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        if let Some(thread) = self.recovery.take() {
            let _ = thread.join();
        }
    }
}

fn recovering() -> KvError {
    KvError::Io("the store is recovering from a storage error".into())
}

#[async_trait::async_trait]
impl Backend for SledBackend {
    fn open(&self, name: &str) -> Result<Arc<dyn Store>, KvError> {
        check_store_name(name)?;
        let open = self.current()?;
        let cached = open
            .trees
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let tree = match cached {
            Some(tree) => tree,
            None => {
                let tree = open
                    .db
                    .open_tree(format!("store:{name}"))
                    .map_err(|e| self.shared.fail(&open.failed, &e))?;
                open.trees
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(name.to_string())
                    .or_insert(tree)
                    .clone()
            }
        };
        Ok(Arc::new(SledStore {
            tree,
            open,
            shared: self.shared.clone(),
        }))
    }

    async fn close(&self) -> Result<(), KvError> {
        let open = self.current()?;
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            open.db
                .flush()
                .map(|_| ())
                .map_err(|e| shared.fail(&open.failed, &e))
        })
        .await
        .map_err(|e| KvError::Io(e.to_string()))?
    }

    fn health(&self) -> &StoreHealth {
        &self.shared.health
    }
}

impl Open {
    /// Opens the database, with its group commit.
    fn start(shared: &Arc<Shared>) -> Result<Arc<Self>, KvError> {
        let db = sled::Config::new()
            .path(&shared.dir)
            // wedge decides when to flush: per group of writers, or on its own timer.
            .flush_every_ms(None)
            .open()
            .map_err(|e| KvError::Io(e.to_string()))?;
        let failed = Arc::new(AtomicBool::new(false));
        let flusher = db.clone();
        let (flag, report) = (failed.clone(), Arc::downgrade(shared));
        let commit = GroupCommit::start(shared.durability, shared.flush_interval, move || {
            flusher.flush().map(|_| ()).map_err(|e| {
                // A failed flush, in either mode, takes this opening out of service.
                if let Some(shared) = Weak::upgrade(&report) {
                    shared.fail(&flag, &e);
                }
                e.to_string()
            })
        })
        .map_err(|e| KvError::Io(e.to_string()))?;
        let ops = db
            .open_tree(replay::TREE)
            .map_err(|e| KvError::Io(e.to_string()))?;
        Ok(Arc::new(Self {
            db,
            trees: RwLock::default(),
            commit,
            ops,
            failed,
        }))
    }
}

impl Shared {
    /// A storage error on the opening whose flag is `failed`: takes it out of
    /// service (once) and wakes the recovery; later errors are counted.
    /// Returns the error for the caller.
    fn fail(&self, failed: &AtomicBool, error: &sled::Error) -> KvError {
        if failed.swap(true, Ordering::AcqRel) {
            self.health.counted();
        } else {
            self.broken(&error.to_string());
        }
        KvError::Io(error.to_string())
    }

    fn broken(&self, why: &str) {
        tracing::error!(target: "wedge::kv", "storage error, recovering the store: {why}");
        self.health.failed(why);
        *self.broken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_all();
    }
}

/// How often old records of named writes are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

fn sweep_records(shared: &Shared) {
    let open = shared
        .current
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(open) = open.filter(|o| !o.failed.load(Ordering::Acquire))
        && let Err(e) = replay::sweep(&open.ops)
    {
        shared.fail(&open.failed, &e);
    }
}

/// The recovery thread: waits for a failure, then replaces the database; in
/// between, drops old records of named writes.
fn recover_forever(shared: &Arc<Shared>) {
    loop {
        {
            let mut broken = shared.broken.lock().unwrap_or_else(|p| p.into_inner());
            while !*broken && !shared.stop.load(Ordering::Acquire) {
                let (guard, waited) = shared
                    .wake
                    .wait_timeout(broken, SWEEP_EVERY)
                    .unwrap_or_else(|p| p.into_inner());
                broken = guard;
                if waited.timed_out() {
                    sweep_records(shared);
                }
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            *broken = false;
        }
        let started = Instant::now();
        let old = shared
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        // sled holds a lock on its files: the old opening must be gone before
        // the new one. Requests holding it finish within their own timeouts.
        if let Some(old) = old {
            let gone = Arc::downgrade(&old);
            drop(old);
            while gone.strong_count() > 0 {
                if shared.stop.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut retry = FIRST_RETRY;
        loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            match Open::start(shared).and_then(|open| probe(&open, &shared.dir).map(|()| open)) {
                Ok(open) => {
                    *shared.current.write().unwrap_or_else(|p| p.into_inner()) = Some(open);
                    shared.health.recovered();
                    tracing::info!(
                        target: "wedge::kv",
                        recovery_ms = started.elapsed().as_millis() as u64,
                        "the store takes writes again"
                    );
                    break;
                }
                Err(e) => {
                    shared.health.failed(&e.to_string());
                    tracing::warn!(
                        target: "wedge::kv",
                        retry_ms = retry.as_millis() as u64,
                        "the store is still failing: {e}"
                    );
                    std::thread::sleep(retry);
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

/// The store takes writes: its file system has room, and one small write
/// becomes durable.
fn probe(open: &Open, dir: &Path) -> Result<(), KvError> {
    let stat = rustix::fs::statvfs(dir).map_err(|e| KvError::Io(e.to_string()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < MIN_FREE {
        return Err(KvError::Io(format!(
            "{} bytes free in {}, waiting for {MIN_FREE}",
            free,
            dir.display()
        )));
    }
    let io = |e: sled::Error| KvError::Io(e.to_string());
    let tree = open.db.open_tree(PROBE_TREE).map_err(io)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .to_string();
    tree.insert("probe", stamp.as_bytes()).map_err(io)?;
    open.db.flush().map(|_| ()).map_err(io)
}

/// One named store: a sled tree of the opening it was made from.
pub struct SledStore {
    tree: sled::Tree,
    open: Arc<Open>,
    shared: Arc<Shared>,
}

impl SledStore {
    /// Fails fast once this store's opening is out of service.
    fn in_service(&self) -> Result<(), KvError> {
        match self.open.failed.load(Ordering::Acquire) {
            false => Ok(()),
            true => Err(recovering()),
        }
    }

    fn io(&self, e: sled::Error) -> KvError {
        self.shared.fail(&self.open.failed, &e)
    }

    /// Applies a named write once ([`replay::once`]).
    fn once<T>(
        &self,
        op: OpId,
        apply: impl Fn(
            &sled::transaction::TransactionalTree,
        )
            -> sled::transaction::ConflictableTransactionResult<(T, String), KvError>,
        parse: impl Fn(&[u8]) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        replay::once(&self.tree, &self.open.ops, op, apply, parse).map_err(|e| match e {
            Replayed::Refused(e) => e,
            Replayed::Storage(e) => self.io(e),
        })
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        self.in_service()?;
        Ok(self
            .tree
            .get(key)
            .map_err(|e| self.io(e))?
            .map(|v| v.to_vec()))
    }

    async fn set(&self, op: OpId, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        check_value(value)?;
        self.in_service()?;
        if op.named() {
            return self.once(
                op,
                |t| {
                    t.insert(key, value)?;
                    Ok(((), "set:".into()))
                },
                |r| recorded(r, "set").map(|_| ()),
            );
        }
        self.tree.insert(key, value).map_err(|e| self.io(e))?;
        Ok(())
    }

    async fn delete(&self, op: OpId, key: &[u8]) -> Result<bool, KvError> {
        check_key(key)?;
        self.in_service()?;
        if op.named() {
            return self.once(
                op,
                |t| {
                    let existed = t.remove(key)?.is_some();
                    Ok((existed, format!("delete:{}", u8::from(existed))))
                },
                |r| recorded(r, "delete").map(|r| r == "1"),
            );
        }
        Ok(self.tree.remove(key).map_err(|e| self.io(e))?.is_some())
    }

    async fn exists(&self, key: &[u8]) -> Result<bool, KvError> {
        check_key(key)?;
        self.in_service()?;
        self.tree.contains_key(key).map_err(|e| self.io(e))
    }

    async fn list(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page, KvError> {
        self.in_service()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let mut page = Page::default();
        let start = match after {
            Some(after) => std::ops::Bound::Excluded(after.to_vec()),
            None => std::ops::Bound::Included(prefix.to_vec()),
        };
        for item in self.tree.range((start, std::ops::Bound::Unbounded)) {
            let key = item.map_err(|e| self.io(e))?.0;
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

    async fn add(
        &self,
        op: OpId,
        key: &[u8],
        delta: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, KvError> {
        check_key(key)?;
        self.in_service()?;
        if op.named() {
            return self.once(
                op,
                |t| {
                    let current = t.get(key)?;
                    let value = match current.as_deref().map(parse_counter).transpose() {
                        Ok(value) => value.unwrap_or(0),
                        Err(e) => return refuse(e),
                    };
                    match value.checked_add(delta).filter(|n| (min..=max).contains(n)) {
                        Some(next) => {
                            t.insert(key, next.to_string().as_bytes())?;
                            Ok((next, format!("add:{next}")))
                        }
                        None => refuse(KvError::OutOfRange(value)),
                    }
                },
                |r| parse_counter(recorded(r, "add")?.as_bytes()),
            );
        }
        loop {
            let current = self.tree.get(key).map_err(|e| self.io(e))?;
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
                .map_err(|e| self.io(e))?;
            if swapped.is_ok() {
                return Ok(next);
            }
            // Another writer changed the counter between our read and our swap: retry.
        }
    }

    async fn compare_and_swap(
        &self,
        op: OpId,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_key(key)?;
        check_value(new)?;
        self.in_service()?;
        if op.named() {
            return self
                .once(
                    op,
                    |t| {
                        if t.get(key)?.as_deref() != expected {
                            // Nothing changed: nothing to record either.
                            return refuse(KvError::NotFound);
                        }
                        t.insert(key, new)?;
                        Ok((true, "cas:1".into()))
                    },
                    |r| recorded(r, "cas").map(|r| r == "1"),
                )
                .or_else(|e| match e {
                    KvError::NotFound => Ok(false),
                    e => Err(e),
                });
        }
        let swapped = self
            .tree
            .compare_and_swap(key, expected, Some(new))
            .map_err(|e| self.io(e))?;
        Ok(swapped.is_ok())
    }

    async fn durable(&self) -> Result<(), KvError> {
        self.in_service()?;
        self.open.commit.durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> OpId {
        OpId::random()
    }

    fn backend() -> (tempfile::TempDir, SledBackend) {
        let dir = tempfile::tempdir().unwrap();
        let b =
            SledBackend::open(dir.path(), Durability::Sync, Duration::from_millis(100)).unwrap();
        (dir, b)
    }

    #[tokio::test]
    async fn add_is_bounded_and_changes_nothing_when_out_of_range() {
        let (_dir, b) = backend();
        let s = b.open("inventory").unwrap();
        s.set(op(), b"sku", b"3").await.unwrap();
        assert_eq!(s.add(op(), b"sku", -2, 0, i64::MAX).await, Ok(1));
        assert_eq!(
            s.add(op(), b"sku", -2, 0, i64::MAX).await,
            Err(KvError::OutOfRange(1))
        );
        assert_eq!(s.get(b"sku").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            s.add(op(), b"new", 5, 0, 10).await,
            Ok(5),
            "absent counts as zero"
        );
        assert_eq!(
            s.add(op(), b"new", i64::MAX, i64::MIN, i64::MAX).await,
            Err(KvError::OutOfRange(5))
        );
        s.set(op(), b"text", b"hello").await.unwrap();
        assert!(matches!(
            s.add(op(), b"text", 1, 0, 10).await,
            Err(KvError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn a_named_write_applies_once() {
        let (_dir, b) = backend();
        let s = b.open("inventory").unwrap();
        s.set(op(), b"sku", b"10").await.unwrap();
        let order = OpId::derived("shop", b"order-1", 0);
        assert_eq!(s.add(order, b"sku", -3, 0, i64::MAX).await, Ok(7));
        assert_eq!(
            s.add(order, b"sku", -3, 0, i64::MAX).await,
            Ok(7),
            "replayed"
        );
        assert_eq!(s.get(b"sku").await.unwrap().as_deref(), Some(&b"7"[..]));
        let other = OpId::derived("shop", b"order-2", 0);
        assert_eq!(
            s.add(other, b"sku", -9, 0, i64::MAX).await,
            Err(KvError::OutOfRange(7))
        );
        assert_eq!(
            s.add(other, b"sku", -7, 0, i64::MAX).await,
            Ok(0),
            "a refusal is not recorded"
        );
        let swap = OpId::derived("shop", b"order-3", 0);
        assert_eq!(s.compare_and_swap(swap, b"k", None, b"1").await, Ok(true));
        assert_eq!(s.compare_and_swap(swap, b"k", None, b"1").await, Ok(true));
        assert!(matches!(
            s.set(swap, b"k", b"2").await,
            Err(KvError::Invalid(_))
        ));
        assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"1"[..]));
    }

    #[tokio::test]
    async fn compare_and_swap_on_value_and_absence() {
        let (_dir, b) = backend();
        let s = b.open("s").unwrap();
        assert_eq!(s.compare_and_swap(op(), b"k", None, b"1").await, Ok(true));
        assert_eq!(s.compare_and_swap(op(), b"k", None, b"2").await, Ok(false));
        assert_eq!(
            s.compare_and_swap(op(), b"k", Some(b"1"), b"2").await,
            Ok(true)
        );
        assert_eq!(s.get(b"k").await.unwrap().as_deref(), Some(&b"2"[..]));
    }

    #[tokio::test]
    async fn list_pages_by_prefix() {
        let (_dir, b) = backend();
        let s = b.open("s").unwrap();
        for k in ["a1", "a2", "a3", "b1"] {
            s.set(op(), k.as_bytes(), b"x").await.unwrap();
        }
        let first = s.list(b"a", None, 2).await.unwrap();
        assert_eq!(first.keys, [b"a1".to_vec(), b"a2".to_vec()]);
        assert!(first.more);
        let second = s.list(b"a", Some(b"a2"), 2).await.unwrap();
        assert_eq!(second.keys, [b"a3".to_vec()]);
        assert!(!second.more);
    }

    #[tokio::test]
    async fn stores_are_separate_and_names_checked() {
        let (_dir, b) = backend();
        b.open("one").unwrap().set(op(), b"k", b"1").await.unwrap();
        assert_eq!(b.open("two").unwrap().get(b"k").await, Ok(None));
        assert!(b.open("../etc").is_err());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn durable_writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = SledBackend::open(dir.path(), Durability::Sync, Duration::from_millis(100))
                .unwrap();
            let s = b.open("s").unwrap();
            s.set(op(), b"k", b"v").await.unwrap();
            s.durable().await.unwrap();
        }
        let b =
            SledBackend::open(dir.path(), Durability::Sync, Duration::from_millis(100)).unwrap();
        assert_eq!(
            b.open("s").unwrap().get(b"k").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
}
