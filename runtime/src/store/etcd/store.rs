//! One named store in etcd. Its keys live under `<prefix>/kv/<store>/`, values
//! as they are, counters as ASCII decimal like sled's.
//!
//! Every write is one transaction that also writes an operation record,
//! `<prefix>/ops/<op id>` holding the call's result, and only if no such
//! record exists yet. A call sent again (etcd's reply was lost, the leader
//! changed mid-call, or the client retried its request with the same
//! `Idempotency-Key`) therefore finds the record and returns the first
//! attempt's result instead of applying twice. Records live under a
//! short-lived lease ([`super::lease`]).
//!
//! `add` and `compare_and_swap` compare the key's revision (or value) in the
//! same transaction: a counter is read, checked against its bounds and
//! written back only if no one changed it meanwhile, and read again if
//! someone did.

use std::sync::Arc;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::time::Instant;

use super::Shared;
use crate::store::backend::{
    KvError, MAX_PAGE, OpId, Page, Store, check_key, check_value, parse_counter, recorded,
};

/// A store of the etcd backend.
pub struct EtcdStore {
    pub(super) shared: Arc<Shared>,
    /// `<prefix>/kv/<store>/`.
    pub(super) base: Vec<u8>,
}

/// A key and value read inside a transaction: the value, and the revision
/// that last changed it (0: absent).
pub(crate) type Read = (Option<Vec<u8>>, i64);

impl EtcdStore {
    fn key(&self, key: &[u8]) -> Result<Vec<u8>, KvError> {
        check_key(key)?;
        Ok([self.base.as_slice(), key].concat())
    }

    fn op_key(&self, op: OpId) -> Vec<u8> {
        format!("{}/ops/{}", self.shared.prefix, op.hex()).into_bytes()
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.shared.timeout
    }

    /// Runs the transaction `build` makes for the current op-record lease.
    async fn txn(
        &self,
        deadline: Instant,
        build: impl Fn(i64) -> Txn,
    ) -> Result<etcd_client::TxnResponse, KvError> {
        let shared = &self.shared;
        let build = &build;
        shared
            .call(deadline, || async move {
                let lease = shared.lease.id().await?;
                shared.client.kv_client().txn(build(lease)).await
            })
            .await
    }

    /// Puts `key`'s op record under `lease`.
    fn record(op_key: &[u8], lease: i64, result: String) -> TxnOp {
        TxnOp::put(op_key, result, Some(PutOptions::new().with_lease(lease)))
    }
}

/// The first key-value of each `get` among a transaction's responses, in order.
fn reads(response: &etcd_client::TxnResponse) -> Vec<Read> {
    response
        .op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(get) => Some(get.kvs().first().map_or((None, 0), |kv| {
                (Some(kv.value().to_vec()), kv.mod_revision())
            })),
            _ => None,
        })
        .collect()
}

