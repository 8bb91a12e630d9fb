//! The admin API, on its own listener: health, metrics, functions, deployments,
//! uploads, the operators' view of the key-value stores, and fleet rollouts
//! (`/v1/fleet`).
//!
//! Every route but `/healthz` needs `Authorization: Bearer <token>` when a token
//! is configured. Errors are JSON: `{"error": "..."}`.
//!
//! - [`api`]: the API's request and response types, shared by both ends.
//! - [`client`]: the API's client, behind `wedge deploy`, `status` and friends.

pub mod api;
mod auth;
pub mod client;
mod error;
mod fleet;
mod metrics;
mod routes;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

pub use auth::Token;
pub use error::AdminError;

use crate::control::Control;
use crate::control::fleet::Fleet;
use crate::edge::server::AcceptBackoff;
use crate::request::error::Body;

/// What the admin API works with.
pub struct Admin {
    /// Reloads, deployments, uploads.
    control: Arc<Control>,
    /// Fleet rollouts, when this node takes part in them.
    fleet: Option<Arc<Fleet>>,
    /// Required on every route but `/healthz`, when set.
    token: Option<Token>,
}

impl Admin {
    /// An admin API over `control` (and `fleet`, when the node is in one),
    /// guarded by `token` when given.
    pub fn new(control: Arc<Control>, fleet: Option<Arc<Fleet>>, token: Option<Token>) -> Self {
        Self {
            control,
            fleet,
            token,
        }
    }

    /// Serves `listener` until the task is dropped, [`crate::ADMIN_CONNECTIONS`]
    /// connections at a time. It runs on the control thread with its own
    /// listener and file descriptors set aside, so whatever the public
    /// listener suffers, the operator still gets in.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let permits = Arc::new(tokio::sync::Semaphore::new(crate::ADMIN_CONNECTIONS));
        let mut backoff = AcceptBackoff::default();
        loop {
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(target: "wedge::admin", "accept failed: {e}");
                    backoff.pause().await;
                    continue;
                }
            };
            backoff.reset();
            let admin = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.handle(req).await) }
                });
                // hyper's header-read timeout also bounds the wait between
                // requests, which closes an idle admin connection.
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        if req.method() == Method::GET && path == "/healthz" {
            return text(StatusCode::OK, "ok\n");
        }
        if let Some(token) = &self.token
            && !token.allows(req.headers())
        {
            return AdminError::Unauthorized.into_response();
        }
        let reply = match path.strip_prefix("/v1/fleet") {
            Some(rest) => fleet::route(&self.control, self.fleet.as_deref(), req, rest).await,
            None => routes::route(&self.control, req, &path).await,
        };
        reply.unwrap_or_else(AdminError::into_response)
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let mut text = serde_json::to_vec(value).unwrap_or_default();
    text.push(b'\n');
    let mut r = Response::new(Body::full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
