//! The node's key-value stores as guests see them.
//!
//! - [`wasip1`]: the `wedge` module's `kv_*` functions and a request's
//!   [`KvCtx`], added to a module linker in one call.
//! - [`wit`]: `wasi:keyvalue` (store, atomics) and `wedge:keyvalue/bounded`
//!   for components, on the same stores, permissions and metrics.

pub mod wasip1;
pub mod wit;

pub use wasip1::{KvCtx, add_to_linker};
