//! Statuses the host answers with itself. Every error at the HTTP edge becomes a
//! short response carrying the request id; the details go to the log only.

use http::{HeaderValue, Response, StatusCode, header};

pub use crate::edge::Body;

use crate::edge::validate::BadRequest;
use crate::request::outcome::RunError;
use crate::request::upload::UploadCut;

/// Why the host, not the guest, answers a request.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No route matches the path.
    #[error("no function serves this path")]
    NoRoute,
    /// The body is larger than `max_request_body`.
    #[error("request body too large")]
    BodyTooLarge,
    /// Request line and headers exceed `max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// `max_inflight` requests are already being served.
    #[error("server overloaded, retry shortly")]
    Overloaded,
    /// The function has no version that compiled.
    #[error("function has no loadable version")]
    NoVersion,
    /// The function's first code is still compiling: it serves shortly.
    #[error("function starting, its code still compiling")]
    Starting,
    /// The client did not send its body in time.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The body could not be read.
    #[error("could not read request body")]
    BadBody,
    /// The request carries what the host will not pass to a guest.
    #[error("bad request: {0}")]
    BadRequest(#[from] BadRequest),
    /// The client's address is over `[server.per_ip] rate`; it may try again
    /// after this many seconds.
    #[error("rate limit exceeded")]
    RateLimited(u32),
    /// The guest ran but gave no usable response.
    #[error(transparent)]
    Guest(#[from] RunError),
}

impl HostError {
    /// The status the client sees.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The one table of what the client sees: the status, and a few words that
    /// never carry guest or host internals.
    fn parts(&self) -> (StatusCode, &'static str) {
        use crate::telemetry::TrapKind;
        match self {
            Self::NoRoute => (StatusCode::NOT_FOUND, "not found"),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Self::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request headers too large",
            ),
            Self::Overloaded | Self::Guest(RunError::Capacity(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "overloaded, retry shortly")
            }
            Self::NoVersion => (StatusCode::SERVICE_UNAVAILABLE, "function unavailable"),
            Self::Starting => (
                StatusCode::SERVICE_UNAVAILABLE,
                "function starting, retry shortly",
            ),
            Self::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request body timeout"),
            Self::BadBody => (StatusCode::BAD_REQUEST, "bad request body"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad request"),
            Self::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests, retry shortly",
            ),
            Self::Guest(RunError::Failed {
                kind: TrapKind::Timeout,
                ..
            }) => (StatusCode::GATEWAY_TIMEOUT, "function timed out"),
            Self::Guest(RunError::Failed { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "function failed")
            }
            Self::Guest(RunError::NoResponse(_)) => {
                (StatusCode::BAD_GATEWAY, "function sent no response")
            }
            Self::Guest(RunError::Malformed(_)) => (
                StatusCode::BAD_GATEWAY,
                "function sent a malformed response",
            ),
            Self::Guest(RunError::TooLarge(_)) => {
                (StatusCode::BAD_GATEWAY, "function response too large")
            }
            Self::Guest(RunError::Upload(UploadCut::TooLarge)) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            }
            Self::Guest(RunError::Upload(UploadCut::TooSlow)) => {
                (StatusCode::REQUEST_TIMEOUT, "request body too slow")
            }
        }
    }

    /// A short plain-text response naming the request id.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let (status, words) = self.parts();
        let text = format!("{words} (request id {request_id})\n");
        let mut response = Response::new(Body::full(text));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE && !matches!(self, Self::NoVersion) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::RateLimited(seconds) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if matches!(
            self,
            Self::BodyTooLarge
                | Self::HeadersTooLarge
                | Self::BodyTimeout
                | Self::Guest(RunError::Upload(_))
        ) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
