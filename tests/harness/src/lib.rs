//! Drives the real `wedge` binary in end-to-end tests: lays out a config and a
//! functions directory in a temporary directory, starts the binary on
//! `127.0.0.1:0`, captures its log, and talks real HTTP to it.

pub mod dns;
pub mod etcd;
mod http_client;
mod node;
pub mod origin;
pub mod registry;

pub use dns::DnsServer;
pub use etcd::EtcdCluster;
pub use http_client::{Reply, get_status, raw_call, raw_request, try_call};
pub use node::{Node, NodeBuilder, field};
pub use origin::{Origin, TestCa};
pub use registry::OciRegistry;
/// Synthetic modules: big, slow to compile, padded.
pub use wedge_wasmgen as modules;

include!(concat!(env!("OUT_DIR"), "/wasm.rs"));
