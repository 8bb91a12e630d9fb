//! One request's run of a wasi:http component: a fresh `Store` from the
//! pre-linked component, its memory cap and deadline,
//! `wasi:http/incoming-handler.handle`, and the response it sets, read whole
//! within the function's response cap.

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::header;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
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
use crate::host::stdio::{GuestLog, ResponseTooLarge};
use crate::host::store::KvCtx;
use crate::host::wasi_http::ProxyHost;
use crate::node::function::Settings;
use crate::request::outcome::{GuestResponse, RunError, Timing, failure};
use crate::telemetry::TrapKind;

/// Everything a component gets for one request.
pub struct HttpInvocation {
    /// The request, its body already read whole, its URI absolute.
    pub request: http::Request<Bytes>,
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

/// Runs a component, whose code is of `tier`, for one request in a fresh
/// instance. The response is sent once its body is complete and the
/// component has returned from `handle`, both before the deadline.
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
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);

    let started = Instant::now();
    let mut timing = Timing::default();
    let (sender, receiver) = oneshot::channel::<Outparam>();
    let scheme = match inv.request.uri().scheme() {
        Some(s) if *s == http::uri::Scheme::HTTPS => Scheme::Https,
        _ => Scheme::Http,
    };
    let resources = {
        let mut http = store.data_mut().http();
        http.new_incoming_request(scheme, inv.request.map(Full::new))
            .and_then(|req| Ok((req, http.new_response_outparam(sender)?)))
    };
    let (request, outparam) = match resources {
        Ok(r) => r,
        Err(e) => return (Err(failure(&e, false)), timing),
    };

    // The store moves into the guest's future and comes back out when
    // `handle` returns; dropping it closes whatever body the component left
    // open.
    let instantiated = &mut timing.instantiate;
    let guest = async move {
        let result = async {
            let proxy = pre.instantiate_async(&mut store).await?;
            *instantiated = started.elapsed();
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, outparam)
                .await
        }
        .await;
        let end = GuestEnd {
            result,
            memory_exceeded: store.data().limits.exceeded(),
            outbound: store.data().outbound_spent(),
        };
        (end, store)
    };
    let response = read_response(receiver, settings.max_response);

    let outcome = tokio::time::timeout_at(inv.deadline, async {
        tokio::pin!(guest, response);
        let mut ended = None;
        let answer = loop {
            tokio::select! {
                (end, store) = &mut guest, if ended.is_none() => {
                    let returned = end.result.is_ok();
                    ended = Some(end);
                    if returned {
                        // Once `handle` returns, the component writes nothing
                        // more: a response it set and finished is already all
                        // in the host's buffers, and reads to its end in one
                        // poll. One that wants more was left unfinished.
                        let read = tokio::task::coop::unconstrained(&mut response).now_or_never();
                        drop(store);
                        break match read {
                            Some(answer) => answer,
                            None => unfinished((&mut response).await),
                        };
                    }
                }
                answer = &mut response => break answer,
            }
        };
        // A response that cannot be sent needs the guest no longer.
        let end = match (ended, &answer) {
            (Some(end), _) => Some(end),
            (None, Ok(_)) => Some(guest.await.0),
            (None, Err(_)) => None,
        };
        (end, answer)
    })
    .await;
    timing.guest = started.elapsed().saturating_sub(timing.instantiate);
    if let Ok((Some(end), _)) = &outcome {
        timing.outbound = end.outbound;
    }

    let result = match outcome {
        Err(_elapsed) => Err(RunError::Failed {
            kind: TrapKind::Timeout,
            message: format!("no response within {:?}", settings.timeout),
        }),
        Ok((end, answer)) => conclude(end, answer),
    };
    (result, timing)
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

/// The response the component sets, its body read whole, at most `cap` bytes.
async fn read_response(
    receiver: oneshot::Receiver<Outparam>,
    cap: usize,
) -> Result<GuestResponse, NoAnswer> {
    let response = match receiver.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Err(NoAnswer::Code(code)),
        Err(_) => return Err(NoAnswer::Unset),
    };
    let (parts, body) = response.into_parts();
    let body = match Limited::new(body, cap).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return Err(NoAnswer::TooLarge(cap)),
        Err(e) => return Err(NoAnswer::Body(e.to_string())),
    };
    let mut headers = parts.headers;
    // The connection's own: hyper frames the body it is given.
    for name in [
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    Ok(GuestResponse {
        status: parts.status,
        headers,
        body,
    })
}

/// What a response the component did not finish before `handle` returned
/// comes to once its store is gone: with the store dropped, its body reads
/// as ended, but it is not complete.
fn unfinished(answer: Result<GuestResponse, NoAnswer>) -> Result<GuestResponse, NoAnswer> {
    match answer {
        Ok(_) => Err(NoAnswer::Body(
            "the component returned without finishing it".into(),
        )),
        other => other,
    }
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
