//! One request's run of a wasi:http component: a fresh `Store` from the
//! pre-linked component, its memory cap and deadline,
//! `wasi:http/incoming-handler.handle`, and the response it sets: read whole
//! when it ends at once, streamed as the component writes it otherwise, within
//! the function's response cap either way.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header;
use hyper::body::Body as _;
use tokio::sync::oneshot;
use tokio::time::Instant;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::guest::engine::{Tier, WasmEngine};
use crate::host::limits::GuestLimits;
use crate::host::outbound::wit::Outgoing;
use crate::host::stdio::{GuestLog, ResponseTooLarge, STDOUT_HIGH_WATER};
use crate::host::store::KvCtx;
use crate::host::wasi_http::ProxyHost;
use crate::node::function::Settings;
use crate::request::outcome::{GuestResponse, RunError, Source, Timing, failure};
use crate::request::stream::{self, Running};
use crate::request::upload::{RequestBody, UploadCut, UploadState};
use crate::telemetry::TrapKind;

/// Everything a component gets for one request.
pub struct HttpInvocation {
    /// The request, its URI absolute; its body read whole, or streaming.
    pub request: http::Request<RequestBody>,
    /// Whether a streaming body was cut off, for a body that streams.
    pub upload: Option<Arc<UploadState>>,
    /// Where the component's stdout and stderr go.
    pub log: GuestLog,
    /// When the request's time is up.
    pub deadline: Instant,
    /// The request's calls to its origins.
    pub outgoing: Outgoing,
    /// The key-value stores the function may open.
    pub kv: KvCtx,
}

/// What the guest's run came to, apart from the response.
struct GuestEnd {
    result: wasmtime::Result<()>,
    memory_exceeded: bool,
    outbound: std::time::Duration,
}

type Outparam = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

/// The guest's run: what it came to, and its store, kept until the body it
/// wrote has been read (dropping the store ends the body as if finished).
type Run = (GuestEnd, Store<ProxyHost>);

/// Body bytes read ahead of the head's going out. A component that writes
/// more before it ends streams; one that ends within it gets a
/// `Content-Length` and one write.
const READ_AHEAD: usize = STDOUT_HIGH_WATER;

/// Runs a component, whose code is of `tier`, for one request in a fresh
/// instance. A component that returns from `handle` with its body finished
/// and within [`READ_AHEAD`] gets it sent whole; one that waits on anything
/// (a sleep, an outbound call, a client that is behind) with its response
/// set, or writes more, streams the rest.
pub async fn run(
    engine: &WasmEngine,
    (pre, tier): (&ProxyPre<ProxyHost>, Tier),
    settings: &Settings,
    inv: HttpInvocation,
) -> (Result<GuestResponse, RunError>, Timing) {
    let mut store = Store::new(
        engine.engine_for(tier),
        ProxyHost::new(
            settings.env.clone(),
            GuestLimits::new(settings.memory),
            inv.log,
            inv.kv,
            inv.outgoing,
        ),
    );
    store.limiter(|host| &mut host.limits);
    let yielded = stream::yield_at_ticks(&mut store);

    let started = Instant::now();
    let mut timing = Timing::default();
    let timed_out = || RunError::timed_out(settings.timeout);
    let (sender, receiver) = oneshot::channel::<Outparam>();
    let scheme = match inv.request.uri().scheme() {
        Some(s) if *s == http::uri::Scheme::HTTPS => Scheme::Https,
        _ => Scheme::Http,
    };
    let resources = {
        let mut http = store.data_mut().http();
        http.new_incoming_request(scheme, inv.request)
            .and_then(|req| Ok((req, http.new_response_outparam(sender)?)))
    };
    let (request, outparam) = match resources {
        Ok(r) => r,
        Err(e) => return (Err(failure(&e, false)), timing),
    };
    let proxy = match tokio::time::timeout_at(inv.deadline, pre.instantiate_async(&mut store)).await
    {
        Ok(Ok(proxy)) => proxy,
        Ok(Err(e)) => return (Err(failure(&e, store.data().limits.exceeded())), timing),
        Err(_elapsed) => return (Err(timed_out()), timing),
    };
    timing.instantiate = started.elapsed();

    let running = Running::new(
        Box::pin(async move {
            let result = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await;
            let end = GuestEnd {
                result,
                memory_exceeded: store.data().limits.exceeded(),
                outbound: store.data().outbound_spent(),
            };
            (end, store)
        }),
        yielded,
    );
    let mut ahead = ReadAhead {
        running,
        receiver,
        head: None,
        body: None,
        read: BytesMut::new(),
        body_done: false,
        broken: None,
        ended: None,
        cap: settings.max_response,
        upload: inv.upload,
    };
    let mut deadline = std::pin::pin!(tokio::time::sleep_until(inv.deadline));
    let decided = std::future::poll_fn(|cx| {
        if let Some(decision) = ahead.poll(cx) {
            return Poll::Ready(Some(decision));
        }
        deadline.as_mut().poll(cx).map(|()| None)
    })
    .await;
    timing.guest = started.elapsed().saturating_sub(timing.instantiate);
    if let Some((end, _)) = &ahead.ended {
        timing.outbound = end.outbound;
    }
    let result = match decided {
        None => Err(timed_out()),
        Some(Decision::Whole) => ahead.whole(),
        Some(Decision::Stream) => Ok(ahead.stream()),
    };
    (result, timing)
}

