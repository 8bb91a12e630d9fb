//! The host side of a wasi:http component: what one request's store holds,
//! the interfaces a component may import, and the linker that provides them.
//!
//! - [`host`]: the store's data: WASI's context and resource table, the HTTP
//!   context and its hooks, the memory cap, the request's outbound calls.
//! - [`imports`]: the worlds a component may import from, checked before
//!   anything is compiled.
//! - [`link`]: the WASI 0.2 interfaces, `wasi:io` on the table alone.
//! - [`log`]: the component's stdout and stderr, into the request's log.

pub mod host;
pub mod imports;
pub mod link;
pub mod log;

pub use host::ProxyHost;

/// Adds every interface a component may import to `linker`: the WASI 0.2
/// command imports (clocks, random, stdio, environment, exit, a filesystem
/// with nothing opened, sockets with every address refused),
/// `wasi:http`'s types and outgoing handler, and the key-value stores.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<ProxyHost>) -> wasmtime::Result<()> {
    link::add_wasi(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    crate::host::store::wit::add_to_linker(linker)
}
