//! The response body type of every wedge response: whole (the fast path, the
//! host's own answers and the admin API's), or a stream a guest is still
//! writing, which may end cut short.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// A stream's body, as the request path builds it.
pub type StreamBody = Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = Cut> + Send>>;

/// The response body type of every wedge response.
pub struct Body {
    kind: Kind,
}

enum Kind {
    /// All of it, sent with a `Content-Length` in one write.
    Full(Option<Bytes>),
    /// Frames as they come.
    Stream(StreamBody),
}

/// A stream that ended short of its end: the codec aborts the response
/// (HTTP/1.1 closes the connection without the last chunk, HTTP/2 resets the
/// stream) so the client never takes it for a whole one.
#[derive(Debug, thiserror::Error)]
#[error("stream cut: {cause}")]
pub struct Cut {
    /// Why, as `wedge_stream_cuts_total` names it.
    pub cause: &'static str,
}

impl Body {
    /// A body of exactly `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// A body sent as `stream` yields it.
    pub fn stream(stream: StreamBody) -> Self {
        Self {
            kind: Kind::Stream(stream),
        }
    }

    /// Whether the body is a stream.
    pub fn is_stream(&self) -> bool {
        matches!(self.kind, Kind::Stream(_))
    }
}

impl Default for Body {
    fn default() -> Self {
        Self::full(Bytes::new())
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Full(b) => write!(f, "Body::Full({} bytes)", b.as_ref().map_or(0, Bytes::len)),
            Kind::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Cut;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Cut>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(stream) => stream.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(stream) => stream.size_hint(),
        }
    }
}