/// What the head's reading came to.
enum Decision {
    /// Answer now from what was read.
    Whole,
    /// Send the head, then stream.
    Stream,
}

/// Runs the component until its response can be answered whole, or must
/// stream, reading its body ahead meanwhile.
struct ReadAhead {
    running: Running<Run>,
    receiver: oneshot::Receiver<Outparam>,
    head: Option<http::response::Parts>,
    body: Option<HyperOutgoingBody>,
    read: BytesMut,
    body_done: bool,
    broken: Option<NoAnswer>,
    ended: Option<Run>,
    cap: usize,
    upload: Option<Arc<UploadState>>,
}

impl ReadAhead {
    /// Polls the guest and its response until one of them says what to do.
    fn poll(&mut self, cx: &mut Context<'_>) -> Option<Decision> {
        loop {
            if self.upload_cut().is_some() {
                return Some(Decision::Whole);
            }
            if self.head.is_none() && self.broken.is_none() {
                match Pin::new(&mut self.receiver).poll(cx) {
                    Poll::Ready(Ok(Ok(response))) => {
                        let (parts, body) = response.into_parts();
                        self.head = Some(parts);
                        self.body = Some(body);
                    }
                    Poll::Ready(Ok(Err(code))) => self.broken = Some(NoAnswer::Code(code)),
                    Poll::Ready(Err(_)) => self.broken = Some(NoAnswer::Unset),
                    Poll::Pending => {}
                }
            }
            let read = self.read_body(cx);
            if self.ended.is_none()
                && let Poll::Ready(run) = self.running.poll(cx)
            {
                self.ended = Some(run);
                continue;
            }
            if !read {
                break;
            }
        }
        if self.broken.is_some() {
            return Some(Decision::Whole);
        }
        let full = self.read.len() > READ_AHEAD;
        match (&self.head, &self.ended) {
            (Some(_), Some(_)) if !self.body_done && full => Some(Decision::Stream),
            (_, Some(_)) => Some(Decision::Whole),
            (Some(_), None) if !self.body_done && (full || self.running.head_due()) => {
                Some(Decision::Stream)
            }
            _ => None,
        }
    }

