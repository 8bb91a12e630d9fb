//! A node's own record of the escrowed units it holds, in a local sled
//! database (`<store.dir>/escrow`), made durable before a sale is acknowledged.
//!
//! One entry per counter, `<store>/<key>`: the units held, the sequence number
//! of the last change etcd knows about (a block taken or given back), the
//! change under way if any, the rest of the fleet's units as last read, and
//! when the last sale was. A change is written here as an intent before its etcd transaction and
//! settled after it; a node that dies in between finds the intent on restart
//! and asks etcd whether it went through (etcd's record of the node's holding
//! carries the same sequence number). Units given back are taken off `held`
//! with the intent, so they cannot be sold meanwhile. What etcd last heard of
//! `held` is etcd's to say: settling compares the two.

use std::path::Path;
use std::time::Duration;

use sled::transaction::TransactionalTree;

use crate::config::Durability;
use crate::store::backend::{KvError, OpId, parse_counter, recorded};
use crate::store::commit::GroupCommit;
use crate::store::replay::{self, Replayed, refuse};
use crate::util::clock::now_ms;

/// A change of the units held that etcd must record too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Take this many units from the pool.
    Take(i64),
    /// Give this many units (already off `held`) back to the pool.
    Give(i64),
}

/// One counter's entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    /// Units this node holds and may sell.
    pub held: i64,
    /// The last change etcd has recorded.
    pub seq: u64,
    /// The change under way (to `seq + 1`).
    pub intent: Option<Intent>,
    /// The rest of the fleet's units (the pool and the other nodes'), as last read.
    pub rest: i64,
    /// When the last sale was, in milliseconds since the epoch.
    pub sold_ms: u64,
}

impl Entry {
    fn encode(&self) -> String {
        let intent = match self.intent {
            None => "-".to_string(),
            Some(Intent::Take(n)) => format!("take:{n}"),
            Some(Intent::Give(n)) => format!("give:{n}"),
        };
        format!(
            "{} {} {intent} {} {}",
            self.held, self.seq, self.rest, self.sold_ms
        )
    }

    fn decode(bytes: &[u8]) -> Result<Self, KvError> {
        let bad = || KvError::Io("a corrupt escrow ledger entry".into());
        let text = std::str::from_utf8(bytes).map_err(|_| bad())?;
        let p: Vec<&str> = text.split(' ').collect();
        let [held, seq, intent, rest, sold_ms] = p.as_slice() else {
            return Err(bad());
        };
        let intent = match intent.split_once(':') {
            None if *intent == "-" => None,
            Some(("take", n)) => Some(Intent::Take(n.parse().map_err(|_| bad())?)),
            Some(("give", n)) => Some(Intent::Give(n.parse().map_err(|_| bad())?)),
            _ => return Err(bad()),
        };
        Ok(Self {
            held: held.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
            intent,
            rest: rest.parse().map_err(|_| bad())?,
            sold_ms: sold_ms.parse().map_err(|_| bad())?,
        })
    }

    /// The entry once its intent went through (`applied`) or did not.
    pub fn settled(self, applied: bool) -> Self {
        let held = match (self.intent, applied) {
            (Some(Intent::Take(n)), true) | (Some(Intent::Give(n)), false) => self.held + n,
            _ => self.held,
        };
        Self {
            held,
            seq: if applied && self.intent.is_some() {
                self.seq + 1
            } else {
                self.seq
            },
            intent: None,
            ..self
        }
    }

    /// The counter's fleet-wide value as this node knows it.
    pub fn fleet(&self) -> i64 {
        self.held
            .saturating_add(self.rest)
            .saturating_add(match self.intent {
                Some(Intent::Give(n)) => n,
                _ => 0,
            })
    }
}

/// What a sale left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sale {
    /// The counter's fleet-wide figure, as this node knows it.
    pub fleet: i64,
    /// Units this node holds afterwards; `None` when the sale was a replay.
    pub held: Option<i64>,
}

/// The ledger database.
pub struct Ledger {
    _db: sled::Db,
    tree: sled::Tree,
    ops: sled::Tree,
    commit: GroupCommit,
}

fn io(e: impl std::fmt::Display) -> KvError {
    KvError::Io(format!("escrow ledger: {e}"))
}

fn read(
    t: &TransactionalTree,
    key: &[u8],
) -> sled::transaction::ConflictableTransactionResult<Entry, KvError> {
    match t.get(key)? {
        Some(bytes) => Entry::decode(&bytes).or_else(refuse),
        None => Ok(Entry::default()),
    }
}

/// The ledger key of `key` in `store`.
pub fn ledger_key(store: &str, key: &[u8]) -> Vec<u8> {
    [store.as_bytes(), b"/", key].concat()
}

