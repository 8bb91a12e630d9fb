//! One client connection, from its first byte to its close: the TLS handshake
//! or the protocol sniff, HTTP/1.1 or HTTP/2 with bounded streams and windows,
//! and a watchdog that enforces the header-read, idle and write timeouts.
//!
//! - [`state`]: the counters the I/O, the requests and the watchdog share.
//! - [`io`]: the metered byte stream under the HTTP codec.
//! - [`frames`]: how far an HTTP/2 client is into a header block.
//! - [`watchdog`]: the timeouts, judged from the counters.

mod frames;
mod io;
mod state;
mod watchdog;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;
use crate::edge::{ConnInfo, Serve};
use crate::telemetry::{CloseReason, Connections};

pub use state::ConnState;
pub use watchdog::{Timeouts, Verdict};

use io::MeteredIo;
use state::TrackedBody;
use watchdog::Watchdog;

/// The HTTP/2 connection preface a prior-knowledge h2c client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Concurrent HTTP/2 streams per connection: what one connection may have in
/// flight, and so what one connection's responses may hold in memory.
pub const MAX_STREAMS: u32 = 100;
/// HTTP/2 receive windows: how much a client may send ahead of what wedge has
/// read, per stream and per connection.
const STREAM_WINDOW: u32 = 256 << 10;
const CONNECTION_WINDOW: u32 = 1 << 20;
/// HTTP/2 bytes buffered for sending per stream, beyond the response itself.
const SEND_BUFFER: usize = 256 << 10;
/// How long an idle connection's graceful close may take: an HTTP/2 client
/// has this long to answer the GOAWAY's ping before the connection is dropped.
const GOODBYE: Duration = Duration::from_secs(1);

/// Connection-level settings, from `[server]`.
#[derive(Clone)]
pub struct ConnSettings {
    /// Header-read, idle and write timeouts.
    pub timeouts: Timeouts,
    /// Request line plus headers; HTTP/1 heads beyond this get 431.
    pub max_header_bytes: usize,
    /// TLS, when `[server.tls]` is set.
    pub tls: Option<TlsAcceptor>,
}

impl ConnSettings {
    /// The settings `[server]` asks for, with TLS from `tls`.
    pub fn from_config(server: &ServerConfig, tls: Option<TlsAcceptor>) -> Self {
        Self {
            timeouts: Timeouts {
                header_read: server.header_read_timeout.0,
                idle: server.idle_timeout.0,
                write: server.write_timeout.0,
            },
            max_header_bytes: server.max_header_bytes.as_usize(),
            tls,
        }
    }
}

/// Serves one accepted connection until it closes, a timeout ends it, or
/// `shutdown` turns true (then in-flight requests finish first).
pub async fn serve<A: Serve>(
    mut stream: TcpStream,
    app: Arc<A>,
    settings: Arc<ConnSettings>,
    shutdown: watch::Receiver<bool>,
) {
    let opened = Instant::now();
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let info = ConnInfo {
        peer,
        local,
        tls: settings.tls.is_some(),
    };
    let connections = app.connections().clone();
    let header_read = settings.timeouts.header_read;
    // A connection that ends here is counted before it is dropped, as in
    // `serve_http`: the handshake holds it until then.
    match &settings.tls {
        Some(acceptor) => {
            let accept = acceptor.accept(stream).into_fallible();
            tokio::pin!(accept);
            match tokio::time::timeout(header_read, &mut accept).await {
                Ok(Ok(tls)) => {
                    let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    serve_http(
                        tls,
                        Bytes::new(),
                        http2,
                        info,
                        app,
                        &settings,
                        shutdown,
                        opened,
                    )
                    .await;
                }
                Ok(Err((e, tcp))) => {
                    connections.closed(CloseReason::Tls);
                    tracing::debug!(target: "wedge::server", %peer, "TLS handshake failed: {e}");
                    drop(tcp);
                }
                Err(_) => connections.closed(CloseReason::HeaderTimeout),
            }
        }
        None => match tokio::time::timeout(header_read, sniff(&mut stream)).await {
            Ok(Ok(Some((http2, prefix)))) => {
                serve_http(
                    stream, prefix, http2, info, app, &settings, shutdown, opened,
                )
                .await;
            }
            // Closed or failed before a byte: nothing to answer.
            Ok(_) => {}
            Err(_) => connections.closed(CloseReason::HeaderTimeout),
        },
    }
}

