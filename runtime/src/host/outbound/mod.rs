//! Outbound HTTP: handlers calling their origins through the `wedge` host
//! module's `http_*` functions.
//!
//! - [`connect`]: resolve, check each address against the allow-list, TCP, TLS.
//! - [`call`]: one call: the allow-list on the URL, the node's limit, the
//!   deadline, redirects when asked, and the response read in chunks.
//! - [`wasip1`]: the `wedge` module's `http_*` functions and a request's
//!   open responses.
//! - [`wit`]: `wasi:http/outgoing-handler` for components, through the same
//!   list, pool and limits.
//!
//! [`Outbound`] is the node's part: the DNS cache (hickory, answers kept for
//! their TTL), the TLS roots (the system's plus `[outbound] ca_file`) and the
//! limit of calls open at once. Each function gets an [`OriginClient`] of
//! its own when it loads: hyper-util's pooled client over a connector that
//! knows the function's `outbound` list. A pooled connection is therefore
//! only ever reused by the function whose list allowed it.

pub mod call;
pub mod connect;
pub mod wasip1;
pub mod wit;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::config::OutboundConfig;
use crate::config::origins::AllowList;
use crate::host::abi::status;
pub use wasip1::OutboundCtx;

/// What one request may call out with, in either handler format: its
/// function's client (and so its `outbound` list and pool), the function's
/// name for the metrics, and when the request's time is up. Built once per
/// request; each format's binding keeps its own open calls on top of it.
#[derive(Clone)]
pub struct RequestOutbound {
    /// None when the function's `outbound` list is empty.
    pub client: Option<Arc<OriginClient>>,
    /// The function calling out.
    pub function: Arc<str>,
    /// Where calls are counted.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// When the request's own time is up.
    pub deadline: tokio::time::Instant,
}

/// Longest a DNS answer is kept, whatever its TTL says.
const MAX_DNS_TTL: Duration = Duration::from_secs(300);

/// Why an outbound call failed, as the guest learns it (a status code) and
/// the log and `http_error` tell it (the message).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The URL is not in the function's `outbound` list, or its name resolves
    /// only to addresses the list refuses.
    #[error("denied: {0}")]
    Denied(String),
    /// Connecting, the TLS handshake, the call or the request's deadline ran out.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The guest's own first-byte or between-bytes timeout ran out while it
    /// waited for the response (a component's `request-options`).
    #[error("timeout: {0}")]
    ReadTimeout(String),
    /// The name did not resolve, or no address took the connection.
    #[error("connect: {0}")]
    Connect(String),
    /// The TLS handshake failed: an unknown CA, a wrong name, an old protocol.
    #[error("tls: {0}")]
    Tls(String),
    /// The response body is larger than `[outbound] max_response`.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A bad URL, method or header, a bad pointer, an unknown handle.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The request has `max_per_request` responses open, made
    /// `max_calls_per_request` calls, or the node has `max_inflight` open.
    #[error("busy: {0}")]
    Busy(String),
    /// The connection broke during the exchange.
    #[error("io: {0}")]
    Io(String),
}

impl CallError {
    /// The status code the guest gets.
    pub fn code(&self) -> i32 {
        match self {
            Self::Denied(_) => status::ACCESS_DENIED,
            Self::TooLarge(_) => status::TOO_LARGE,
            Self::Invalid(_) => status::INVALID,
            Self::Io(_) => status::IO,
            Self::Timeout(_) | Self::ReadTimeout(_) => status::TIMEOUT,
            Self::Connect(_) => status::CONNECT,
            Self::Tls(_) => status::TLS,
            Self::Busy(_) => status::BUSY,
        }
    }

    /// The `status` label of `wedge_outbound_requests_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
            Self::Timeout(_) | Self::ReadTimeout(_) => "timeout",
            Self::Connect(_) => "connect",
            Self::Tls(_) => "tls",
            Self::TooLarge(_) => "too_large",
            Self::Invalid(_) => "invalid",
            Self::Busy(_) => "busy",
            Self::Io(_) => "io",
        }
    }
}

/// The node's outbound HTTP: DNS cache, TLS roots, limits.
pub struct Outbound {
    config: OutboundConfig,
    resolver: Arc<TokioResolver>,
    tls: TlsConnector,
    /// One permit per call open on the node.
    inflight: Arc<Semaphore>,
}

impl Outbound {
    /// Loads the TLS roots and sets up the resolver. A `ca_file` that cannot
    /// be read, or holds no certificate, stops the node from starting.
    pub fn new(config: &OutboundConfig) -> anyhow::Result<Arc<Self>> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(target: "wedge::outbound", "no system CA certificates found: https calls trust only [outbound] ca_file");
        }
        if !config.ca_file.as_os_str().is_empty() {
            let path = &config.ca_file;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read outbound.ca_file {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("outbound.ca_file {} is not PEM", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            anyhow::ensure!(
                added > 0,
                "outbound.ca_file {} holds no usable CA certificate",
                path.display()
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS for outbound calls")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut builder = match config.dns.is_empty() {
            true => TokioResolver::builder_tokio().context("reading /etc/resolv.conf")?,
            false => {
                let servers: Vec<NameServerConfig> = config
                    .dns
                    .iter()
                    .flat_map(|a| {
                        [
                            NameServerConfig::new(*a, Protocol::Udp),
                            NameServerConfig::new(*a, Protocol::Tcp),
                        ]
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), servers),
                    TokioConnectionProvider::default(),
                )
            }
        };
        let options = builder.options_mut();
        options.positive_max_ttl = Some(MAX_DNS_TTL);
        options.negative_max_ttl = Some(Duration::from_secs(30));
        options.timeout = config.connect_timeout.0;
        options.attempts = 1;
        options.cache_size = 1024;
        Ok(Arc::new(Self {
            config: config.clone(),
            resolver: Arc::new(builder.build()),
            tls: TlsConnector::from(Arc::new(tls)),
            inflight: Arc::new(Semaphore::new(config.max_inflight as usize)),
        }))
    }

    /// The node-wide settings.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// A client for a function with this `outbound` list, with its own pool.
    pub fn client(self: &Arc<Self>, allow: AllowList) -> Arc<OriginClient> {
        let allow = Arc::new(allow);
        let connector = connect::Connector {
            allow: allow.clone(),
            resolver: self.resolver.clone(),
            tls: self.tls.clone(),
            connect_timeout: self.config.connect_timeout.0,
            tls_timeout: self.config.tls_timeout.0,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.config.idle_timeout.0)
            .pool_max_idle_per_host(self.config.max_idle_per_origin)
            .build(connector);
        Arc::new(OriginClient {
            allow,
            client,
            node: self.clone(),
        })
    }
}

/// One function's way out: its allow-list and its connection pool.
pub struct OriginClient {
    allow: Arc<AllowList>,
    client: Client<connect::Connector, Full<Bytes>>,
    node: Arc<Outbound>,
}

impl OriginClient {
    /// The node's `[outbound]` settings.
    pub fn config(&self) -> &OutboundConfig {
        self.node.config()
    }

    /// Whether the function may call anything at all.
    pub fn allows_any(&self) -> bool {
        !self.allow.is_empty()
    }
}
