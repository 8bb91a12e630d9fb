//! `wasi:http/outgoing-handler` through the same way out a WAGI handler's
//! `http_send` takes: the function's `outbound` list on the URL and on
//! every resolved address, its pooled connections, the DNS cache, the
//! node's limits and the request's deadline. The call is counted and timed
//! as a WAGI call is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited, StreamBody};
use hyper::body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

use crate::host::outbound::call::{Call, GuestTimeouts, HOST_HEADERS, Opened};
use crate::host::outbound::{CallError, OriginClient, RequestOutbound};

/// Body bytes handed to the component at a time.
const CHUNK: usize = 64 << 10;

/// Largest request body a component may send; it is read whole before the
/// call goes out.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// A request's outbound calls from a component.
pub struct Outgoing {
    /// The function's client, name, telemetry and the request's deadline.
    request: RequestOutbound,
    calls: u32,
    /// Microseconds spent in calls, added to by each call's task; made by
    /// the first call.
    spent: Option<Arc<AtomicU64>>,
    /// Responses open (sent, body not yet read to its end or dropped),
    /// `[outbound] max_per_request` at most; made by the first call.
    open: Option<Arc<Semaphore>>,
}

/// What a sent request comes to: the response, and the driver of its
/// connection (the pool drives its own, so it has nothing to do).
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
);

impl Outgoing {
    /// The outbound calls of a request that may call out with `request`.
    pub fn new(request: RequestOutbound) -> Self {
        Self {
            request,
            calls: 0,
            spent: None,
            open: None,
        }
    }

    /// Time spent in outbound calls so far.
    pub fn spent(&self) -> Duration {
        self.spent.as_ref().map_or(Duration::ZERO, |spent| {
            Duration::from_micros(spent.load(Ordering::Relaxed))
        })
    }

    /// Sends `request` when the function may: counted now, sent by the
    /// returned future.
    pub fn send(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> impl Future<Output = wasmtime_wasi_http::Result<Sent>> + Send + 'static {
        let admitted = self.admit(&request);
        let spent = self.spent.get_or_insert_with(Arc::default).clone();
        let (function, telemetry) = (
            self.request.function.clone(),
            self.request.telemetry.clone(),
        );
        let deadline = self.request.deadline;
        async move {
            let (client, origin, permit) = admitted.map_err(|e| to_http_error(&e))?;
            let deadline = client.call_deadline(deadline);
            let call = call_of(request, options).await?;
            let (result, took) = client
                .send_counted(call, deadline, &telemetry, &function, Some(&origin))
                .await;
            spent.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
            let opened = result.map_err(|e| to_http_error(&e))?;
            Ok((
                response_of(opened, permit),
                Box::new(async { Ok(()) }) as Box<_>,
            ))
        }
    }

    /// The client and the list entry allowing the call, if the function may
    /// make it: counted against `max_calls_per_request` here, before anything
    /// is read or sent.
    fn admit(
        &mut self,
        request: &http::Request<WasiBody>,
    ) -> Result<(Arc<OriginClient>, Arc<str>, OwnedSemaphorePermit), CallError> {
        let client = self
            .request
            .client
            .clone()
            .ok_or_else(|| CallError::Denied("the function's outbound list is empty".into()))?;
        let config = client.config();
        let max = config.max_calls_per_request;
        if self.calls >= max {
            return Err(CallError::Busy(format!(
                "this request made {max} calls ([outbound] max_calls_per_request)"
            )));
        }
        let open = config.max_per_request;
        let permit = self
            .open
            .get_or_insert_with(|| Arc::new(Semaphore::new(open as usize)))
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                CallError::Busy(format!(
                    "{open} responses are open in this request ([outbound] max_per_request): read them to the end or drop them"
                ))
            })?;
        self.calls += 1;
        let origin = client.origin_of(request.uri())?;
        Ok((client, origin, permit))
    }
}

/// The call a component's request makes: its body read whole, at most
/// [`MAX_REQUEST_BODY`] bytes, under the timeouts its options set.
async fn call_of(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> wasmtime_wasi_http::Result<Call> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err(HttpError::HttpRequestBodySize(None));
        }
        // The component broke its body off.
        Err(_) => return Err(HttpError::HttpProtocolError),
    };
    // The host sets these itself, from the URL and the body.
    let mut headers = parts.headers;
    for name in &HOST_HEADERS {
        headers.remove(name);
    }
    Ok(Call {
        method: parts.method,
        url: parts.uri,
        headers,
        body,
        follow_redirects: false,
        timeouts: options.map_or_else(GuestTimeouts::default, |o| GuestTimeouts {
            connect: o.connect_timeout,
            first_byte: o.first_byte_timeout,
            between_bytes: o.between_bytes_timeout,
        }),
    })
}

/// The response as the component reads it: its body in chunks, as it
/// comes. The response counts as open, against `max_per_request`, until its
/// body ends or the component drops it.
fn response_of(opened: Opened, permit: OwnedSemaphorePermit) -> http::Response<WasiBody> {
    let mut response = http::Response::new(());
    *response.status_mut() = opened.status;
    *response.headers_mut() = opened.head.clone();
    let chunks = futures_util::stream::unfold(Some((opened, permit)), |open| async move {
        let (mut opened, permit) = open?;
        match opened.read(CHUNK).await {
            Ok(data) if data.is_empty() => None,
            Ok(data) => Some((Ok(Frame::data(data)), Some((opened, permit)))),
            Err(e) => Some((Err(to_http_error(&e)), None)),
        }
    });
    response.map(|()| StreamBody::new(chunks).boxed_unsync())
}

/// The wasi:http error code a failed call gives the component; the log
/// and metrics have the whole message.
fn to_http_error(e: &CallError) -> HttpError {
    tracing::debug!(target: "wedge::outbound", "{e}");
    match e {
        CallError::Denied(_) => HttpError::HttpRequestDenied,
        CallError::Timeout(_) => HttpError::ConnectionTimeout,
        CallError::ReadTimeout(_) => HttpError::ConnectionReadTimeout,
        CallError::Connect(_) => HttpError::ConnectionRefused,
        CallError::Tls(_) => HttpError::TlsProtocolError,
        CallError::TooLarge(_) => HttpError::HttpResponseBodySize(None),
        CallError::Invalid(_) => HttpError::HttpRequestUriInvalid,
        CallError::Busy(_) => HttpError::ConnectionLimitReached,
        CallError::Io(_) => HttpError::HttpProtocolError,
    }
}
