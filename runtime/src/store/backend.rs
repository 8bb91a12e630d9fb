//! The storage traits behind the node's key-value stores. The embedded sled backend
//! is one implementation and etcd another; neither the host module nor the
//! guests know which one serves them.

use std::sync::Arc;

use crate::store::health::StoreHealth;

/// Largest key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 1 << 20;
/// Most keys one `list` page returns.
pub const MAX_PAGE: usize = 1000;

/// Why a key-value operation failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key does not exist.
    #[error("not found")]
    NotFound,
    /// The function did not declare this store in `kv`.
    #[error("access denied")]
    AccessDenied,
    /// `add` would leave `[min, max]`, or overflow; holds the current value.
    #[error("out of range (current value {0})")]
    OutOfRange(i64),
    /// A key or value larger than the limits.
    #[error("too large")]
    TooLarge,
    /// A malformed argument: empty key, bad store name, a counter that is not a number.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// The storage itself failed; details are logged by the host.
    #[error("storage error: {0}")]
    Io(String),
}

/// One page of keys from [`Store::list`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Page {
    /// Keys in ascending byte order.
    pub keys: Vec<Vec<u8>>,
    /// Whether more keys with the prefix follow the last one.
    pub more: bool,
}

/// Names one write call, so that sending it again (after a reply was lost, or
/// in a retried request with the same `Idempotency-Key`) never applies it twice.
/// A backend records the id with the write whenever the call may come again:
/// etcd always (its replies can be lost), sled when the client named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId {
    bytes: [u8; 16],
    named: bool,
}

impl OpId {
    /// A fresh id for a call no one will send again under the same name.
    pub fn random() -> Self {
        Self {
            bytes: fastrand::u128(..).to_le_bytes(),
            named: false,
        }
    }

    /// Whether a client named the call (`Idempotency-Key`), so it may arrive
    /// again in another request.
    pub fn named(&self) -> bool {
        self.named
    }

    /// The id's bytes.
    pub fn bytes(&self) -> &[u8; 16] {
        &self.bytes
    }

    /// The id of the `ordinal`th write a request of `function` makes, when the
    /// client named the request with an idempotency key: the same request sent
    /// again makes the same calls under the same ids.
    pub fn derived(function: &str, key: &[u8], ordinal: u32) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [function.as_bytes(), key] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(ordinal.to_le_bytes());
        let digest = h.finalize();
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self { bytes, named: true }
    }

    /// The id as 32 hex digits, for keys and logs.
    pub fn hex(&self) -> String {
        hex::encode(self.bytes)
    }
}

/// A named key-value store. Writes return once applied; the caller then waits
/// on [`Store::durable`] before telling the guest.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The value of `key`.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Sets `key` to `value`.
    async fn set(&self, op: OpId, key: &[u8], value: &[u8]) -> Result<(), KvError>;
    /// Removes `key`; whether it existed.
    async fn delete(&self, op: OpId, key: &[u8]) -> Result<bool, KvError>;
    /// Whether `key` exists.
    async fn exists(&self, key: &[u8]) -> Result<bool, KvError>;
    /// Up to `limit` keys starting with `prefix`, after `after` when given.
    async fn list(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page, KvError>;
    /// Atomically adds `delta` to the counter at `key` (absent counts as 0) and
    /// returns the new value; fails with [`KvError::OutOfRange`], changing
    /// nothing, if the result would leave `[min, max]`. Counters are ASCII decimal.
    async fn add(
        &self,
        op: OpId,
        key: &[u8],
        delta: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, KvError>;
    /// Sets `key` to `new` if its value is `expected` (`None`: if it is absent);
    /// whether it did.
    async fn compare_and_swap(
        &self,
        op: OpId,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, KvError>;
    /// Resolves once every write this store made before the call is as durable
    /// as the backend's setting promises (`sync`: on disk); fails when it
    /// cannot be, and the writes then count as not made.
    async fn durable(&self) -> Result<(), KvError>;
}

/// Where stores live.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Opens (creating if needed) the store called `name`.
    fn open(&self, name: &str) -> Result<Arc<dyn Store>, KvError>;
    /// Makes everything durable and hands back what this node holds for
    /// others (escrowed units); used at shutdown.
    async fn close(&self) -> Result<(), KvError>;
    /// Whether calls can succeed now, and the storage errors seen.
    fn health(&self) -> &StoreHealth;
    /// Gives the escrowed units a dead node holds back to the pools
    /// (`wedge kv reclaim`); what it gave, per counter.
    async fn reclaim(&self, node: &str) -> Result<Vec<Reclaimed>, KvError> {
        let _ = node;
        Err(KvError::Invalid(
            "reclaim is for escrowed counters, on store.backend = \"etcd\"",
        ))
    }
}

/// Units given back from a dead node's holding of one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaimed {
    /// The store.
    pub store: String,
    /// The counter's key.
    pub key: Vec<u8>,
    /// The units given back to the pool.
    pub units: i64,
}

