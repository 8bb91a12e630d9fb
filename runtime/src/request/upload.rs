//! A request body handed to a component as it arrives (`stream_request =
//! true`, SPEC §9), under `max_stream_request` and `min_body_rate`: a body
//! that grows past the one, or a sender whose average rate since the body
//! began falls under the other (judged after its first 10 s), is cut, and
//! the request is answered 413 or 408 whatever the guest made of it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::Error as HttpError;

/// How long a sender has before its rate is judged.
pub const RATE_GRACE: Duration = Duration::from_secs(10);

/// The limits on a streamed request body, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Bytes in all.
    pub max: u64,
    /// Bytes per second, on average since the body began.
    pub min_rate: u64,
}

/// Why an upload was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadCut {
    /// It grew past `max_stream_request`: 413.
    #[error("the request body grew past max_stream_request")]
    TooLarge,
    /// Its sender fell under `min_body_rate`: 408.
    #[error("the request body came slower than min_body_rate")]
    TooSlow,
}

/// Whether, and why, an upload was cut; shared between the body and the
/// request path, which answers for it.
#[derive(Debug, Default)]
pub struct UploadState(AtomicU8);

impl UploadState {
    fn cut(&self, why: UploadCut) {
        let code = match why {
            UploadCut::TooLarge => 1,
            UploadCut::TooSlow => 2,
        };
        self.0.store(code, Ordering::Relaxed);
    }

    /// Why the upload was cut, if it was.
    pub fn get(&self) -> Option<UploadCut> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(UploadCut::TooLarge),
            2 => Some(UploadCut::TooSlow),
            _ => None,
        }
    }
}

/// The body a component reads: whole, or streamed as it arrives.
pub enum RequestBody {
    /// Read before the guest started, within `max_request_body`.
    Whole(Full<Bytes>),
    /// Handed on as it arrives.
    Streamed(Upload),
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match self.get_mut() {
            Self::Whole(full) => Pin::new(full).poll_frame(cx).map_err(|e| match e {}),
            Self::Streamed(upload) => Pin::new(upload).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Whole(full) => full.is_end_stream(),
            Self::Streamed(upload) => upload.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Whole(full) => full.size_hint(),
            Self::Streamed(upload) => upload.body.size_hint(),
        }
    }
}

/// A request body streamed to the guest under [`UploadLimits`].
pub struct Upload {
    body: Incoming,
    limits: UploadLimits,
    state: Arc<UploadState>,
    started: Instant,
    received: u64,
    /// When the average rate falls under `min_rate` if nothing more comes.
    slow_at: Pin<Box<Sleep>>,
}

impl Upload {
    /// Streams `body` under `limits`, noting a cut in `state`.
    pub fn new(body: Incoming, limits: UploadLimits, state: Arc<UploadState>) -> Self {
        let started = Instant::now();
        Self {
            body,
            limits,
            state,
            started,
            received: 0,
            slow_at: Box::pin(tokio::time::sleep_until(started + RATE_GRACE)),
        }
    }

    /// The moment the average rate falls under `min_rate` with `received`
    /// bytes in: never before the grace period ends.
    fn slow_deadline(&self) -> Instant {
        let rate = self.limits.min_rate.max(1);
        let earned = Duration::from_secs_f64(self.received as f64 / rate as f64);
        self.started + earned.max(RATE_GRACE)
    }

    fn cut(&self, why: UploadCut) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        self.state.cut(why);
        Poll::Ready(Some(Err(match why {
            UploadCut::TooLarge => HttpError::HttpRequestBodySize(Some(self.received)),
            UploadCut::TooSlow => HttpError::ConnectionReadTimeout,
        })))
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if let Some(why) = self.state.get() {
            return self.cut(why);
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.received += data.len() as u64;
                    if self.received > self.limits.max {
                        return self.cut(UploadCut::TooLarge);
                    }
                    let at = self.slow_deadline();
                    self.slow_at.as_mut().reset(at);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::Hyper(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.slow_at.as_mut().poll(cx) {
                Poll::Ready(()) => self.cut(UploadCut::TooSlow),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
