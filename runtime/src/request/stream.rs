//! A response that streams: the guest's run as a future the request path
//! polls by hand ([`Running`]), and the body that carries what the guest
//! writes after the head to the client under the stream limits of SPEC §9
//! ([`GuestStream`]).
//!
//! The body drives the guest: the guest runs only while the codec asks for
//! bytes, so a client that is not reading holds the guest at its next write,
//! and node memory at what the connection has buffered. Dropping the body
//! (the client went away, `write_timeout`, shutdown) drops the instance.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use wasmtime::UpdateDeadline;

use crate::edge::body::Cut;
use crate::request::outcome::{RunError, Source};
use crate::telemetry::TrapKind;

/// How long a guest may compute with its head ready, never waiting on
/// anything, before the head goes out anyway: its first bytes then reach
/// the client within this of being written, while a guest that ends sooner
/// keeps the one-write fast path.
pub const HEAD_HOLD: Duration = Duration::from_millis(10);

/// A guest's run, polled by hand, that knows whether its last pause was a
/// wait (a sleep, an outbound call, a client that is behind) or only the
/// epoch's yield of the CPU to other requests.
pub struct Running<O> {
    future: Pin<Box<dyn Future<Output = O> + Send>>,
    yielded: Arc<AtomicBool>,
    waiting: bool,
    /// Since when the head has been ready, while the guest computes on.
    head_ready: Option<Instant>,
}

/// Sets `store` up to yield the CPU at every epoch tick, noting each yield
/// in the flag returned, for [`Running::new`].
///
/// The yield is tokio's own, which lets the lane look at its timers and
/// sockets before the guest runs again. A plain wake-and-pend would put the
/// guest straight back in the run queue: a lane shared with guests that
/// compute without pause then saw its timers only every 61 polls (tokio's
/// event interval), 300 ms at one poll per 5 ms tick, and a streaming
/// neighbour's events, due every 10 ms, came 300 ms late.
pub fn yield_at_ticks<T: 'static>(store: &mut wasmtime::Store<T>) -> Arc<AtomicBool> {
    let yielded = Arc::new(AtomicBool::new(false));
    let flag = yielded.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        flag.store(true, Ordering::Relaxed);
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    yielded
}

impl<O> Running<O> {
    /// The run `future` of a guest whose store [`yield_at_ticks`] set up.
    pub fn new(future: Pin<Box<dyn Future<Output = O> + Send>>, yielded: Arc<AtomicBool>) -> Self {
        Self {
            future,
            yielded,
            waiting: false,
            head_ready: None,
        }
    }

    /// Polls the run once.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<O> {
        self.yielded.store(false, Ordering::Relaxed);
        let polled = self.future.as_mut().poll(cx);
        self.waiting = polled.is_pending() && !self.yielded.load(Ordering::Relaxed);
        polled
    }

    /// Whether a head that is ready must go out now: the guest waits, or has
    /// computed on for [`HEAD_HOLD`] since its head was ready.
    pub fn head_due(&mut self) -> bool {
        if self.waiting {
            return true;
        }
        let since = *self.head_ready.get_or_insert_with(Instant::now);
        since.elapsed() >= HEAD_HOLD
    }
}

/// The limits on a stream after its head (SPEC §9).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Bytes of body in all.
    pub max_response: usize,
    /// Longest wait for the guest's next bytes.
    pub stream_idle: Duration,
    /// When the body must have ended, and what a stream still going then
    /// is counted as: `max_stream`, or the request's `timeout` when
    /// `max_stream` is zero.
    pub end_by: (Instant, Cause),
}

/// Why a stream was cut, as `wedge_stream_cuts_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The guest failed: a trap, the request's timeout, its memory cap, a
    /// non-zero exit.
    Failed(TrapKind),
    /// The body passed `max_response`.
    MaxResponse,
    /// No bytes for `stream_idle`.
    StreamIdle,
    /// Still going at `max_stream`.
    MaxStream,
    /// A component left its body unfinished.
    Unfinished,
}

impl Cause {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed(kind) => kind.as_str(),
            Self::MaxResponse => "max_response",
            Self::StreamIdle => "stream_idle",
            Self::MaxStream => "max_stream",
            Self::Unfinished => "unfinished",
        }
    }

    fn of(error: &RunError) -> Self {
        match error {
            RunError::Failed { kind, .. } => Self::Failed(*kind),
            RunError::TooLarge(_) => Self::MaxResponse,
            _ => Self::Unfinished,
        }
    }
}

/// How a stream ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// Whole: the guest ended its body.
    Ended,
    /// Cut by wedge, and why (with the details for the log).
    Cut(Cause, String),
    /// The client went away, or its connection was dropped, before the end.
    Dropped,
}

