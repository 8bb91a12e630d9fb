//! `[outbound]`: how handlers reach their origins over HTTP. Which origins a
//! function may call is its own `outbound` list in `function.toml`; this
//! section holds the node-wide limits, trust and name resolution.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ByteSize, HumanDuration};

/// `[outbound]` in `wedge.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// A PEM file of CA certificates trusted beside the system's roots (an
    /// internal CA, say); relative to `wedge.toml`. Empty: the system's only.
    pub ca_file: PathBuf,
    /// DNS servers to ask, as `ip:port`; empty: those of `/etc/resolv.conf`.
    pub dns: Vec<SocketAddr>,
    /// Resolving a name and opening a TCP connection, together.
    pub connect_timeout: HumanDuration,
    /// The TLS handshake, after the connection is open.
    pub tls_timeout: HumanDuration,
    /// A whole call: connecting, sending, and every read of the response.
    /// Always cut short by the request's own deadline.
    pub timeout: HumanDuration,
    /// Largest response body a handler may read; beyond it: `too_large`.
    pub max_response: ByteSize,
    /// Responses one request may have open (sent, body not yet read to its
    /// end or closed); one more call is `busy`.
    pub max_per_request: u32,
    /// Calls one request may make in all.
    pub max_calls_per_request: u32,
    /// Calls open at once on the node, all functions together; beyond: `busy`.
    pub max_inflight: u32,
    /// Idle connections kept per origin and function.
    pub max_idle_per_origin: usize,
    /// An idle connection is closed after this.
    pub idle_timeout: HumanDuration,
    /// Redirects followed by a call that asks for it (never by default).
    pub max_redirects: u32,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            ca_file: PathBuf::new(),
            dns: Vec::new(),
            connect_timeout: HumanDuration(Duration::from_secs(2)),
            tls_timeout: HumanDuration(Duration::from_secs(3)),
            timeout: HumanDuration(Duration::from_secs(10)),
            max_response: ByteSize(16 << 20),
            max_per_request: 8,
            max_calls_per_request: 1000,
            max_inflight: 256,
            max_idle_per_origin: 8,
            idle_timeout: HumanDuration(Duration::from_secs(30)),
            max_redirects: 5,
        }
    }
}

impl OutboundConfig {
    /// What is wrong with these settings, if anything.
    pub fn problem(&self) -> Option<String> {
        let timeouts = [
            ("connect_timeout", self.connect_timeout),
            ("tls_timeout", self.tls_timeout),
            ("timeout", self.timeout),
            ("idle_timeout", self.idle_timeout),
        ];
        if let Some(problem) = super::first_zero("outbound", &timeouts) {
            return Some(problem);
        }
        if self.max_per_request == 0 || self.max_inflight == 0 || self.max_calls_per_request == 0 {
            return Some(
                "outbound.max_per_request, max_calls_per_request and max_inflight are at least 1"
                    .into(),
            );
        }
        if self.max_response.0 == 0 {
            return Some("outbound.max_response must be positive".into());
        }
        None
    }
}
