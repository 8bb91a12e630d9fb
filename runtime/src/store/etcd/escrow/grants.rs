//! The escrow's records in etcd, and the transactions that move units between
//! the pool and a node.
//!
//! - The pool, the units no node holds, is the counter's own key,
//!   `<prefix>/kv/<store>/<key>`, as ASCII decimal.
//! - Each node's holding is `<prefix>/holds/<store>/<hex key>/<node>`:
//!   `<held> <seq>`, or `<held> <seq> reclaimed` once an operator gave a dead
//!   node's units back. `held` is what the node last reported; `seq` counts
//!   the blocks taken and given back, so a node that died mid-transaction
//!   learns whether it went through.
//!
//! A block is taken (or given back) in one transaction that compares the
//! revisions of the pool and of the holding, so units are never created or
//! lost between them.

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use tokio::time::Instant;

use super::ledger::{Entry, Intent, Ledger};
use crate::store::backend::{KvError, parse_counter};
use crate::store::etcd::Shared;
use crate::store::etcd::store::prefix_end;

/// A node's holding as etcd records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Holding {
    /// Units the node last reported holding.
    pub held: i64,
    /// Blocks taken and given back so far.
    pub seq: u64,
    /// An operator reclaimed the node's units: it must not sell them.
    pub reclaimed: bool,
}

impl Holding {
    fn encode(&self) -> String {
        match self.reclaimed {
            false => format!("{} {}", self.held, self.seq),
            true => format!("{} {} reclaimed", self.held, self.seq),
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, KvError> {
        let bad = || KvError::Io("a corrupt escrow holding in etcd".into());
        let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
        let mut p = text.split(' ');
        let held = p.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let seq = p.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        let reclaimed = match p.next() {
            None => false,
            Some("reclaimed") => true,
            Some(_) => return Err(bad()),
        };
        Ok(Self {
            held,
            seq,
            reclaimed,
        })
    }
}

/// One counter's records, read at one revision.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Units in the pool, and the pool key's revision (0: absent).
    pub pool: i64,
    pub pool_rev: i64,
    /// This node's holding and its revision (0: absent).
    pub mine: Holding,
    pub mine_rev: i64,
    /// Units the other nodes last reported holding.
    pub others: i64,
}

impl Snapshot {
    /// The units this node does not hold: the pool's and the other nodes'.
    pub fn rest(&self) -> i64 {
        self.pool.saturating_add(self.others)
    }
}

/// Where a counter's records live.
pub struct Keys {
    pub pool: Vec<u8>,
    pub holds: Vec<u8>,
    pub mine: Vec<u8>,
}

impl Keys {
    pub fn new(prefix: &str, store: &str, key: &[u8], node: &str) -> Self {
        let holds = format!("{prefix}/holds/{store}/{}/", hex::encode(key)).into_bytes();
        Self {
            pool: [format!("{prefix}/kv/{store}/").as_bytes(), key].concat(),
            mine: [holds.as_slice(), node.as_bytes()].concat(),
            holds,
        }
    }
}

/// Reads the pool and every holding of a counter at one revision.
pub(crate) async fn snapshot(
    shared: &Shared,
    keys: &Keys,
    deadline: Instant,
) -> Result<Snapshot, KvError> {
    let response = shared
        .call(deadline, || {
            let mut kv = shared.client.kv_client();
            let txn = Txn::new().and_then([
                TxnOp::get(keys.pool.clone(), None),
                TxnOp::get(
                    keys.holds.clone(),
                    Some(GetOptions::new().with_range(prefix_end(&keys.holds))),
                ),
            ]);
            async move { kv.txn(txn).await }
        })
        .await?;
    let mut snap = Snapshot::default();
    for (i, r) in response.op_responses().into_iter().enumerate() {
        let TxnOpResponse::Get(get) = r else { continue };
        for kv in get.kvs() {
            if i == 0 {
                snap.pool = parse_counter(kv.value())?;
                snap.pool_rev = kv.mod_revision();
            } else if kv.key() == keys.mine.as_slice() {
                snap.mine = Holding::decode(kv.value())?;
                snap.mine_rev = kv.mod_revision();
            } else {
                snap.others = snap
                    .others
                    .saturating_add(Holding::decode(kv.value())?.held);
            }
        }
    }
    Ok(snap)
}

/// Moves `intent`'s units between the pool and this node in one transaction,
/// as recorded in `entry` (whose intent it is); whether it went through.
/// A lost reply is resolved by the holding's sequence number.
async fn transfer(
    shared: &Shared,
    keys: &Keys,
    snap: &Snapshot,
    entry: &Entry,
    deadline: Instant,
) -> Result<bool, KvError> {
    let (pool, held) = match entry.intent {
        Some(Intent::Take(n)) => (snap.pool - n, entry.held + n),
        Some(Intent::Give(n)) => (snap.pool + n, entry.held),
        None => return Ok(true),
    };
    let holding = Holding {
        held,
        seq: entry.seq + 1,
        reclaimed: false,
    };
    let response = shared
        .call(deadline, || {
            let mut kv = shared.client.kv_client();
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(keys.pool.clone(), CompareOp::Equal, snap.pool_rev),
                    Compare::mod_revision(keys.mine.clone(), CompareOp::Equal, snap.mine_rev),
                ])
                .and_then([
                    TxnOp::put(keys.pool.clone(), pool.to_string(), None),
                    TxnOp::put(keys.mine.clone(), holding.encode(), None),
                ])
                .or_else([TxnOp::get(keys.mine.clone(), None)]);
            async move { kv.txn(txn).await }
        })
        .await?;
    if response.succeeded() {
        return Ok(true);
    }
    // Not this attempt; an earlier one whose reply was lost, maybe.
    let now = response
        .op_responses()
        .into_iter()
        .find_map(|r| match r {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| Holding::decode(kv.value())),
            _ => None,
        })
        .transpose()?
        .unwrap_or_default();
    Ok(now.seq == entry.seq + 1 && !now.reclaimed)
}

