//! The node's key-value stores, on sled or on etcd, behind one trait. Guests
//! reach them through [`crate::host::store`].
//!
//! - [`backend`]: the `Store`/`Backend` traits and limits every backend shares.
//! - [`sled`]: the embedded backend.
//! - [`etcd`]: the fleet's backend, in the cluster's etcd.
//! - [`commit`]: group commit for `durability = "sync"`.
//! - [`replay`]: named writes on sled, applied once.
//! - [`health`]: whether the store takes writes, for `/readyz` and metrics.

pub mod backend;
pub mod commit;
pub mod etcd;
pub mod health;
pub mod replay;
pub mod sled;

pub use backend::{Backend, KvError, OpId, Reclaimed, Store};
pub use health::StoreHealth;
