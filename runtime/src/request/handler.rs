//! The request path, top to bottom: admission, routing, body, guest run, response,
//! access log.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::edge::peers::Peers;
use crate::edge::validate::{self, BadRequest};
use crate::edge::{ConnInfo, Serve, lanes};
use crate::guest::engine::WasmEngine;
use crate::host::outbound::wit::Outgoing;
use crate::host::outbound::{OutboundCtx, RequestOutbound};
use crate::host::stdio::GuestLog;
use crate::host::store::KvCtx;
use crate::node::NodeState;
use crate::node::function::{Function, Handler, Version};
use crate::request::error::{Body, HostError};
use crate::request::id::request_id;
use crate::request::outcome::{RunError, Source, Timing};
use crate::request::rollout;
use crate::request::run_component::{self, HttpInvocation};
use crate::request::run_wagi::{self, Invocation};
use crate::request::stream::{Cause, GuestStream, Slot, StreamEnd, StreamLimits};
use crate::request::upload::{RequestBody, Upload, UploadLimits, UploadState};
use crate::request::wagi::{self, RequestInfo};
use crate::telemetry::{Connections, Outcome, TrapKind};

/// Limits the request path enforces, from `[server]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted.
    pub max_body: usize,
    /// Largest request line plus headers accepted.
    pub max_header_bytes: usize,
    /// Requests served at once before 503.
    pub max_inflight: usize,
    /// The whole body must arrive within this, before a request is admitted.
    pub body_timeout: std::time::Duration,
    /// Responses streaming at once before new requests get 503.
    pub max_streams: usize,
    /// Request bodies streamed to components.
    pub upload: UploadLimits,
}

impl Limits {
    /// The limits `[server]` sets.
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            max_body: server.max_request_body.as_usize(),
            max_header_bytes: server.max_header_bytes.as_usize(),
            max_inflight: server.max_inflight as usize,
            body_timeout: server.body_timeout.0,
            max_streams: server.max_streams as usize,
            upload: UploadLimits {
                max: server.max_stream_request.0,
                min_rate: server.min_body_rate.0,
            },
        }
    }
}

/// The request path: everything a request needs beyond the node's state.
pub struct App {
    /// What serves now, the stores, the telemetry.
    node: Arc<NodeState>,
    /// Compiles and instantiates guests.
    engine: Arc<WasmEngine>,
    /// Limits from `[server]`.
    limits: Limits,
    /// Requests reading their bodies now. Bodies are read before admission,
    /// so this bounds the memory they hold apart from `inflight`: at most
    /// `max_inflight` bodies of at most `max_request_body` each.
    reading: Arc<AtomicUsize>,
    /// Per-address connection counts and request rates.
    peers: Arc<Peers>,
}

/// What an access event records beyond the status.
#[derive(Default)]
struct Served {
    function: Option<Arc<str>>,
    version: Option<Arc<Version>>,
    timing: Timing,
    trap: Option<TrapKind>,
}

/// What the request path answers with: a whole response, or the head of
/// one whose body streams.
enum Reply {
    Whole(Response<Body>),
    Stream(Response<()>, Streaming),
}

/// A streaming body's parts, before its end is hooked to the access record.
struct Streaming {
    first: Bytes,
    source: Box<dyn Source>,
    limits: StreamLimits,
    slots: Vec<Slot>,
}

/// One request's access record, emitted when its response has been answered
/// whole, or when its stream has ended.
struct Access {
    method: http::Method,
    uri: http::Uri,
    request_id: String,
    status: u16,
    head: std::time::Duration,
    served: Served,
}

impl Serve for App {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl Future<Output = Response<Body>> + Send {
        self.handle(req, conn)
    }

    fn inflight(&self) -> usize {
        self.node.inflight()
    }

    fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    fn connections(&self) -> &Arc<Connections> {
        &self.node.telemetry().connections
    }
}

impl App {
    /// The request path over the node's state `node`.
    pub fn new(
        node: Arc<NodeState>,
        engine: Arc<WasmEngine>,
        limits: Limits,
        peers: Arc<Peers>,
    ) -> Self {
        Self {
            node,
            engine,
            limits,
            reading: Arc::default(),
            peers,
        }
    }

