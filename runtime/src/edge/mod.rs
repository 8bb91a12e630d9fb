//! The edge: everything between a socket and a checked request, knowing
//! nothing of functions. It hands each request to a [`Serve`], the request
//! path.
//!
//! - [`server`]: the listener: connection limits, accept back-off, graceful
//!   shutdown.
//! - [`lanes`]: the serving threads, one per core, each with its own
//!   connections.
//! - [`conn`]: one connection: TLS or protocol sniffing, HTTP/1.1 or HTTP/2,
//!   and its header-read, idle and write timeouts.
//! - [`tls`]: certificates for the public listener, reloaded when their
//!   files change.
//! - [`peers`]: per-address connection counts and request rates.
//! - [`validate`]: what a request must be before any of it reaches a guest.
//! - [`serve`]: what the edge hands each request to, [`Serve`].
//! - [`body`]: the response body type every part of the node answers with.

pub mod body;
pub mod conn;
pub mod lanes;
pub mod peers;
pub mod serve;
pub mod server;
pub mod tls;
pub mod validate;

pub use body::Body;
pub use serve::{ConnInfo, Serve};
