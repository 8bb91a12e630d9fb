//! What one connection is doing, as counters its I/O and its requests bump and
//! its watchdog reads. The request path only touches relaxed atomics here; all
//! the clock reading happens in the watchdog.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::edge::Body as WedgeBody;
use crate::edge::body::Cut;

/// Counters shared by a connection's I/O, its requests and its watchdog.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Bytes handed to the HTTP codec.
    pub bytes_read: AtomicU64,
    /// Bytes the socket (or TLS) accepted.
    pub bytes_written: AtomicU64,
    /// The last write or flush could not go on: the client is not reading.
    pub write_blocked: AtomicBool,
    /// Requests started on this connection.
    pub requests: AtomicU64,
    /// Requests in the handler, or whose response is still being sent.
    pub active: AtomicU32,
    /// Responses handed to the codec and not yet fully sent.
    pub sending: AtomicU32,
    /// `bytes_read` when `active` last fell to zero: more read since then is the
    /// beginning of the next HTTP/1 request head.
    pub read_mark: AtomicU64,
    /// HTTP/2 only: the client is inside a HEADERS block (see `frames`).
    pub header_block: AtomicBool,
}

impl ConnState {
    /// A request began: counted until its response has been sent or dropped.
    pub fn begin_request(self: &Arc<Self>) -> ActiveGuard {
        self.requests.fetch_add(1, Relaxed);
        self.active.fetch_add(1, Relaxed);
        ActiveGuard(self.clone())
    }
}

/// Holds a request as active; released with the response body, or with the
/// request's future when the client goes away first.
#[derive(Debug)]
pub struct ActiveGuard(Arc<ConnState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Relaxed) == 1 {
            self.0
                .read_mark
                .store(self.0.bytes_read.load(Relaxed), Relaxed);
        }
    }
}

/// A response body that keeps its request counted as active until the codec
/// has taken all of it (or dropped it), and as sending while the codec holds
/// a frame of it: from when the body yields a frame until the codec asks for
/// the next. A stream waiting for its guest's next bytes is not sending, so
/// `write_timeout` judges the client and never the guest.
#[derive(Debug)]
pub struct TrackedBody {
    inner: WedgeBody,
    state: Arc<ConnState>,
    sending: bool,
    _active: ActiveGuard,
}

impl TrackedBody {
    /// Wraps the body of the response to the request `active` holds.
    pub fn new(inner: WedgeBody, active: ActiveGuard) -> Self {
        let state = active.0.clone();
        state.sending.fetch_add(1, Relaxed);
        Self {
            inner,
            state,
            sending: true,
            _active: active,
        }
    }

    fn set_sending(&mut self, sending: bool) {
        if self.sending != sending {
            self.sending = sending;
            match sending {
                true => self.state.sending.fetch_add(1, Relaxed),
                false => self.state.sending.fetch_sub(1, Relaxed),
            };
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.set_sending(false);
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.set_sending(!polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_active_until_its_body_is_gone() {
        let state = Arc::new(ConnState::default());
        let guard = state.begin_request();
        assert_eq!(state.active.load(Relaxed), 1);
        state.bytes_read.store(100, Relaxed);
        let body = TrackedBody::new(WedgeBody::full(Bytes::from_static(b"hi")), guard);
        assert_eq!(state.sending.load(Relaxed), 1);
        drop(body);
        assert_eq!(state.active.load(Relaxed), 0);
        assert_eq!(state.sending.load(Relaxed), 0);
        assert_eq!(state.read_mark.load(Relaxed), 100);
        assert_eq!(state.requests.load(Relaxed), 1);
    }
}
