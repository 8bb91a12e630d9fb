//! How a call reaches its origin: the name resolved (through the node's DNS
//! cache), each address checked against the function's `outbound` list, a
//! TCP connection within `connect_timeout`, and for `https` a TLS handshake
//! within `tls_timeout`. hyper-util's pool keeps what this opens.
//!
//! The check sits here, between resolving and connecting, so no connection
//! is ever opened to an address the list refuses: a listed name that
//! resolves (or is re-pointed) to a metadata or private address gets no
//! connection at all.
//!
//! A connection to a name carries when the name's answer expires
//! ([`Expires`]); a call that ends on it after that poisons it, so the pool
//! lets it go and the next call resolves the name again. A busy connection
//! therefore follows a DNS change too, not only an idle one.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::CallError;
use crate::config::origins::{AllowList, Host, Scheme};

/// Why a connection was not made, as it travels through hyper-util's error
/// chain back to the call.
#[derive(Debug)]
pub struct ConnectFailure(pub CallError);

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ConnectFailure {}

/// When the DNS answer a connection was opened from expires: the first call
/// that ends on the connection after it retires the connection.
#[derive(Debug, Clone, Copy)]
pub struct Expires(pub Instant);

tokio::task_local! {
    /// The connect timeout of the call being sent, when its guest set one
    /// (a component's `request-options`): a connection opened for it
    /// resolves and connects within the lesser of this and
    /// `connect_timeout`, and shakes hands within the lesser of this and
    /// `tls_timeout`.
    pub static GUEST_CONNECT_TIMEOUT: Option<Duration>;
}

/// Opens connections for one function's client.
#[derive(Clone)]
pub struct Connector {
    pub(super) allow: Arc<AllowList>,
    pub(super) resolver: Arc<TokioResolver>,
    pub(super) tls: TlsConnector,
    pub(super) connect_timeout: Duration,
    pub(super) tls_timeout: Duration,
}

impl tower_service::Service<Uri> for Connector {
    type Response = OriginStream;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<OriginStream, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut this = self.clone();
        // The pool opens a connection from inside the call that needs one,
        // so the call's own connect timeout is in scope here.
        if let Ok(Some(guest)) = GUEST_CONNECT_TIMEOUT.try_with(|t| *t) {
            this.connect_timeout = this.connect_timeout.min(guest);
            this.tls_timeout = this.tls_timeout.min(guest);
        }
        Box::pin(async move { this.connect(uri).await.map_err(ConnectFailure) })
    }
}

impl Connector {
    async fn connect(self, uri: Uri) -> Result<OriginStream, CallError> {
        let scheme = uri
            .scheme_str()
            .and_then(Scheme::parse)
            .ok_or_else(|| CallError::Invalid("the URL's scheme is http or https".into()))?;
        let host_text = uri.host().unwrap_or_default();
        let host = Host::parse(host_text)
            .ok_or_else(|| CallError::Invalid(format!("`{host_text}` is not a host")))?;
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        let timeout = self.connect_timeout;
        let reached = tokio::time::timeout(timeout, async {
            let (addresses, expires) = self.resolve(&host).await?;
            let allowed: Vec<IpAddr> = addresses
                .iter()
                .copied()
                .filter(|ip| self.allow.may_connect(scheme, port, *ip))
                .collect();
            if allowed.is_empty() {
                return Err(CallError::Denied(format!(
                    "{host} resolves to {}, which is not public and which no outbound entry names",
                    list(&addresses)
                )));
            }
            Ok((connect_any(&allowed, port).await?, expires))
        })
        .await;
        let (tcp, expires) = reached.map_err(|_| {
            CallError::Timeout(format!(
                "no connection to {host}:{port} within connect_timeout ({timeout:?})"
            ))
        })??;
        let _ = tcp.set_nodelay(true);
        if scheme == Scheme::Http {
            return Ok(OriginStream(TokioIo::new(Conn::Plain(tcp)), expires));
        }
        let name = match &host {
            Host::Name(n) => ServerName::try_from(n.clone()),
            Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
        }
        .map_err(|e| CallError::Invalid(format!("`{host}` is not a TLS server name: {e}")))?;
        let handshake = tokio::time::timeout(self.tls_timeout, self.tls.connect(name, tcp)).await;
        let tls = handshake
            .map_err(|_| {
                CallError::Timeout(format!(
                    "no TLS handshake with {host}:{port} within tls_timeout ({:?})",
                    self.tls_timeout
                ))
            })?
            .map_err(|e| CallError::Tls(format!("TLS with {host}:{port}: {e}")))?;
        Ok(OriginStream(
            TokioIo::new(Conn::Tls(Box::new(tls))),
            expires,
        ))
    }

    /// The addresses of `host`, and when a name's answer expires.
    async fn resolve(&self, host: &Host) -> Result<(Vec<IpAddr>, Option<Expires>), CallError> {
        match host {
            Host::Ip(ip) => Ok((vec![*ip], None)),
            Host::Name(name) => {
                let found = self
                    .resolver
                    .lookup_ip(name.as_str())
                    .await
                    .map_err(|e| CallError::Connect(format!("cannot resolve {name}: {e}")))?;
                let addresses: Vec<IpAddr> = found.iter().collect();
                match addresses.is_empty() {
                    true => Err(CallError::Connect(format!("{name} has no address"))),
                    false => Ok((addresses, Some(Expires(found.valid_until())))),
                }
            }
        }
    }
}

/// Connects to the first address that answers.
async fn connect_any(addresses: &[IpAddr], port: u16) -> Result<TcpStream, CallError> {
    let mut last = None;
    for ip in addresses {
        match TcpStream::connect(SocketAddr::new(*ip, port)).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(format!("{}: {e}", SocketAddr::new(*ip, port))),
        }
    }
    Err(CallError::Connect(format!(
        "cannot connect to {}",
        last.unwrap_or_default()
    )))
}

fn list(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A connection to an origin, plain or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What the pool holds: a [`Conn`] in hyper's I/O traits, and when the DNS
/// answer it came from expires.
pub struct OriginStream(TokioIo<Conn>, Option<Expires>);

impl hyper::rt::Read for OriginStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for OriginStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl Connection for OriginStream {
    fn connected(&self) -> Connected {
        match self.1 {
            Some(expires) => Connected::new().extra(expires),
            None => Connected::new(),
        }
    }
}