/// Reads the first bytes to tell h2c prior knowledge from HTTP/1; returns them
/// for the codec to read again. `None` when the client closes first.
async fn sniff(stream: &mut TcpStream) -> std::io::Result<Option<(bool, Bytes)>> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
        let n = buf.len().min(H2_PREFACE.len());
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some((false, buf.freeze())));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some((true, buf.freeze())));
        }
        // A partial preface: the next read waits for the rest.
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the connection's parts, passed once from the two ways in"
)]
async fn serve_http<S, A: Serve>(
    stream: S,
    prefix: Bytes,
    http2: bool,
    info: ConnInfo,
    app: Arc<A>,
    settings: &ConnSettings,
    shutdown: watch::Receiver<bool>,
    opened: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState::default());
    let connections = app.connections().clone();
    let watchdog = Watchdog::new(state.clone(), settings.timeouts, http2, opened);
    let io = TokioIo::new(MeteredIo::new(stream, prefix, state.clone(), http2));
    let service = service_fn(move |req| {
        let app = app.clone();
        let active = state.begin_request();
        async move {
            let response = app.handle(req, info).await;
            Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, active)))
        }
    });
    // Each branch counts how its connection ended before dropping it, so a
    // client that sees the close and then reads the metrics finds it counted.
    if http2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buf_size(SEND_BUFFER)
            .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
            .serve_connection(io, service);
        tokio::pin!(conn);
        let ended = drive(conn.as_mut(), |c| c.graceful_shutdown(), watchdog, shutdown).await;
        record(ended, &connections, info);
    } else {
        let conn = http1::Builder::new()
            // The watchdog times request heads, so that a keep-alive
            // connection between requests gets idle_timeout instead.
            .header_read_timeout(None)
            .max_buf_size(settings.max_header_bytes.max(8192))
            .serve_connection(io, service);
        tokio::pin!(conn);
        let ended = drive(conn.as_mut(), |c| c.graceful_shutdown(), watchdog, shutdown).await;
        record(ended, &connections, info);
    }
}

/// Counts and logs how a connection ended.
fn record(ended: Ended, connections: &Connections, info: ConnInfo) {
    match ended {
        Ended::Closed(Err(e)) => {
            tracing::debug!(target: "wedge::server", peer = %info.peer, "connection ended: {e}")
        }
        Ended::Closed(Ok(())) => {}
        Ended::By(verdict) => {
            let reason = match verdict {
                Verdict::Idle => CloseReason::Idle,
                Verdict::HeaderTimeout => CloseReason::HeaderTimeout,
                Verdict::WriteStalled => CloseReason::WriteTimeout,
            };
            connections.closed(reason);
            tracing::debug!(
                target: "wedge::server",
                peer = %info.peer,
                reason = reason.as_str(),
                "connection closed"
            );
        }
    }
}

/// How a connection ended.
enum Ended {
    /// The codec finished, cleanly or not.
    Closed(Result<(), hyper::Error>),
    /// The watchdog ended it.
    By(Verdict),
}

/// Runs `conn` under its watchdog. An idle connection, or every connection at
/// shutdown, is closed gracefully: requests in flight finish, and HTTP/2 gets
/// a GOAWAY. A head that does not arrive or a client that stops reading ends
/// the connection at once, dropping what it held.
async fn drive<C>(
    mut conn: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    mut watchdog: Watchdog,
    mut shutdown: watch::Receiver<bool>,
) -> Ended
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let idle = tokio::select! {
        result = conn.as_mut() => return Ended::Closed(result),
        verdict = watchdog.expire() => match verdict {
            Verdict::Idle => true,
            other => return Ended::By(other),
        },
        _ = shutdown.wait_for(|stop| *stop) => false,
    };
    graceful(conn.as_mut());
    // An idle connection has nothing to finish; give its goodbye a bound.
    let bound = async {
        match idle {
            true => tokio::time::sleep(GOODBYE).await,
            false => std::future::pending().await,
        }
    };
    tokio::select! {
        result = conn => match (idle, result) {
            (true, _) => Ended::By(Verdict::Idle),
            (false, result) => Ended::Closed(result),
        },
        () = watchdog.stalled() => Ended::By(Verdict::WriteStalled),
        () = bound => Ended::By(Verdict::Idle),
    }
}