    /// Reads what the body holds, up to [`READ_AHEAD`]; whether it read any.
    fn read_body(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(body) = self.body.as_mut() else {
            return false;
        };
        let mut read = false;
        // One frame past the read-ahead: a body just over a small
        // `max_response` is then refused whole (502) rather than cut.
        while !self.body_done && self.broken.is_none() && self.read.len() <= READ_AHEAD {
            match poll_body(body, cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    read = true;
                    if let Ok(data) = frame.into_data() {
                        if self.read.len() + data.len() > self.cap {
                            self.broken = Some(NoAnswer::TooLarge(self.cap));
                        } else {
                            self.read.extend_from_slice(&data);
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => self.broken = Some(NoAnswer::Body(e.to_string())),
                Poll::Ready(None) => {
                    read = true;
                    self.body_done = true;
                }
                Poll::Pending => break,
            }
        }
        read
    }

    /// The whole response, or why there is none. With the store still alive,
    /// a body that has not ended was left unfinished.
    fn whole(mut self) -> Result<GuestResponse, RunError> {
        // A cut upload answers for the request, whatever the guest made of it.
        if let Some(cut) = self.upload_cut() {
            return Err(cut.into());
        }
        let end = self.ended.take().map(|(end, store)| {
            drop(store);
            end
        });
        let answer = match (self.broken.take(), self.head.take()) {
            (Some(broken), _) => Err(broken),
            (None, Some(head)) if self.body_done => Ok(response(head, self.read.freeze())),
            (None, Some(_)) => Err(NoAnswer::Body(
                "the component returned without finishing it".into(),
            )),
            (None, None) => Err(NoAnswer::Unset),
        };
        conclude(end, answer)
    }

    /// Why the request body streaming to the guest was cut, if it was.
    fn upload_cut(&self) -> Option<UploadCut> {
        self.upload.as_ref().and_then(|u| u.get())
    }

    /// The head and what was read of the body, with the rest to stream.
    fn stream(self) -> GuestResponse {
        let head = self.head.expect("a response streams once its head is set");
        let mut response = response(head, self.read.freeze());
        let (running, ended) = match self.ended {
            Some(run) => (None, Some(run)),
            None => (Some(self.running), None),
        };
        response.stream = Some(Box::new(ComponentSource {
            running,
            ended,
            body: self.body.expect("a head comes with its body"),
            body_done: false,
        }));
        response
    }
}

/// Polls the component's body for its next frame, outside tokio's
/// cooperative budget. Once the guest has returned, a body that is not ready
/// was left unfinished, and that is only true if "not ready" means empty: a
/// budgeted poll can also say so when the task has used up its budget, which
/// cut whole responses as unfinished when forty streamed at once.
fn poll_body(
    body: &mut HyperOutgoingBody,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<hyper::body::Frame<Bytes>, wasmtime_wasi_http::Error>>> {
    let mut next = tokio::task::coop::unconstrained(std::future::poll_fn(|cx| {
        Pin::new(&mut *body).poll_frame(cx)
    }));
    Pin::new(&mut next).poll(cx)
}

/// The response the component set, with the headers of the connection removed:
/// hyper frames the body it is given.
fn response(parts: http::response::Parts, body: Bytes) -> GuestResponse {
    let mut headers = parts.headers;
    for name in [
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    GuestResponse {
        status: parts.status,
        headers,
        body,
        stream: None,
    }
}

/// The rest of a component's body, as the component writes it. The store
/// stays until the body has ended, so an unfinished body shows as one.
struct ComponentSource {
    running: Option<Running<Run>>,
    ended: Option<Run>,
    body: HyperOutgoingBody,
    body_done: bool,
}

impl Source for ComponentSource {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, RunError>>> {
        // Set once the guest has paused in this poll: the body is read once
        // more for what it wrote before pausing, then the poll ends.
        let mut paused = false;
        loop {
            if !self.body_done {
                match poll_body(&mut self.body, cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => return Poll::Ready(Some(Ok(data))),
                        Err(_trailers) => continue,
                    },
                    Poll::Ready(Some(Err(e))) => {
                        let broke =
                            RunError::NoResponse(format!("the response body broke off: {e}"));
                        return Poll::Ready(Some(Err(self.failure().unwrap_or(broke))));
                    }
                    Poll::Ready(None) => self.body_done = true,
                    Poll::Pending => {}
                }
            }
            if let Some(failed) = self.failure() {
                return Poll::Ready(Some(Err(failed)));
            }
            if self.ended.is_some() {
                // The guest returned: its body is whole once it has ended, and
                // unfinished if it has not.
                return Poll::Ready(match self.body_done {
                    true => None,
                    false => Some(Err(RunError::NoResponse(
                        "the component returned without finishing its body".into(),
                    ))),
                });
            }
            if paused {
                return Poll::Pending;
            }
            let Some(running) = self.running.as_mut() else {
                return Poll::Ready(None);
            };
            match running.poll(cx) {
                Poll::Ready(run) => {
                    self.running = None;
                    self.ended = Some(run);
                }
                Poll::Pending => paused = true,
            }
        }
    }
}

impl ComponentSource {
    /// The guest's failure, once its run has ended in one.
    fn failure(&self) -> Option<RunError> {
        let (end, _) = self.ended.as_ref()?;
        let error = end.result.as_ref().err()?;
        Some(failure(error, end.memory_exceeded))
    }
}

/// Why no response could be read.
enum NoAnswer {
    /// The component returned, or trapped, without setting one.
    Unset,
    /// It set an error code instead of a response.
    Code(ErrorCode),
    /// Its body failed midway: the component trapped or dropped it unfinished.
    Body(String),
    /// Its body is larger than the function's `max_response`.
    TooLarge(usize),
}

/// The response, or why there is none: the guest's own failure explains a
/// missing response better than its absence does.
fn conclude(
    end: Option<GuestEnd>,
    answer: Result<GuestResponse, NoAnswer>,
) -> Result<GuestResponse, RunError> {
    let failed = end.as_ref().and_then(|e| {
        e.result
            .as_ref()
            .err()
            .map(|err| failure(err, e.memory_exceeded))
    });
    match (answer, failed) {
        (Err(NoAnswer::TooLarge(cap)), _) => Err(RunError::TooLarge(ResponseTooLarge { cap })),
        (Ok(response), None) => Ok(response),
        (_, Some(failed)) => Err(failed),
        (Err(NoAnswer::Unset), None) => Err(RunError::NoResponse(
            "the component returned without setting a response".into(),
        )),
        (Err(NoAnswer::Code(code)), None) => Err(RunError::Failed {
            kind: TrapKind::Trap,
            message: format!("the component answered with the error {code:?}"),
        }),
        (Err(NoAnswer::Body(e)), None) => Err(RunError::NoResponse(format!(
            "the response body broke off: {e}"
        ))),
    }
}