/// The store and key of a ledger key.
pub fn split_key(ledger_key: &[u8]) -> Option<(&str, &[u8])> {
    let slash = ledger_key.iter().position(|&b| b == b'/')?;
    let store = std::str::from_utf8(&ledger_key[..slash]).ok()?;
    Some((store, &ledger_key[slash + 1..]))
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path, durability: Durability, interval: Duration) -> Result<Self, KvError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .map_err(io)?;
        let tree = db.open_tree("ledger").map_err(io)?;
        let ops = db.open_tree(replay::TREE).map_err(io)?;
        let flusher = db.clone();
        let commit = GroupCommit::start(durability, interval, move || {
            flusher.flush().map(|_| ()).map_err(|e| e.to_string())
        })
        .map_err(io)?;
        Ok(Self {
            _db: db,
            tree,
            ops,
            commit,
        })
    }

    /// The entry of `key` (a zero entry when there is none).
    pub fn entry(&self, key: &[u8]) -> Result<Entry, KvError> {
        match self.tree.get(key).map_err(io)? {
            Some(bytes) => Entry::decode(&bytes),
            None => Ok(Entry::default()),
        }
    }

    /// The keys of every entry, for the settler's rounds.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, KvError> {
        self.tree
            .iter()
            .keys()
            .map(|k| k.map(|k| k.to_vec()).map_err(io))
            .collect()
    }

    /// Changes the entry of `key` atomically with `change`, which may refuse;
    /// returns the new entry. Made durable by [`Ledger::durable`].
    ///
    /// A compare-and-swap loop rather than a sled transaction: sled runs
    /// transactions one at a time against every other write, and a node
    /// selling one hot counter through transactions managed 2,000 sales a
    /// second where this loop manages many times that.
    pub fn update(
        &self,
        key: &[u8],
        change: impl Fn(Entry) -> Result<Entry, KvError>,
    ) -> Result<Entry, KvError> {
        loop {
            let current = self.tree.get(key).map_err(io)?;
            let entry = match &current {
                Some(bytes) => Entry::decode(bytes)?,
                None => Entry::default(),
            };
            let next = change(entry)?;
            let swapped = self
                .tree
                .compare_and_swap(key, current, Some(next.encode().into_bytes()))
                .map_err(io)?;
            if swapped.is_ok() {
                return Ok(next);
            }
        }
    }

    /// Sells `units` from the held units of `key` if at least `floor` stay
    /// held. A named sale sent again returns its first result. Refuses with
    /// `OutOfRange(fleet figure)`, changing nothing. Made durable by
    /// [`Ledger::durable`].
    pub fn sell(&self, op: OpId, key: &[u8], units: i64, floor: i64) -> Result<Sale, KvError> {
        let sold = |entry: Entry| {
            let held = entry.held - units;
            if held < floor {
                return Err(KvError::OutOfRange(entry.fleet()));
            }
            Ok(Entry {
                held,
                sold_ms: now_ms(),
                ..entry
            })
        };
        let sale = |e: Entry| Sale {
            fleet: e.fleet(),
            held: Some(e.held),
        };
        if !op.named() {
            return self.update(key, sold).map(sale);
        }
        // A named sale and its record in one transaction.
        let apply = |t: &TransactionalTree| {
            let next = sold(read(t, key)?).or_else(refuse)?;
            t.insert(key, next.encode().as_bytes())?;
            Ok((sale(next), format!("sell:{}", next.fleet())))
        };
        replay::once(&self.tree, &self.ops, op, apply, |r| {
            let fleet = parse_counter(recorded(r, "sell")?.as_bytes())?;
            Ok(Sale { fleet, held: None })
        })
        .map_err(|e| match e {
            Replayed::Refused(e) => e,
            Replayed::Storage(e) => io(e),
        })
    }

    /// Waits until every change so far is on disk.
    pub async fn durable(&self) -> Result<(), KvError> {
        self.commit.durable().await
    }

    /// Drops old records of named sales.
    pub fn sweep(&self) -> Result<usize, KvError> {
        replay::sweep(&self.ops).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(held: i64, seq: u64, intent: Option<Intent>) -> Entry {
        Entry {
            held,
            seq,
            intent,
            ..Entry::default()
        }
    }

    #[test]
    fn entries_round_trip_and_settle() {
        for e in [
            Entry::default(),
            entry(40, 3, Some(Intent::Take(50))),
            Entry {
                rest: 900,
                sold_ms: 17,
                ..entry(7, 9, Some(Intent::Give(7)))
            },
        ] {
            assert_eq!(Entry::decode(e.encode().as_bytes()), Ok(e));
        }
        let taking = entry(10, 2, Some(Intent::Take(50)));
        assert_eq!(taking.settled(true), entry(60, 3, None));
        assert_eq!(taking.settled(false), entry(10, 2, None));
        let giving = entry(0, 2, Some(Intent::Give(8)));
        assert_eq!(giving.settled(true), entry(0, 3, None));
        assert_eq!(giving.settled(false), entry(8, 2, None));
        assert_eq!(
            split_key(&ledger_key("inv", b"a/b")),
            Some(("inv", &b"a/b"[..]))
        );
    }

    #[tokio::test]
    async fn sales_stay_above_the_floor_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(dir.path(), Durability::Sync, Duration::from_millis(100)).unwrap();
        let k = ledger_key("inventory", b"sku");
        l.update(&k, |_| {
            Ok(Entry {
                rest: 100,
                ..entry(3, 1, None)
            })
        })
        .unwrap();
        let sale = |fleet, held| Ok(Sale { fleet, held });
        assert_eq!(l.sell(OpId::random(), &k, 2, 0), sale(101, Some(1)));
        assert_eq!(
            l.sell(OpId::random(), &k, 2, 0),
            Err(KvError::OutOfRange(101))
        );
        let named = OpId::derived("shop", b"o-1", 0);
        assert_eq!(l.sell(named, &k, 1, 0), sale(100, Some(0)));
        assert_eq!(
            l.sell(named, &k, 1, 0),
            sale(100, None),
            "replayed, not sold again"
        );
        l.durable().await.unwrap();
        assert_eq!(l.entry(&k).unwrap().held, 0);
    }
}
