//! Escrow for hot counters (`[store.escrow]`): a node takes a block of a
//! counter's units from etcd in one transaction, sells from it in its local
//! ledger (durably, at local speed), takes the next block before it runs out
//! and gives back what it holds when idle or stopping. At every moment the
//! pool in etcd + the units nodes hold + the units sold = the stock.
//!
//! - [`ledger`]: the node's local record of what it holds.
//! - [`grants`]: the pool and holdings in etcd, and the transfers between them.
//!
//! A settler task runs every second: it reports each counter's units to etcd,
//! learns the rest of the fleet's, refills counters below `refill_below` and
//! gives back those idle for `idle_return`. Reading an escrowed counter gives
//! the fleet-wide figure: the pool, what the other nodes last reported (at
//! most a second old), and this node's exact units.

pub mod grants;
pub mod ledger;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::Shared;
use super::store::EtcdStore;
use crate::config::EscrowConfig;
use crate::store::backend::{KvError, OpId, Page, Store, check_key, parse_counter};
use crate::util::clock::now_ms;
use grants::Keys;
use ledger::{Entry, Ledger, ledger_key, split_key};

/// How many times one sale may find its node's block short and refill it
/// before it answers out-of-range.
const MAX_REFILLS: u32 = 4;

/// How often the settler runs.
const SETTLE_EVERY: Duration = Duration::from_secs(1);

/// The escrow of one node: its ledger, the escrowed stores and the settler.
pub struct Escrow {
    shared: Arc<Shared>,
    ledger: Ledger,
    node: String,
    stores: BTreeMap<String, EscrowConfig>,
    /// Wakes the settler early: a counter runs low.
    low: Notify,
    /// Every counter was settled with etcd once since start: a node that was
    /// reclaimed while it was down has learned it, so held units may be sold.
    verified: AtomicBool,
}

impl Escrow {
    /// The escrow over `ledger` for `stores`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        ledger: Ledger,
        node: String,
        stores: BTreeMap<String, EscrowConfig>,
    ) -> Self {
        Self {
            shared,
            ledger,
            node,
            stores,
            low: Notify::new(),
            verified: AtomicBool::new(false),
        }
    }

    /// The settings of `store`, if it is escrowed.
    pub fn config(&self, store: &str) -> Option<&EscrowConfig> {
        self.stores.get(store)
    }

    fn keys(&self, store: &str, key: &[u8]) -> Keys {
        Keys::new(&self.shared.prefix, store, key, &self.node)
    }

    /// The settler: every second each counter is settled, reported, refilled
    /// or given back; when a sale finds a counter low, that counter is
    /// refilled at once.
    pub async fn settle_forever(self: Arc<Self>) {
        let mut rounds = 0u64;
        let mut every = tokio::time::interval(SETTLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            let full = tokio::select! {
                _ = every.tick() => true,
                () = self.low.notified() => false,
            };
            match self.round(full).await {
                Ok(()) if full => self.verified.store(true, Ordering::Release),
                Ok(()) => {}
                Err(e) => tracing::debug!(target: "wedge::kv", "escrow round stopped early: {e}"),
            }
            if !full {
                continue;
            }
            rounds += 1;
            if rounds.is_multiple_of(30)
                && let Err(e) = self.ledger.sweep()
            {
                tracing::warn!(target: "wedge::kv", "escrow ledger sweep failed: {e}");
            }
        }
    }

    /// One settler round over the counters this node has a ledger entry for:
    /// every one of them when `full`, else only those running low.
    ///
    /// A refill or a give-back records the units held in the same etcd
    /// transaction, so only a counter left as it is gets a report of its own.
    async fn round(&self, full: bool) -> Result<(), KvError> {
        self.shared.ready()?;
        for lkey in self.ledger.keys()? {
            let Some((store, key)) = split_key(&lkey) else {
                continue;
            };
            let Some(config) = self.stores.get(store) else {
                continue;
            };
            let low = |e: &Entry| e.held < config.refill_at() as i64;
            if !full && !low(&self.ledger.entry(&lkey)?) {
                continue;
            }
            let keys = self.keys(store, key);
            let _turn = self.shared.turn(&lkey).await;
            let deadline = Instant::now() + self.shared.timeout;
            let settled =
                grants::settle(&self.shared, &self.ledger, &lkey, &keys, deadline).await?;
            let entry = settled.0;
            let idle =
                now_ms().saturating_sub(entry.sold_ms) > config.idle_return.0.as_millis() as u64;
            let (shared, ledger) = (&self.shared, &self.ledger);
            if idle && entry.held > 0 {
                grants::give_back(shared, ledger, &lkey, &keys, Some(settled), deadline).await?;
            } else if !idle && low(&entry) && settled.1.pool > 0 {
                let want = config.block as i64;
                grants::take(shared, ledger, &lkey, &keys, want, Some(settled), deadline).await?;
            } else if full || low(&entry) {
                // A counter low with nothing left to take is selling out:
                // the rest of the fleet hears of it at once.
                grants::report(shared, &keys, &settled, deadline).await?;
            }
        }
        Ok(())
    }

    /// Gives back every unit this node holds; used at shutdown.
    pub async fn give_back_all(&self) -> Result<i64, KvError> {
        let mut given = 0;
        for lkey in self.ledger.keys()? {
            let Some((store, key)) = split_key(&lkey) else {
                continue;
            };
            let keys = self.keys(store, key);
            let _turn = self.shared.turn(&lkey).await;
            let deadline = Instant::now() + self.shared.timeout;
            given +=
                grants::give_back(&self.shared, &self.ledger, &lkey, &keys, None, deadline).await?;
        }
        Ok(given)
    }
}

