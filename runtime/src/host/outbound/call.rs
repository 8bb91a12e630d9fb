//! One outbound call: the URL checked against the function's `outbound`
//! list, a permit from the node's limit, the request sent through the
//! function's pool under the call's deadline, redirects followed only when
//! the guest asks (each hop checked again), and the response body read in
//! chunks, never past `max_response`.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::capture_connection;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::connect::{ConnectFailure, Expires, GUEST_CONNECT_TIMEOUT};
use super::{CallError, OriginClient};
use crate::config::origins::{Host, Scheme};
use crate::telemetry::Telemetry;

/// Time a guest keeps to answer after a call that ran into the request's deadline.
const ANSWER_MARGIN: Duration = Duration::from_millis(50);

/// Headers the host sets from the URL and the body, or that belong to one
/// connection: a guest does not send them.
pub const HOST_HEADERS: [header::HeaderName; 8] = [
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
];

/// What the guest asked to send.
pub struct Call {
    pub method: Method,
    pub url: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Follow redirects, up to `[outbound] max_redirects`.
    pub follow_redirects: bool,
    /// Tighter timeouts the guest asked for.
    pub timeouts: GuestTimeouts,
}

/// Timeouts a guest sets on one call (a component's `request-options`).
/// Each can only shorten the node's own limits and the call's deadline.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestTimeouts {
    /// For opening a connection (resolving, TCP and TLS), when the pool
    /// has none to the origin.
    pub connect: Option<Duration>,
    /// From sending the request to its response's head, opening a
    /// connection included.
    pub first_byte: Option<Duration>,
    /// Between one frame of the response body and the next.
    pub between_bytes: Option<Duration>,
}

/// A response whose head has arrived; its body is read through [`Self::read`].
pub struct Opened {
    pub status: StatusCode,
    /// The headers as a WAGI guest reads them: `name: value\n` each.
    pub headers: Vec<u8>,
    /// The headers as a component reads them.
    pub head: HeaderMap,
    body: Incoming,
    /// Received but not yet given to the guest.
    pending: Bytes,
    /// Body bytes received so far.
    received: u64,
    done: bool,
    /// When the call's time is up.
    pub deadline: Instant,
    /// The longest the body's next frame may take, when the guest set one.
    between_bytes: Option<Duration>,
    max: u64,
    _permit: OwnedSemaphorePermit,
}

impl OriginClient {
    /// The entry of the `outbound` list that allows `url`, as written.
    pub fn origin_of(&self, url: &Uri) -> Result<Arc<str>, CallError> {
        let scheme = url
            .scheme_str()
            .and_then(Scheme::parse)
            .ok_or_else(|| CallError::Invalid(format!("`{url}`: the scheme is http or https")))?;
        let host = url
            .host()
            .and_then(Host::parse)
            .ok_or_else(|| CallError::Invalid(format!("`{url}` has no valid host")))?;
        let port = url.port_u16().unwrap_or(scheme.default_port());
        self.allow
            .allowing(scheme, &host, port)
            .map(|o| o.text.clone())
            .ok_or_else(|| {
                CallError::Denied(format!(
                    "{scheme}://{host}:{port} is not in the function's outbound list",
                    scheme = url.scheme_str().unwrap_or_default()
                ))
            })
    }

    /// When a call made now must end: `[outbound] timeout` from now, and a
    /// little before `request_deadline`, so the guest hears `timeout` while
    /// it can still answer.
    pub fn call_deadline(&self, request_deadline: Instant) -> Instant {
        (Instant::now() + self.node.config.timeout.0).min(
            request_deadline
                .checked_sub(ANSWER_MARGIN)
                .unwrap_or(request_deadline),
        )
    }

    /// [`Self::send`], timed, and counted under `function` and `origin` (the
    /// `outbound` entry that allows it, when one does) by its status or
    /// error; with how long it took.
    pub async fn send_counted(
        &self,
        call: Call,
        deadline: Instant,
        telemetry: &Telemetry,
        function: &str,
        origin: Option<&Arc<str>>,
    ) -> (Result<Opened, CallError>, Duration) {
        let started = Instant::now();
        let result = self.send(call, deadline).await;
        let took = started.elapsed();
        if let Some(origin) = origin {
            let status = match &result {
                Ok(r) => r.status.as_str().to_string(),
                Err(e) => e.label().to_string(),
            };
            telemetry.record_outbound(function, origin, status, took);
        }
        (result, took)
    }

