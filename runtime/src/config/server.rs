//! `[server]` of `wedge.toml`: the public listener, its connections and the
//! limits that protect it, with `[server.per_ip]` and `[server.tls]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ByteSize, HumanDuration};

/// Most serving threads `server.workers` may ask for.
pub const MAX_WORKERS: u32 = 1024;

/// `[server]`: the public listener and the limits that protect it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the public listener binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Copied into every log line and metric so a fleet's logs can be told apart.
    pub region: String,
    /// Per-request wall-clock limit for functions that set no `timeout` of their own.
    pub request_timeout: HumanDuration,
    /// Larger request bodies are refused with 413 before they are read.
    pub max_request_body: ByteSize,
    /// Request line plus headers; beyond this a request gets 431.
    pub max_header_bytes: ByteSize,
    /// Requests served at once; beyond this a request gets 503 at once rather than a queue.
    pub max_inflight: u32,
    /// Open client connections; beyond this new ones wait in the listen backlog.
    pub max_connections: u32,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: HumanDuration,
    /// A client that accepts no response bytes for this long is disconnected.
    pub write_timeout: HumanDuration,
    /// The whole request body must arrive within this; no instance is held meanwhile.
    pub body_timeout: HumanDuration,
    /// A new connection must deliver its first request head, and any later head
    /// once begun, within this.
    pub header_read_timeout: HumanDuration,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    pub shutdown_timeout: HumanDuration,
    /// Streamed responses in progress (head sent, body not ended); beyond
    /// this a new request gets 503 before any instance is taken.
    pub max_streams: u32,
    /// Largest request body streamed to a component (`stream_request`).
    pub max_stream_request: ByteSize,
    /// Bytes per second a streamed request body must average, judged after
    /// its first 10 s; a slower sender is cut off with 408.
    pub min_body_rate: ByteSize,
    /// Serving threads, each with its own connections; 0 means one per core.
    pub workers: u32,
    /// Limits per client address.
    pub per_ip: PerIpConfig,
    /// TLS on the public listener; absent means plain HTTP/1.1 and h2c.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            region: "local".into(),
            request_timeout: HumanDuration(Duration::from_secs(5)),
            max_request_body: ByteSize(1 << 20),
            max_header_bytes: ByteSize(16 << 10),
            max_inflight: 1000,
            max_connections: 10_000,
            idle_timeout: HumanDuration(Duration::from_secs(60)),
            write_timeout: HumanDuration(Duration::from_secs(30)),
            body_timeout: HumanDuration(Duration::from_secs(10)),
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            shutdown_timeout: HumanDuration(Duration::from_secs(30)),
            max_streams: 1000,
            max_stream_request: ByteSize(1 << 30),
            min_body_rate: ByteSize(16 << 10),
            workers: 0,
            per_ip: PerIpConfig::default(),
            tls: None,
        }
    }
}

impl ServerConfig {
    /// The serving threads to start: `workers`, or one per core.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// What is wrong with these settings, if anything, as one line.
    pub(super) fn problem(&self) -> Option<String> {
        let positive = [
            ("request_timeout", self.request_timeout),
            ("idle_timeout", self.idle_timeout),
            ("write_timeout", self.write_timeout),
            ("body_timeout", self.body_timeout),
            ("header_read_timeout", self.header_read_timeout),
        ];
        if let Some(problem) = super::first_zero("server", &positive) {
            return Some(problem);
        }
        if !(1..=100_000).contains(&self.max_inflight) {
            return Some("server.max_inflight must be between 1 and 100000".into());
        }
        if self.max_streams == 0 {
            return Some("server.max_streams must be at least 1".into());
        }
        if self.max_connections == 0 {
            return Some("server.max_connections must be at least 1".into());
        }
        if self.per_ip.max_connections == 0 {
            return Some("server.per_ip.max_connections must be at least 1".into());
        }
        if self.per_ip.rate > 0 && self.per_ip.burst == 0 {
            return Some("server.per_ip.burst must be at least 1 when rate is set".into());
        }
        if self.workers > MAX_WORKERS {
            return Some(format!("server.workers is at most {MAX_WORKERS}"));
        }
        if self.max_header_bytes.0 < 1024 {
            return Some("server.max_header_bytes is at least 1KiB".into());
        }
        None
    }
}

/// `[server.per_ip]`: limits per client address; IPv6 addresses count per /64.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerIpConfig {
    /// Open connections from one address; beyond this a new one is closed at once.
    pub max_connections: u32,
    /// Requests per second from one address (a token bucket); 0 turns it off.
    /// Beyond it: 429 with `Retry-After`.
    pub rate: u32,
    /// Requests an address may make at once before `rate` applies.
    pub burst: u32,
}

impl Default for PerIpConfig {
    fn default() -> Self {
        Self {
            max_connections: 256,
            rate: 0,
            burst: 100,
        }
    }
}

/// `[server.tls]`: the certificate chain and key, both PEM. Both files are
/// watched and reloaded without dropping connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first; relative to `wedge.toml`.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1); relative to `wedge.toml`.
    pub key: PathBuf,
}