/// A counter's ledger entry and the snapshot of etcd it was settled against.
pub(crate) type Settled = (Entry, Snapshot);

/// Brings the ledger entry in line with etcd: settles an intent left by a
/// crash or a lost reply, obeys a reclaim and learns the rest of the fleet's
/// units. Writes nothing to etcd, and leaves durability to the next sale or
/// transfer: what it changes, etcd can tell again after a crash.
pub(crate) async fn settle(
    shared: &Shared,
    ledger: &Ledger,
    lkey: &[u8],
    keys: &Keys,
    deadline: Instant,
) -> Result<Settled, KvError> {
    let snap = snapshot(shared, keys, deadline).await?;
    let reclaimed = |e: &Entry| snap.mine.reclaimed && snap.mine.seq > e.seq;
    let before = ledger.entry(lkey)?;
    if reclaimed(&before) && (before.held > 0 || before.intent.is_some()) {
        tracing::error!(
            target: "wedge::kv",
            held = before.held,
            "an operator reclaimed this node's escrowed units: dropping them unsold"
        );
    }
    let rest = snap.rest();
    let entry = ledger.update(lkey, |e| {
        let e = match e.intent {
            _ if reclaimed(&e) => Entry {
                held: 0,
                seq: snap.mine.seq,
                intent: None,
                ..e
            },
            Some(_) => e.settled(snap.mine.seq == e.seq + 1),
            None => e,
        };
        Ok(Entry { rest, ..e })
    })?;
    Ok((entry, snap))
}

/// Tells etcd how many units this node holds, when its record differs.
pub(crate) async fn report(
    shared: &Shared,
    keys: &Keys,
    (entry, snap): &Settled,
    deadline: Instant,
) -> Result<(), KvError> {
    if entry.intent.is_some()
        || snap.mine.seq != entry.seq
        || snap.mine.held == entry.held
        || snap.mine.reclaimed
    {
        return Ok(());
    }
    let report = Holding {
        held: entry.held,
        seq: entry.seq,
        reclaimed: false,
    };
    shared
        .call(deadline, || {
            let mut kv = shared.client.kv_client();
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    keys.mine.clone(),
                    CompareOp::Equal,
                    snap.mine_rev,
                )])
                .and_then([TxnOp::put(keys.mine.clone(), report.encode(), None)]);
            async move { kv.txn(txn).await }
        })
        .await?;
    Ok(())
}

/// Makes durable the intent `entry` holds, carries it out in etcd (which
/// also records the units held, so no separate report is needed), and settles
/// the ledger by the outcome; whether it went through. The settled entry
/// becomes durable with the next sale: a crash before then leaves the intent,
/// which etcd's sequence number resolves.
async fn carry_out(
    shared: &Shared,
    ledger: &Ledger,
    lkey: &[u8],
    keys: &Keys,
    snap: &Snapshot,
    entry: &Entry,
    deadline: Instant,
) -> Result<bool, KvError> {
    ledger.durable().await?;
    let applied = transfer(shared, keys, snap, entry, deadline).await?;
    let into_pool = match (entry.intent, applied) {
        (Some(Intent::Take(n)), true) => -n,
        (Some(Intent::Give(n)), true) => n,
        _ => 0,
    };
    let rest = snap.rest().saturating_add(into_pool);
    ledger.update(lkey, |e| {
        Ok(Entry {
            rest,
            ..e.settled(applied)
        })
    })?;
    Ok(applied)
}