    /// Sends `call`; the response's head is back by `deadline`.
    pub async fn send(&self, mut call: Call, deadline: Instant) -> Result<Opened, CallError> {
        let config = &self.node.config;
        let permit = self
            .node
            .inflight
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                CallError::Busy(format!(
                    "the node has {} outbound calls open ([outbound] max_inflight)",
                    config.max_inflight
                ))
            })?;
        let mut hops = 0;
        loop {
            self.origin_of(&call.url)?;
            let mut request = Request::builder()
                .method(call.method.clone())
                .uri(call.url.clone())
                .body(Full::new(call.body.clone()))
                .map_err(|e| CallError::Invalid(e.to_string()))?;
            *request.headers_mut() = call.headers.clone();
            let connection = capture_connection(&mut request);
            let sent =
                GUEST_CONNECT_TIMEOUT.scope(call.timeouts.connect, self.client.request(request));
            let first_byte = (call.timeouts.first_byte, "first-byte");
            let response = waited(sent, deadline, first_byte, || {
                format!("no response from {}", call.url)
            })
            .await?
            .map_err(classify)?;
            if let Some(Expires(at)) = response.extensions().get::<Expires>()
                && *at <= std::time::Instant::now()
                && let Some(connection) = &*connection.connection_metadata()
            {
                // The name's answer expired: the next call resolves it again.
                connection.poison();
            }
            let status = response.status();
            let next = match call.follow_redirects && hops < config.max_redirects {
                true => redirect(&call.url, status, response.headers()),
                false => None,
            };
            if let Some(url) = next {
                hops += 1;
                if status == StatusCode::SEE_OTHER
                    || (call.method == Method::POST
                        && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
                {
                    call.method = Method::GET;
                    call.body = Bytes::new();
                    call.headers.remove(header::CONTENT_TYPE);
                }
                if url.authority() != call.url.authority() {
                    // Credentials meant for one origin never follow to another.
                    call.headers.remove(header::AUTHORIZATION);
                    call.headers.remove(header::COOKIE);
                }
                call.url = url;
                continue;
            }
            let max = config.max_response.0;
            let length = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if let Some(length) = length.filter(|l| *l > max) {
                return Err(CallError::TooLarge(format!(
                    "the response has {length} bytes, over [outbound] max_response ({max})"
                )));
            }
            let mut headers = Vec::new();
            for (name, value) in response.headers() {
                headers.extend_from_slice(name.as_str().as_bytes());
                headers.extend_from_slice(b": ");
                headers.extend_from_slice(value.as_bytes());
                headers.push(b'\n');
            }
            return Ok(Opened {
                status,
                headers,
                head: response.headers().clone(),
                body: response.into_body(),
                pending: Bytes::new(),
                received: 0,
                done: false,
                deadline,
                between_bytes: call.timeouts.between_bytes,
                max,
                _permit: permit,
            });
        }
    }
}

impl Opened {
    /// Up to `want` more bytes of the body; empty at its end.
    pub async fn read(&mut self, want: usize) -> Result<Bytes, CallError> {
        while self.pending.is_empty() && !self.done {
            let between_bytes = (self.between_bytes, "between-bytes");
            let frame = waited(self.body.frame(), self.deadline, between_bytes, || {
                "the response body did not arrive".into()
            })
            .await?;
            match frame {
                None => self.done = true,
                Some(Err(e)) => return Err(CallError::Io(format!("reading the response: {e}"))),
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    self.received += data.len() as u64;
                    if self.received > self.max {
                        self.done = true;
                        return Err(CallError::TooLarge(format!(
                            "the response body passed [outbound] max_response ({} bytes)",
                            self.max
                        )));
                    }
                    self.pending = data;
                }
            }
        }
        let n = want.min(self.pending.len());
        Ok(self.pending.split_to(n))
    }
}

/// `wait`'s output, unless `deadline` passes first or, when the guest set
/// it, the guest's own timeout (its length and name) from now:
/// [`CallError::Timeout`] or [`CallError::ReadTimeout`] by which ran out.
/// `what` says what did not arrive.
async fn waited<F: Future>(
    wait: F,
    deadline: Instant,
    (guest, name): (Option<Duration>, &str),
    what: impl FnOnce() -> String,
) -> Result<F::Output, CallError> {
    let by = guest.map_or(deadline, |t| deadline.min(Instant::now() + t));
    tokio::time::timeout_at(by, wait)
        .await
        .map_err(|_| match guest {
            Some(t) if by < deadline => CallError::ReadTimeout(format!(
                "{} within the call's {name} timeout ({t:?})",
                what()
            )),
            _ => CallError::Timeout(format!("{} in time", what())),
        })
}

/// Where a redirect points, if `status` is one and its `Location` is usable.
fn redirect(from: &Uri, status: StatusCode, headers: &HeaderMap) -> Option<Uri> {
    if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = headers.get(header::LOCATION)?.to_str().ok()?;
    if location.starts_with('/') && !location.starts_with("//") {
        let mut parts = from.clone().into_parts();
        parts.path_and_query = Some(location.parse().ok()?);
        return Uri::from_parts(parts).ok();
    }
    let to: Uri = location.parse().ok()?;
    (to.scheme().is_some() && to.authority().is_some()).then_some(to)
}

/// What a failed hyper-util request comes to for the guest.
fn classify(e: hyper_util::client::legacy::Error) -> CallError {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(ConnectFailure(call)) = s.downcast_ref::<ConnectFailure>() {
            return call.clone();
        }
        source = s.source();
    }
    match e.is_connect() {
        true => CallError::Connect(e.to_string()),
        false => {
            let detail = e.source().map(|s| s.to_string()).unwrap_or_default();
            CallError::Io(format!("{e}: {detail}"))
        }
    }
}
