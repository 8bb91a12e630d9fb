//! The public listener: accepts connections within `max_connections` and
//! `per_ip.max_connections`, hands each to a serving lane ([`crate::edge::conn`]
//! serves it there), backs off when accepting fails, and shuts down
//! gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::edge::Serve;
use crate::edge::conn::{self, ConnSettings};
use crate::edge::lanes::Lanes;
use crate::telemetry::CloseReason;

/// The first pause after a failed accept; it doubles up to [`MAX_BACKOFF`]
/// while accepts keep failing (out of file descriptors, usually).
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long a listener pauses after a failed accept: from [`FIRST_BACKOFF`],
/// doubling up to [`MAX_BACKOFF`] while accepts keep failing, and back to the
/// start after one succeeds. The public listener and the admin API's share it.
#[derive(Debug)]
pub struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self {
            next: FIRST_BACKOFF,
        }
    }
}

impl AcceptBackoff {
    /// An accept succeeded.
    pub fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }

    /// How long the next pause lasts.
    pub fn current(&self) -> Duration {
        self.next
    }

    /// An accept failed: waits, and makes the next pause longer.
    pub async fn pause(&mut self) {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        tokio::time::sleep(wait).await;
    }
}

/// What the listener needs beyond the connection settings.
pub struct ListenSettings {
    /// Open connections at most; beyond this, new ones wait in the backlog.
    pub max_connections: usize,
    /// How long in-flight requests get to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Serving threads ([`Lanes`]).
    pub workers: usize,
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets
/// in-flight requests finish (for at most `shutdown_timeout`) and returns.
pub async fn serve<A: Serve>(
    listener: TcpListener,
    app: Arc<A>,
    listen: ListenSettings,
    settings: ConnSettings,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let mut lanes = Lanes::start(listen.workers)?;
    let permits = Arc::new(Semaphore::new(listen.max_connections));
    let (stop, stopping) = watch::channel(false);
    // Every connection holds a sender; when the last one drops, all are done.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    let peers = app.peers().clone();
    let connections = app.connections().clone();
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        // Beyond max_connections nothing is accepted: clients wait in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.reset();
                a
            }
            Err(e) => {
                tracing::warn!(target: "wedge::server", backoff_ms = backoff.current().as_millis() as u64, "accept failed: {e}");
                tokio::select! {
                    () = backoff.pause() => {}
                    () = &mut shutdown => break,
                }
                continue;
            }
        };
        let Some(per_ip) = peers.connect(peer.ip()) else {
            connections.closed(CloseReason::PerIpLimit);
            continue;
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let (app, settings, stopping, open) = (
            app.clone(),
            settings.clone(),
            stopping.clone(),
            open.clone(),
        );
        let counted = connections.opened();
        let job = Box::pin(async move {
            let _held = (permit, per_ip, counted, open);
            // The connection moves to its lane's own event loop.
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                conn::serve(stream, app, settings, stopping).await;
            }
        });
        // A lane whose queue is full holds the accept loop; shutdown does not wait for it.
        if !lanes.dispatch_or_stop(job, shutdown.as_mut()).await {
            break;
        }
    }
    drop(listener);
    lanes.close();
    let _ = stop.send(true);
    drop(open);
    tracing::info!(
        target: "wedge::server",
        connections = connections.open(),
        inflight = app.inflight(),
        "stopped accepting; letting in-flight requests finish"
    );
    if tokio::time::timeout(listen.shutdown_timeout, all_closed.recv())
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
