//! What the edge hands a request to: the request path behind [`Serve`], and
//! the addresses of the connection it came in on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::Body;
use super::peers::Peers;
use crate::telemetry::Connections;

/// The addresses of the connection a request came in on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The client.
    pub peer: SocketAddr,
    /// The listener's side.
    pub local: SocketAddr,
    /// Whether the connection is TLS: the request's scheme is then `https`.
    pub tls: bool,
}

/// What serves the requests the edge accepts: the request path. The edge
/// knows nothing of functions; it counts connections and per-address use
/// where the request path can see them too.
pub trait Serve: Send + Sync + 'static {
    /// Serves one request; never fails, every error becomes a response.
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// Requests being served right now.
    fn inflight(&self) -> usize;

    /// Per-address connection counts and request rates.
    fn peers(&self) -> &Arc<Peers>;

    /// Connections opened and closed, by how they ended.
    fn connections(&self) -> &Arc<Connections>;
}