/// Called once when a stream ends, however it ends.
pub type OnEnd = Box<dyn FnOnce(StreamEnd, u64) + Send>;

/// One count held while a guard lives: an admitted request, an open stream.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes one of `max` from `count`, if one is free.
    pub fn try_take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        let previous = count.fetch_add(1, Ordering::AcqRel);
        if previous >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The body of a response whose guest is still writing it.
pub struct GuestStream {
    first: Option<Bytes>,
    source: Option<Box<dyn Source>>,
    limits: StreamLimits,
    sent: u64,
    /// Armed while the codec waits on the guest; a frame handed over stops it.
    idle: Pin<Box<Sleep>>,
    idle_armed: bool,
    end_by: Pin<Box<Sleep>>,
    on_end: Option<OnEnd>,
    /// Cut, with the abort still to hand to the codec.
    aborting: Option<Cause>,
    /// Counts held for the stream's life: its admission and its stream slot.
    _slots: Vec<Slot>,
}

impl GuestStream {
    /// A stream that sends `first`, then what `source` yields, under `limits`;
    /// `slots` are released, and `on_end` called, when it ends.
    pub fn new(
        first: Bytes,
        source: Box<dyn Source>,
        limits: StreamLimits,
        slots: Vec<Slot>,
        on_end: OnEnd,
    ) -> Self {
        Self {
            first: (!first.is_empty()).then_some(first),
            source: Some(source),
            idle: Box::pin(tokio::time::sleep(limits.stream_idle)),
            idle_armed: false,
            end_by: Box::pin(tokio::time::sleep_until(limits.end_by.0)),
            limits,
            sent: 0,
            on_end: Some(on_end),
            aborting: None,
            _slots: slots,
        }
    }

    fn end(&mut self, end: StreamEnd) {
        self.source = None;
        if let Some(on_end) = self.on_end.take() {
            on_end(end, self.sent);
        }
    }

    /// Ends the stream cut short. The abort itself goes out at the next poll:
    /// the codec first sends what it holds of the body, so the client gets
    /// all the guest wrote before the cut.
    fn cut(
        &mut self,
        cause: Cause,
        detail: String,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        self.end(StreamEnd::Cut(cause, detail));
        self.aborting = Some(cause);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn send(
        &mut self,
        bytes: Bytes,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let len = bytes.len() as u64;
        if self.sent + len > self.limits.max_response as u64 {
            let detail = format!(
                "the body passed the function's max_response of {} bytes",
                self.limits.max_response
            );
            return self.cut(Cause::MaxResponse, detail, cx);
        }
        self.sent += len;
        self.idle_armed = false;
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

impl hyper::body::Body for GuestStream {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        let this = &mut *self;
        if let Some(cause) = this.aborting.take() {
            return Poll::Ready(Some(Err(Cut {
                cause: cause.as_str(),
            })));
        }
        if let Some(first) = this.first.take() {
            return this.send(first, cx);
        }
        if this.source.is_none() {
            return Poll::Ready(None);
        }
        if this.end_by.as_mut().poll(cx).is_ready() {
            let (_, cause) = this.limits.end_by;
            let detail = match cause {
                Cause::MaxStream => "the stream went on past the function's max_stream".into(),
                _ => "the body did not end within the function's timeout".into(),
            };
            return this.cut(cause, detail, cx);
        }
        // The clock starts when the codec asks for more: time the client
        // took to take the last frame is not the guest's.
        if !this.idle_armed {
            this.idle_armed = true;
            let at = Instant::now() + this.limits.stream_idle;
            this.idle.as_mut().reset(at);
        }
        loop {
            let Some(source) = this.source.as_mut() else {
                return Poll::Ready(None);
            };
            return match source.poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) if bytes.is_empty() => continue,
                Poll::Ready(Some(Ok(bytes))) => this.send(bytes, cx),
                Poll::Ready(Some(Err(e))) => this.cut(Cause::of(&e), e.to_string(), cx),
                Poll::Ready(None) => {
                    this.end(StreamEnd::Ended);
                    Poll::Ready(None)
                }
                Poll::Pending => match this.idle.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let detail = format!(
                            "no bytes from the guest for the function's stream_idle of {:?}",
                            this.limits.stream_idle
                        );
                        this.cut(Cause::StreamIdle, detail, cx)
                    }
                    Poll::Pending => Poll::Pending,
                },
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.source.is_none() && self.aborting.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for GuestStream {
    fn drop(&mut self) {
        self.end(StreamEnd::Dropped);
    }
}