    /// The request's view of the stores: the function's `kv` list, and its
    /// writes named after the client's `Idempotency-Key` when it sent one.
    fn kv_ctx(&self, function: &Function, parts: &http::request::Parts) -> KvCtx {
        let ctx = KvCtx::new(
            self.node.kv().clone(),
            function.settings.kv.clone(),
            self.node.telemetry().clone(),
        );
        // `validate::check` already refused a malformed key.
        match validate::idempotency_key(&parts.headers) {
            Ok(Some(key)) => ctx.with_idempotency_key(function.name.clone(), key),
            _ => ctx,
        }
    }

    /// Serves one request; never fails, every error becomes a response.
    async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(req.headers());
        let (mut parts, body) = req.into_parts();
        let mut served = Served::default();
        let result = self
            .serve(&mut parts, body, conn, &request_id, &mut served)
            .await;
        let (mut head, streaming) = match result {
            Ok(Reply::Whole(r)) => (r, None),
            Ok(Reply::Stream(head, streaming)) => (head.map(|()| Body::default()), Some(streaming)),
            Err(e) => {
                log_failure(&e, &served, &request_id);
                (e.into_response(&request_id), None)
            }
        };
        let headers = head.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert("x-request-id", v);
        }
        if let Some(v) = &served.version
            && let Ok(v) = HeaderValue::from_str(&v.label)
        {
            headers.insert("x-wedge-version", v);
        }
        let access = Access {
            method: parts.method,
            uri: parts.uri,
            request_id,
            status: head.status().as_u16(),
            head: started.elapsed(),
            served,
        };
        let response = match streaming {
            None => {
                access.finish(&self.node, None);
                head
            }
            Some(s) => {
                // Only a stream keeps the node's state past this call.
                let node = self.node.clone();
                let on_end = Box::new(move |end, sent| access.finish(&node, Some((end, sent))));
                let stream = GuestStream::new(s.first, s.source, s.limits, s.slots, on_end);
                head.map(|_| Body::stream(Box::pin(stream)))
            }
        };
        // Let the lane's other ready requests run their guests before this
        // response is written: a busy lane then writes its responses in a burst,
        // and a client reading many connections wakes once for the burst instead
        // of once per response (each wakeup across cores costs the sender an
        // interrupt). With nothing else ready the response goes out at once.
        lanes::back_of_queue().await;
        response
    }

    /// Refuses what the host will not pass on, routes, reads the body (holding
    /// nothing but the connection), and only then takes an admission slot and
    /// an instance. The function's timeout runs from admission.
    async fn serve(
        &self,
        parts: &mut http::request::Parts,
        body: Incoming,
        conn: ConnInfo,
        request_id: &str,
        served: &mut Served,
    ) -> Result<Reply, HostError> {
        if head_size(parts) > self.limits.max_header_bytes {
            return Err(HostError::HeadersTooLarge);
        }
        validate::check(parts)?;
        self.peers
            .admit(conn.peer.ip())
            .map_err(HostError::RateLimited)?;

        let snapshot = self.node.snapshot_guard();
        let host = wagi::host_of(parts).map(|h| wagi::split_host_port(h).0);
        let Some(function) = snapshot.route(host, parts.uri.path()) else {
            // A function whose first code is still compiling (a node just
            // started, or a function just added) will serve: retry, not 404.
            return Err(match snapshot.starting(host, parts.uri.path()) {
                Some(starting) => {
                    served.function = Some(starting.name.clone());
                    HostError::Starting
                }
                None => HostError::NoRoute,
            });
        };
        served.function = Some(function.name.clone());
        let version = rollout::choose(function, &parts.headers)
            .cloned()
            .ok_or(HostError::NoVersion)?;
        served.version = Some(version.clone());

        // A component that reads its body as it arrives gets it so, checked
        // against its own cap; everything else is read whole first.
        let streams_upload = function.settings.stream_request
            && matches!(version.compiled.handler, Handler::Http(_));
        let (stdin, upload) = match streams_upload {
            true => {
                if declared_length(parts).is_some_and(|len| len > self.limits.upload.max) {
                    return Err(HostError::BodyTooLarge);
                }
                (Bytes::new(), Some(body))
            }
            false => (self.read_body(parts, body).await?, None),
        };
        let admitted = Slot::try_take(self.node.inflight_counter(), self.limits.max_inflight)
            .ok_or(HostError::Overloaded)?;
        if self.node.streams() >= self.limits.max_streams {
            return Err(HostError::Overloaded);
        }
        let deadline = Instant::now() + function.settings.timeout;
        let log = GuestLog::new(
            function.name.clone(),
            version.label.clone(),
            request_id.into(),
        );
        let tier = version.compiled.tier;
        let way_out = RequestOutbound {
            client: function.settings.outbound.clone(),
            function: function.name.clone(),
            telemetry: self.node.telemetry().clone(),
            deadline,
        };
        let (result, timing) = match &version.compiled.handler {
            Handler::Wagi(code) => {
                let parts = &*parts;
                let info = RequestInfo {
                    parts,
                    route: &function.route,
                    peer: conn.peer,
                    local: conn.local,
                    tls: conn.tls,
                    body_len: stdin.len(),
                    function: &function.name,
                    version: &version.label,
                    request_id,
                };
                let invocation = Invocation {
                    env: wagi::environment(&info, &function.settings.env),
                    args: wagi::arguments(parts),
                    stdin,
                    log,
                    deadline,
                    kv: self.kv_ctx(function, parts),
                    outbound: OutboundCtx::new(way_out),
                };
                run_wagi::run(&self.engine, (code, tier), &function.settings, invocation).await
            }
            Handler::Http(pre) => {
                let kv = self.kv_ctx(function, parts);
                let (body, upload) = match upload {
                    Some(body) => {
                        let state = Arc::new(UploadState::default());
                        let upload = Upload::new(body, self.limits.upload, state.clone());
                        (RequestBody::Streamed(upload), Some(state))
                    }
                    None => (RequestBody::Whole(Full::new(stdin)), None),
                };
                let invocation = HttpInvocation {
                    kv,
                    request: component_request(parts, conn, body)?,
                    upload,
                    log,
                    deadline,
                    outgoing: Outgoing::new(way_out),
                };
                run_component::run(&self.engine, (pre, tier), &function.settings, invocation).await
            }
        };
        served.timing = timing;
        if let Err(RunError::Failed { kind, .. }) = &result {
            served.trap = Some(*kind);
        }
        let guest = result?;
        let mut head = Response::new(());
        *head.status_mut() = guest.status;
        *head.headers_mut() = guest.headers;
        let Some(source) = guest.stream else {
            return Ok(Reply::Whole(head.map(|()| Body::full(guest.body))));
        };
        // A stream holds its instance past the head: it takes a stream slot
        // too, or is refused before its head goes out.
        let slot = Slot::try_take(self.node.streams_counter(), self.limits.max_streams)
            .ok_or(HostError::Overloaded)?;
        let end_by = match function.settings.max_stream {
            d if d.is_zero() => (deadline, Cause::Failed(TrapKind::Timeout)),
            d => (Instant::now() + d, Cause::MaxStream),
        };
        let limits = StreamLimits {
            max_response: function.settings.max_response,
            stream_idle: function.settings.stream_idle,
            end_by,
        };
        Ok(Reply::Stream(
            head,
            Streaming {
                first: guest.body,
                source,
                limits,
                slots: vec![admitted, slot],
            },
        ))
    }

    /// Reads the whole body within the limit and `body_timeout`. A declared
    /// length over the limit is refused before a byte of the body is read;
    /// beyond `max_inflight` bodies being read at once, 503.
    async fn read_body(
        &self,
        parts: &http::request::Parts,
        body: Incoming,
    ) -> Result<Bytes, HostError> {
        let max = self.limits.max_body;
        if declared_length(parts).is_some_and(|len| len > max as u64) {
            return Err(HostError::BodyTooLarge);
        }
        if body.is_end_stream() {
            return Ok(Bytes::new());
        }
        let _reading =
            Slot::try_take(&self.reading, self.limits.max_inflight).ok_or(HostError::Overloaded)?;
        match tokio::time::timeout(self.limits.body_timeout, Limited::new(body, max).collect())
            .await
        {
            Err(_) => Err(HostError::BodyTimeout),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.is::<LengthLimitError>() => Err(HostError::BodyTooLarge),
            Ok(Err(_)) => Err(HostError::BadBody),
        }
    }
}