/// The first key after every key starting with `prefix`, as etcd ranges want it.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: no end, range to the end of the keyspace.
    vec![0]
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let (key, deadline) = (self.key(key)?, self.deadline());
        let response = self
            .shared
            .call(deadline, || {
                let key = key.clone();
                let mut kv = self.shared.client.kv_client();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn set(&self, op: OpId, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        check_value(value)?;
        let (key, op_key, deadline) = (self.key(key)?, self.op_key(op), self.deadline());
        self.txn(deadline, |lease| {
            Txn::new()
                .when([Compare::version(op_key.clone(), CompareOp::Equal, 0)])
                .and_then([
                    TxnOp::put(key.clone(), value, None),
                    Self::record(&op_key, lease, "set:".into()),
                ])
        })
        .await?;
        Ok(())
    }

    async fn delete(&self, op: OpId, key: &[u8]) -> Result<bool, KvError> {
        let (key, op_key, deadline) = (self.key(key)?, self.op_key(op), self.deadline());
        let response = self
            .txn(deadline, |lease| {
                let existed = Txn::new()
                    .when([Compare::version(key.clone(), CompareOp::Greater, 0)])
                    .and_then([
                        TxnOp::delete(key.clone(), None),
                        Self::record(&op_key, lease, "delete:1".into()),
                    ])
                    .or_else([Self::record(&op_key, lease, "delete:0".into())]);
                Txn::new()
                    .when([Compare::version(op_key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::txn(existed)])
                    .or_else([TxnOp::get(op_key.clone(), None)])
            })
            .await?;
        if response.succeeded() {
            return Ok(response.op_responses().into_iter().any(|r| match r {
                TxnOpResponse::Txn(inner) => inner.succeeded(),
                _ => false,
            }));
        }
        let record = reads(&response)
            .pop()
            .and_then(|(v, _)| v)
            .unwrap_or_default();
        Ok(recorded(&record, "delete")? == "1")
    }

    async fn exists(&self, key: &[u8]) -> Result<bool, KvError> {
        let (key, deadline) = (self.key(key)?, self.deadline());
        let response = self
            .shared
            .call(deadline, || {
                let key = key.clone();
                let mut kv = self.shared.client.kv_client();
                async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(response.count() > 0)
    }

    async fn list(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page, KvError> {
        let deadline = self.deadline();
        let limit = limit.clamp(1, MAX_PAGE);
        let full = [self.base.as_slice(), prefix].concat();
        let end = prefix_end(&full);
        let start = match after {
            // The smallest key after `after`.
            Some(after) => [self.base.as_slice(), after, &[0]].concat(),
            None => full.clone(),
        };
        let response = self
            .shared
            .call(deadline, || {
                let (start, end) = (start.clone(), end.clone());
                let mut kv = self.shared.client.kv_client();
                async move {
                    let options = GetOptions::new()
                        .with_range(end)
                        .with_keys_only()
                        .with_limit(limit as i64 + 1);
                    kv.get(start, Some(options)).await
                }
            })
            .await?;
        let mut keys: Vec<Vec<u8>> = response
            .kvs()
            .iter()
            .filter_map(|kv| kv.key().strip_prefix(self.base.as_slice()))
            .map(<[u8]>::to_vec)
            .collect();
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok(Page { keys, more })
    }

    async fn add(
        &self,
        op: OpId,
        key: &[u8],
        delta: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, KvError> {
        let (key, op_key, deadline) = (self.key(key)?, self.op_key(op), self.deadline());
        let mut turn = tokio::time::timeout_at(deadline, self.shared.turn(&key))
            .await
            .map_err(|_| KvError::Io("the counter is too contended".into()))?;
        // What this node last wrote to the counter saves the read when no
        // other node wrote since; the transaction's compare finds out if one did.
        let mut seen: Option<Read> = turn.take().filter(|(k, _)| *k == key).map(|(_, r)| r);
        let mut cached = seen.is_some();
        loop {
            let (current, revision) = match seen.take() {
                Some(read) => read,
                None => {
                    // The counter and this call's record, at one revision.
                    let response = self
                        .txn(deadline, |_| {
                            Txn::new().and_then([
                                TxnOp::get(key.clone(), None),
                                TxnOp::get(op_key.clone(), None),
                            ])
                        })
                        .await?;
                    let mut both = reads(&response).into_iter();
                    let counter = both.next().unwrap_or((None, 0));
                    if let Some((Some(record), _)) = both.next() {
                        return parse_counter(recorded(&record, "add")?.as_bytes());
                    }
                    counter
                }
            };
            let value = current
                .as_deref()
                .map(parse_counter)
                .transpose()?
                .unwrap_or(0);
            let next = match value.checked_add(delta).filter(|n| (min..=max).contains(n)) {
                Some(next) => next,
                // Refuse only on a value read from etcd, never on a remembered one.
                None if cached => {
                    cached = false;
                    continue;
                }
                None => return Err(KvError::OutOfRange(value)),
            };
            cached = false;
            let response = self
                .txn(deadline, |lease| {
                    Txn::new()
                        .when([
                            Compare::mod_revision(key.clone(), CompareOp::Equal, revision),
                            Compare::version(op_key.clone(), CompareOp::Equal, 0),
                        ])
                        .and_then([
                            TxnOp::put(key.clone(), next.to_string(), None),
                            Self::record(&op_key, lease, format!("add:{next}")),
                        ])
                        .or_else([
                            TxnOp::get(key.clone(), None),
                            TxnOp::get(op_key.clone(), None),
                        ])
                })
                .await?;
            if response.succeeded() {
                if let Some(header) = response.header() {
                    let written = (Some(next.to_string().into_bytes()), header.revision());
                    *turn = Some((key, written));
                }
                return Ok(next);
            }
            let mut both = reads(&response).into_iter();
            let counter = both.next().unwrap_or((None, 0));
            if let Some((Some(record), _)) = both.next() {
                // An earlier attempt of this very call went through.
                return parse_counter(recorded(&record, "add")?.as_bytes());
            }
            // Another writer changed the counter: try again from what it is now.
            seen = Some(counter);
            if Instant::now() >= deadline {
                return Err(KvError::Io("the counter is too contended".into()));
            }
        }
    }

    async fn compare_and_swap(
        &self,
        op: OpId,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError> {
        check_value(new)?;
        let (key, op_key, deadline) = (self.key(key)?, self.op_key(op), self.deadline());
        let response = self
            .txn(deadline, |lease| {
                let holds = match expected {
                    None => Compare::version(key.clone(), CompareOp::Equal, 0),
                    Some(value) => Compare::value(key.clone(), CompareOp::Equal, value),
                };
                Txn::new()
                    .when([holds, Compare::version(op_key.clone(), CompareOp::Equal, 0)])
                    .and_then([
                        TxnOp::put(key.clone(), new, None),
                        Self::record(&op_key, lease, "cas:1".into()),
                    ])
                    .or_else([TxnOp::get(op_key.clone(), None)])
            })
            .await?;
        if response.succeeded() {
            return Ok(true);
        }
        match reads(&response).pop() {
            Some((Some(record), _)) => Ok(recorded(&record, "cas")? == "1"),
            _ => Ok(false),
        }
    }

    async fn durable(&self) -> Result<(), KvError> {
        // etcd acknowledges a write only once a quorum has it on disk.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_end_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/w/kv/s/a"), b"/w/kv/s/b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
