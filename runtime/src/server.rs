//! The public listener: accepts connections, speaks HTTP/1.1 or h2c (prior
//! knowledge), enforces the connection-level limits and shuts down gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};

use crate::config::ServerConfig;
use crate::handler::{App, ConnInfo};
use crate::lanes::Lanes;

/// The HTTP/2 connection preface a prior-knowledge h2c client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Connection-level settings, from `[server]`.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    /// A connection must deliver a complete request head within this time.
    pub header_read_timeout: Duration,
    /// Request line plus headers; hyper refuses heads beyond this with 431.
    pub max_header_bytes: usize,
    /// How long in-flight requests get to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Serving threads ([`Lanes`]).
    pub workers: usize,
}

impl ConnSettings {
    /// The settings `[server]` asks for.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout.0,
            max_header_bytes: server.max_header_bytes.as_usize(),
            shutdown_timeout: server.shutdown_timeout.0,
            workers: server.worker_threads(),
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (for at most `shutdown_timeout`) and returns.
/// Connections are served on `workers` lanes, handed out in turn.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    settings: ConnSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let settings = Arc::new(settings);
    let mut lanes = Lanes::start(settings.workers)?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let watcher = graceful.watcher();
                    // The connection moves to its lane's own event loop.
                    let Ok(stream) = stream.into_std() else { continue };
                    let (app, settings) = (app.clone(), settings.clone());
                    lanes
                        .dispatch(Box::pin(async move {
                            if let Ok(stream) = TcpStream::from_std(stream) {
                                serve_connection(stream, app, settings, watcher).await;
                            }
                        }))
                        .await;
                }
                Err(e) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    tracing::warn!(target: "wedge::server", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    lanes.close();
    let open = graceful.count();
    tracing::info!(
        target: "wedge::server",
        connections = open,
        inflight = app.inflight(),
        "stopped accepting; letting in-flight requests finish"
    );
    if tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            target: "wedge::server",
            inflight = app.inflight(),
            "shutdown_timeout reached with requests still running"
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    H2c,
}

async fn serve_connection(
    stream: TcpStream,
    app: Arc<App>,
    settings: Arc<ConnSettings>,
    watcher: Watcher,
) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let protocol = match tokio::time::timeout(settings.header_read_timeout, sniff(&stream)).await {
        Ok(Ok(Some(p))) => p,
        // Closed, failed, or silent for too long: nothing to answer.
        _ => return,
    };
    let conn = ConnInfo { peer, local };
    let service = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.handle(req, conn).await) }
    });
    let io = TokioIo::new(stream);
    let result = match protocol {
        Protocol::Http1 => {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(settings.header_read_timeout)
                .max_buf_size(settings.max_header_bytes.max(8192))
                .serve_connection(io, service);
            watcher.watch(conn).await
        }
        Protocol::H2c => {
            let conn = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
                .serve_connection(io, service);
            watcher.watch(conn).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(target: "wedge::server", %peer, "connection ended: {e}");
    }
}

/// Tells h2c prior knowledge from HTTP/1 by peeking at the first bytes, without
/// consuming them. `None` when the client closes first.
async fn sniff(stream: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(Protocol::Http1));
        }
        if n == H2_PREFACE.len() {
            return Ok(Some(Protocol::H2c));
        }
        // A partial preface: wait for the rest (bounded by the caller's timeout).
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
