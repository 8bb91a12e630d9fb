//! What a guest imports from the host, each capability with its wasip1 side
//! (the `wedge` module, for WAGI handlers) and its WIT side (for wasi:http
//! components) side by side.
//!
//! - [`store`]: the node's key-value stores: `wedge.kv_*` and `wasi:keyvalue`.
//! - [`outbound`]: calls to origins: `wedge.http_*` and
//!   `wasi:http/outgoing-handler`, through one allow-list, pool and DNS cache.
//! - [`wasi_http`]: a component's per-request host state, the worlds it may
//!   import from, and its stdout and stderr.
//! - [`wasip1`]: the WASI calls every WAGI request makes (argv, environment,
//!   stdio, exit), served from the request's buffers.
//! - [`abi`], [`memory`]: the `wedge` module's version and status codes,
//!   and bounds-checked access to guest memory.
//! - [`limits`], [`stdio`]: a guest's memory cap and table limit, its
//!   stdout buffer and stderr logger.

pub mod abi;
pub mod limits;
pub mod memory;
pub mod outbound;
pub mod stdio;
pub mod store;
pub mod wasi_http;
pub mod wasip1;