/// Store names follow the same rule as function names: they are directory-like
/// labels usable in a metric.
pub fn valid_store_name(name: &str) -> bool {
    crate::config::valid_name(name)
}

/// Checks a store name, as every backend's `open` does.
pub fn check_store_name(name: &str) -> Result<(), KvError> {
    match valid_store_name(name) {
        true => Ok(()),
        false => Err(KvError::Invalid(
            "store names are 1-64 of A-Z a-z 0-9 - _ .",
        )),
    }
}

/// The result in an operation record `<call>:<result>`, if `call` wrote it. A
/// record of another call means the client reused an `Idempotency-Key`.
pub fn recorded<'a>(record: &'a [u8], call: &str) -> Result<&'a str, KvError> {
    std::str::from_utf8(record)
        .ok()
        .and_then(|r| r.strip_prefix(call))
        .and_then(|r| r.strip_prefix(':'))
        .ok_or(KvError::Invalid(
            "this Idempotency-Key already named a different call",
        ))
}

/// Parses a counter: ASCII decimal, optionally signed, as operators would write it.
pub fn parse_counter(bytes: &[u8]) -> Result<i64, KvError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or(KvError::Invalid("the value is not a decimal counter"))
}

/// Checks a key against the limits.
pub fn check_key(key: &[u8]) -> Result<(), KvError> {
    match key.len() {
        0 => Err(KvError::Invalid("empty key")),
        n if n > MAX_KEY => Err(KvError::TooLarge),
        _ => Ok(()),
    }
}

/// Checks a value against the limits.
pub fn check_value(value: &[u8]) -> Result<(), KvError> {
    if value.len() > MAX_VALUE {
        Err(KvError::TooLarge)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_decimal_text() {
        assert_eq!(parse_counter(b"42"), Ok(42));
        assert_eq!(parse_counter(b"-7"), Ok(-7));
        assert_eq!(parse_counter(b" 10\n"), Ok(10));
        assert!(parse_counter(b"ten").is_err());
        assert!(parse_counter(b"99999999999999999999").is_err());
    }

    #[test]
    fn derived_op_ids_name_one_call_of_one_request() {
        let a = OpId::derived("shop", b"order-7", 0);
        assert_eq!(a, OpId::derived("shop", b"order-7", 0));
        assert_ne!(a, OpId::derived("shop", b"order-7", 1));
        assert_ne!(a, OpId::derived("shop", b"order-8", 0));
        assert_ne!(
            a,
            OpId::derived("shopo", b"rder-7", 0),
            "parts are length-prefixed"
        );
        assert_ne!(OpId::random(), OpId::random());
        assert!(a.named() && !OpId::random().named());
        assert_eq!(a.hex().len(), 32);
    }

    #[test]
    fn records_name_their_call() {
        assert_eq!(recorded(b"add:41", "add"), Ok("41"));
        assert!(recorded(b"set:", "add").is_err());
        assert_eq!(recorded(b"set:", "set"), Ok(""));
    }

    #[test]
    fn keys_and_values_are_bounded() {
        assert!(check_key(b"").is_err());
        assert_eq!(check_key(&[b'k'; MAX_KEY + 1]), Err(KvError::TooLarge));
        assert!(check_key(b"sku-1").is_ok());
        assert_eq!(check_value(&vec![0; MAX_VALUE + 1]), Err(KvError::TooLarge));
    }
}