/// The request as a component sees it: the same method, headers and body,
/// under an absolute URI (the `Host` header's authority, or the listener's
/// address when the client sent none). The headers are moved, not copied:
/// only the method and path are read after the guest runs.
fn component_request(
    parts: &mut http::request::Parts,
    conn: ConnInfo,
    body: RequestBody,
) -> Result<Request<RequestBody>, HostError> {
    let authority = match parts.uri.authority() {
        Some(a) => a.to_string(),
        None => wagi::host_of(parts).map_or_else(|| conn.local.to_string(), str::to_string),
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = http::Uri::builder()
        .scheme(if conn.tls { "https" } else { "http" })
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| HostError::BadRequest(BadRequest::BadHost))?;
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = parts.version;
    *request.headers_mut() = std::mem::take(&mut parts.headers);
    Ok(request)
}

/// The body length the client declared, if it declared one.
fn declared_length(parts: &http::request::Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Bytes of the request line and headers, as the client sent them (give or take
/// the spelling of the version).
fn head_size(parts: &http::request::Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + parts
            .uri
            .authority()
            .map_or(0, |a| a.as_str().len() + "http://".len());
    let line = parts.method.as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
    parts
        .headers
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

fn log_failure(error: &HostError, served: &Served, request_id: &str) {
    let function = served.function.as_deref().unwrap_or("");
    let version = served.version.as_deref().map(|v| &*v.label).unwrap_or("");
    match error {
        HostError::Guest(e) => {
            let kind = match e {
                RunError::Failed { kind, .. } => kind.as_str(),
                RunError::Malformed(_) => "malformed",
                RunError::NoResponse(_) => "no_response",
                RunError::TooLarge(_) => "too_large",
                RunError::Capacity(_) => "capacity",
                RunError::Upload(_) => "upload",
            };
            tracing::warn!(
                target: "wedge::guest",
                %function,
                %version,
                %request_id,
                %kind,
                "{e}"
            );
        }
        HostError::NoVersion => {
            tracing::warn!(target: "wedge::request", %function, %request_id, "{error}");
        }
        _ => tracing::debug!(target: "wedge::request", %function, %request_id, "{error}"),
    }
}

impl Access {
    /// Counts the request and writes its access line; for a stream, once it
    /// has ended, with how it ended and the body bytes it sent.
    fn finish(self, node: &NodeState, stream: Option<(StreamEnd, u64)>) {
        let served = &self.served;
        let version = served.version.as_deref();
        let function = served.function.as_deref().unwrap_or("");
        let mut trap = served.trap;
        let (ended, cut) = match &stream {
            None => ("", false),
            Some((StreamEnd::Ended, _)) => ("ended", false),
            Some((StreamEnd::Dropped, _)) => ("dropped", false),
            Some((StreamEnd::Cut(cause, detail), _)) => {
                if let Cause::Failed(kind) = cause {
                    trap = Some(*kind);
                }
                node.telemetry().record_cut(function, cause.as_str());
                tracing::warn!(
                    target: "wedge::guest",
                    %function,
                    version = version.map_or("", |v| &*v.label),
                    request_id = self.request_id.as_str(),
                    cause = cause.as_str(),
                    "stream cut: {detail}"
                );
                (cause.as_str(), true)
            }
        };
        match version {
            Some(v) => {
                v.stats.record(Outcome {
                    status: self.status,
                    total: self.head,
                    // Zero when no instance was created (refused before, or failed to).
                    instantiate: (!served.timing.instantiate.is_zero())
                        .then_some(served.timing.instantiate),
                    trap,
                    cut,
                });
                if self.status >= 500 || cut {
                    node.failures().notify_one();
                }
            }
            None => node.telemetry().record_unrouted(self.status),
        }
        tracing::info!(
            target: "wedge::access",
            method = self.method.as_str(),
            path = self.uri.path(),
            status = self.status,
            function,
            version = version.map_or("", |v| &*v.label),
            module_sha256 = version.map_or("", |v| &*v.short_sha),
            request_id = self.request_id.as_str(),
            total_us = self.head.as_micros() as u64,
            instantiate_us = served.timing.instantiate.as_micros() as u64,
            guest_us = served.timing.guest.as_micros() as u64,
            outbound_us = served.timing.outbound.as_micros() as u64,
            stream = ended,
            stream_bytes = stream.as_ref().map_or(0, |(_, sent)| *sent),
        );
    }
}
