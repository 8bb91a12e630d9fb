//! Named writes on the sled store: a write whose client named it (an
//! `Idempotency-Key`) is applied together with a record of its result, in one
//! sled transaction, and the same write sent again returns the record instead
//! of applying twice. Unnamed writes never come back on a single node, so they
//! skip this.
//!
//! Records live in the `wedge:ops` tree: `i/<op id>` holds the time it was
//! written and the result, `t/<time><op id>` orders them by age, and
//! [`sweep`] drops those older than [`KEEP`].

use std::time::Duration;

use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};

use crate::store::backend::{KvError, OpId};
use crate::util::clock::now_ms;

/// The tree of records; store names cannot contain `:`, so no guest can name it.
pub const TREE: &str = "wedge:ops";
/// How long a record is kept: as long as the etcd store keeps its own (at least a minute).
pub const KEEP: Duration = Duration::from_secs(120);

fn id_key(op: OpId) -> Vec<u8> {
    [b"i/".as_slice(), op.bytes()].concat()
}

/// Applies `apply` to `tree` and records its result under `op`, both or
/// neither; or returns the result recorded for `op` before. `apply` gives the
/// result and its record text; `parse` reads a record back.
pub fn once<T>(
    tree: &sled::Tree,
    ops: &sled::Tree,
    op: OpId,
    apply: impl Fn(&TransactionalTree) -> ConflictableTransactionResult<(T, String), KvError>,
    parse: impl Fn(&[u8]) -> Result<T, KvError>,
) -> Result<T, Replayed> {
    let outcome = (tree, ops).transaction(|(tree, ops)| {
        if let Some(record) = ops.get(id_key(op))? {
            let text = record.get(8..).unwrap_or_default();
            return parse(text).map_err(ConflictableTransactionError::Abort);
        }
        let (result, text) = apply(tree)?;
        let at = now_ms().to_be_bytes();
        ops.insert(id_key(op), [at.as_slice(), text.as_bytes()].concat())?;
        ops.insert([b"t/".as_slice(), &at, op.bytes()].concat(), &[][..])?;
        Ok(result)
    });
    outcome.map_err(|e| match e {
        TransactionError::Abort(e) => Replayed::Refused(e),
        TransactionError::Storage(e) => Replayed::Storage(e),
    })
}

/// Why [`once`] failed.
#[derive(Debug)]
pub enum Replayed {
    /// The write was refused (out of range, say), or its record is not for it.
    Refused(KvError),
    /// sled failed.
    Storage(sled::Error),
}

/// Refuses the write inside `apply`, changing nothing.
pub fn refuse<T>(e: KvError) -> ConflictableTransactionResult<T, KvError> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Drops the records older than [`KEEP`]; how many.
pub fn sweep(ops: &sled::Tree) -> Result<usize, sled::Error> {
    let cutoff = now_ms()
        .saturating_sub(KEEP.as_millis() as u64)
        .to_be_bytes();
    let end = [b"t/".as_slice(), &cutoff].concat();
    let mut dropped = 0;
    for entry in ops.range(b"t/".to_vec()..end) {
        let (key, _) = entry?;
        if let Some(id) = key.get(10..) {
            ops.remove([b"i/".as_slice(), id].concat())?;
        }
        ops.remove(key)?;
        dropped += 1;
    }
    Ok(dropped)
}
