//! Drives the real `wedge` binary in end-to-end tests: lays out a config and a
//! functions directory in a temporary directory, starts the binary on
//! `127.0.0.1:0`, captures its log, and talks real HTTP to it.

pub mod dns;
pub mod etcd;
mod http_client;
mod node;
pub mod origin;
pub mod registry;
mod stream_client;

pub use dns::DnsServer;
pub use etcd::EtcdCluster;
pub use http_client::{Reply, get_status, raw_call, raw_request, try_call};
pub use node::{Node, NodeBuilder, field};
pub use origin::{Origin, TestCa};
pub use registry::OciRegistry;
pub use stream_client::{Event, Streamed, open_stream, read_h1_stream, read_stream};
/// Synthetic modules: big, slow to compile, padded.
pub use wedge_wasmgen as modules;

include!(concat!(env!("OUT_DIR"), "/wasm.rs"));