/// An escrowed store: `add` and `get` go through the escrow, the other calls
/// to etcd.
pub struct EscrowStore {
    pub(super) inner: EtcdStore,
    pub(super) escrow: Arc<Escrow>,
    pub(super) name: String,
    pub(super) config: EscrowConfig,
}

impl EscrowStore {
    /// The fleet-wide figure, fresh from etcd; while etcd cannot answer, the
    /// last one known.
    async fn fleet(&self, key: &[u8]) -> Result<(i64, bool), KvError> {
        let lkey = ledger_key(&self.name, key);
        let keys = self.escrow.keys(&self.name, key);
        let deadline = Instant::now() + self.escrow.shared.timeout;
        let fresh = grants::snapshot(&self.escrow.shared, &keys, deadline).await;
        let entry = self.escrow.ledger.entry(&lkey)?;
        match fresh {
            Ok(snap) => {
                let exists = snap.pool_rev != 0 || entry.seq > 0;
                Ok((snap.rest().saturating_add(entry.held), exists))
            }
            Err(KvError::Io(_)) if entry.seq > 0 => Ok((entry.fleet(), true)),
            Err(e) => Err(e),
        }
    }

    /// Sells `units` from this node's block, taking a block first when it
    /// holds too few.
    async fn sell(&self, op: OpId, key: &[u8], units: i64, floor: i64) -> Result<i64, KvError> {
        let lkey = ledger_key(&self.name, key);
        let escrow = &self.escrow;
        if !escrow.verified.load(Ordering::Acquire) {
            // Until the settler has checked every counter with etcd, check
            // this one first: the units held may have been reclaimed.
            let keys = escrow.keys(&self.name, key);
            let _turn = escrow.shared.turn(&lkey).await;
            let deadline = Instant::now() + escrow.shared.timeout;
            grants::settle(&escrow.shared, &escrow.ledger, &lkey, &keys, deadline).await?;
        }
        // Each try after the first follows a refill (or a wait for one).
        let mut tries = 0;
        loop {
            tries += 1;
            match escrow.ledger.sell(op, &lkey, units, floor) {
                // The caller waits on `durable` before telling the guest.
                Ok(sale) => {
                    if sale
                        .held
                        .is_some_and(|h| h < self.config.refill_at() as i64)
                    {
                        escrow.low.notify_one();
                    }
                    return Ok(sale.fleet);
                }
                Err(KvError::OutOfRange(fleet)) if tries <= MAX_REFILLS => {
                    let keys = escrow.keys(&self.name, key);
                    let _turn = escrow.shared.turn(&lkey).await;
                    // Sales that ran short together take one block: whoever
                    // had the turn before may have taken it already.
                    if escrow.ledger.entry(&lkey)?.held.saturating_sub(units) >= floor {
                        continue;
                    }
                    let deadline = Instant::now() + escrow.shared.timeout;
                    let want = (self.config.block as i64).max(units.saturating_add(floor));
                    let took = grants::take(
                        &escrow.shared,
                        &escrow.ledger,
                        &lkey,
                        &keys,
                        want,
                        None,
                        deadline,
                    )
                    .await;
                    match took {
                        Ok(0) => return Err(KvError::OutOfRange(fleet)),
                        Ok(_) => continue,
                        // etcd is away: sell what is held, and no more.
                        Err(KvError::Io(_)) => return Err(KvError::OutOfRange(fleet)),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for EscrowStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        let (fleet, exists) = self.fleet(key).await?;
        Ok(exists.then(|| fleet.to_string().into_bytes()))
    }

    async fn set(&self, op: OpId, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        check_key(key)?;
        // The value is the fleet-wide stock: the pool gets what nodes do not hold.
        let stock = parse_counter(value)?;
        let keys = self.escrow.keys(&self.name, key);
        let deadline = Instant::now() + self.escrow.shared.timeout;
        let snap = grants::snapshot(&self.escrow.shared, &keys, deadline).await?;
        let own = self.escrow.ledger.entry(&ledger_key(&self.name, key))?.held;
        let pool = stock - snap.others.saturating_add(own);
        if pool < 0 {
            return Err(KvError::Invalid(
                "nodes hold more units of this counter than that; wait for them to give back",
            ));
        }
        self.inner.set(op, key, pool.to_string().as_bytes()).await
    }

    async fn delete(&self, op: OpId, key: &[u8]) -> Result<bool, KvError> {
        self.inner.delete(op, key).await
    }

    async fn exists(&self, key: &[u8]) -> Result<bool, KvError> {
        check_key(key)?;
        Ok(self.fleet(key).await?.1)
    }

    async fn list(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page, KvError> {
        self.inner.list(prefix, after, limit).await
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
        if delta < 0 {
            // Held units count toward the fleet's, so keeping `min` of them
            // keeps the fleet-wide value within bounds too.
            let units = delta.checked_neg().ok_or(KvError::OutOfRange(0))?;
            return self.sell(op, key, units, min.max(0)).await;
        }
        // A restock goes to the pool, within `max` of the fleet-wide value.
        let (fleet, _) = self.fleet(key).await?;
        let next = fleet
            .checked_add(delta)
            .filter(|n| (min..=max).contains(n))
            .ok_or(KvError::OutOfRange(fleet))?;
        self.inner.add(op, key, delta, i64::MIN, i64::MAX).await?;
        Ok(next)
    }

    async fn compare_and_swap(
        &self,
        op: OpId,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        self.inner.compare_and_swap(op, key, expected, new).await
    }

    async fn durable(&self) -> Result<(), KvError> {
        self.escrow.ledger.durable().await
    }
}