/// Takes up to `want` units from the pool for this node; how many it took.
/// `start`, when given, is a settlement just made, so the first try need not
/// read etcd again.
pub(crate) async fn take(
    shared: &Shared,
    ledger: &Ledger,
    lkey: &[u8],
    keys: &Keys,
    want: i64,
    mut start: Option<Settled>,
    deadline: Instant,
) -> Result<i64, KvError> {
    loop {
        let (_, snap) = match start.take() {
            Some(settled) => settled,
            None => settle(shared, ledger, lkey, keys, deadline).await?,
        };
        let n = want.min(snap.pool);
        if n <= 0 {
            return Ok(0);
        }
        let entry = ledger.update(lkey, |e| {
            Ok(Entry {
                intent: Some(Intent::Take(n)),
                ..e
            })
        })?;
        if carry_out(shared, ledger, lkey, keys, &snap, &entry, deadline).await? {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            return Err(KvError::Io("the escrow pool is too contended".into()));
        }
    }
}

/// Gives every unit this node holds of a counter back to the pool; how many.
/// `start` as for [`take`].
pub(crate) async fn give_back(
    shared: &Shared,
    ledger: &Ledger,
    lkey: &[u8],
    keys: &Keys,
    mut start: Option<Settled>,
    deadline: Instant,
) -> Result<i64, KvError> {
    loop {
        let (entry, snap) = match start.take() {
            Some(settled) => settled,
            None => settle(shared, ledger, lkey, keys, deadline).await?,
        };
        if entry.held <= 0 {
            return Ok(0);
        }
        let entry = ledger.update(lkey, |e| {
            Ok(Entry {
                held: 0,
                intent: Some(Intent::Give(e.held)),
                ..e
            })
        })?;
        let Some(Intent::Give(n)) = entry.intent else {
            unreachable!("just written")
        };
        if carry_out(shared, ledger, lkey, keys, &snap, &entry, deadline).await? {
            return Ok(n);
        }
        if Instant::now() >= deadline {
            return Err(KvError::Io("the escrow pool is too contended".into()));
        }
    }
}

/// Gives every unit `node` holds back to the pools and marks its holdings
/// reclaimed, so that the node, should it come back, drops them unsold.
/// Returns each counter's store, key and units.
pub(crate) async fn reclaim(
    shared: &Shared,
    node: &str,
    deadline: Instant,
) -> Result<Vec<(String, Vec<u8>, i64)>, KvError> {
    let holds = format!("{}/holds/", shared.prefix).into_bytes();
    let suffix = format!("/{node}").into_bytes();
    let listed = shared
        .call(deadline, || {
            let mut kv = shared.client.kv_client();
            let (start, end) = (holds.clone(), prefix_end(&holds));
            async move {
                kv.get(
                    start,
                    Some(GetOptions::new().with_range(end).with_keys_only()),
                )
                .await
            }
        })
        .await?;
    let mut done = Vec::new();
    for kv in listed.kvs() {
        let Some(rest) = kv.key().strip_prefix(holds.as_slice()) else {
            continue;
        };
        let Some(path) = rest.strip_suffix(suffix.as_slice()) else {
            continue;
        };
        let Some((store, hex)) = std::str::from_utf8(path)
            .ok()
            .and_then(|p| p.split_once('/'))
        else {
            continue;
        };
        let key: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        let Some(key) = key else { continue };
        let keys = Keys::new(&shared.prefix, store, &key, node);
        loop {
            let snap = snapshot(shared, &keys, deadline).await?;
            if snap.mine.reclaimed && snap.mine.held == 0 {
                break;
            }
            let gone = Holding {
                held: 0,
                seq: snap.mine.seq + 1,
                reclaimed: true,
            };
            let units = snap.mine.held;
            let response = shared
                .call(deadline, || {
                    let mut kv = shared.client.kv_client();
                    let txn = Txn::new()
                        .when([
                            Compare::mod_revision(
                                keys.pool.clone(),
                                CompareOp::Equal,
                                snap.pool_rev,
                            ),
                            Compare::mod_revision(
                                keys.mine.clone(),
                                CompareOp::Equal,
                                snap.mine_rev,
                            ),
                        ])
                        .and_then([
                            TxnOp::put(keys.pool.clone(), (snap.pool + units).to_string(), None),
                            TxnOp::put(keys.mine.clone(), gone.encode(), None),
                        ]);
                    async move { kv.txn(txn).await }
                })
                .await?;
            if response.succeeded() {
                done.push((store.to_string(), key.clone(), units));
                break;
            }
            if Instant::now() >= deadline {
                return Err(KvError::Io("the escrow pool is too contended".into()));
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_round_trip() {
        for h in [
            Holding::default(),
            Holding {
                held: 50,
                seq: 3,
                reclaimed: false,
            },
            Holding {
                held: 0,
                seq: 9,
                reclaimed: true,
            },
        ] {
            assert_eq!(Holding::decode(h.encode().as_bytes()), Ok(h));
        }
        let k = Keys::new("/w", "inv", b"sku/1", "edge-1");
        assert_eq!(k.pool, b"/w/kv/inv/sku/1");
        assert_eq!(k.mine, b"/w/holds/inv/736b752f31/edge-1");
        assert_eq!(prefix_end(&k.holds), b"/w/holds/inv/736b752f310");
    }
}
