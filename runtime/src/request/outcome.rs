//! What a guest's run comes to, in either handler format: the response it
//! gave, where the time went, or why it gave none.

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use wasmtime::PoolConcurrencyLimitError;

use crate::host::limits::MemoryCapExceeded;
use crate::host::stdio::ResponseTooLarge;
use crate::request::upload::UploadCut;
use crate::telemetry::TrapKind;

/// Largest header block a guest may write.
pub const MAX_HEADER_BLOCK: usize = 64 << 10;

/// A response parsed from a guest's stdout.
pub struct GuestResponse {
    /// The status the guest chose (200, or 302 with a bare `Location`).
    pub status: StatusCode,
    /// Headers to send, in the order the guest wrote them.
    pub headers: HeaderMap,
    /// The body, or its first bytes when it streams: what the guest had
    /// written when its head went out.
    pub body: Bytes,
    /// The rest of the body, for a response that streams.
    pub stream: Option<Box<dyn Source>>,
}

/// The rest of a streaming response's body, from a guest that is still
/// running. Dropping it drops the guest's instance.
pub trait Source: Send {
    /// The guest's next bytes; `None` at a clean end; an error when the run
    /// failed, or broke the body off, before the end.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, RunError>>>;
}

/// Why a guest's output is not a response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MalformedResponse {
    /// Nothing was written to stdout.
    #[error("the guest wrote no response")]
    Empty,
    /// No blank line separates the headers from the body.
    #[error("the header block is not ended by a blank line")]
    Unterminated,
    /// The header block is larger than the host accepts.
    #[error("the header block is larger than {MAX_HEADER_BLOCK} bytes")]
    HeadersTooLarge,
    /// A header line is not `Name: value`.
    #[error("header line {0} is not `Name: value`")]
    BadLine(usize),
    /// The `Status` header is not a valid final status.
    #[error("`Status: {0}` is not a valid status")]
    BadStatus(String),
    /// Without `Status` or `Location` a response must say what it is.
    #[error("the response has no Content-Type, Status or Location header")]
    NoContentType,
}

/// Why a run produced no response to send.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The guest trapped, ran out of time or memory, or exited non-zero.
    #[error("guest {}: {message}", kind.as_str())]
    Failed {
        /// What kind of failure.
        kind: TrapKind,
        /// Details for the log.
        message: String,
    },
    /// The guest's output is not a CGI response.
    #[error("malformed guest response: {0}")]
    Malformed(#[from] MalformedResponse),
    /// The guest wrote more than `max_response`.
    #[error(transparent)]
    TooLarge(#[from] ResponseTooLarge),
    /// A component sent no complete response: it set none, or its body
    /// broke off.
    #[error("no response: {0}")]
    NoResponse(String),
    /// No instance slot was free.
    #[error("no instance slot free: {0}")]
    Capacity(String),
    /// The request body streaming to the guest was cut off.
    #[error(transparent)]
    Upload(#[from] UploadCut),
}

impl RunError {
    /// No response head within the function's `timeout`.
    pub fn timed_out(timeout: Duration) -> Self {
        Self::Failed {
            kind: TrapKind::Timeout,
            message: format!("no response within {timeout:?}"),
        }
    }
}

/// Where the time of a run went.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    /// Creating the instance.
    pub instantiate: Duration,
    /// Running `_start`, outbound calls included.
    pub guest: Duration,
    /// Waiting on outbound calls.
    pub outbound: Duration,
}

/// What a guest's error (a trap, the memory cap, no instance slot) comes to,
/// in either handler format.
pub fn failure(error: &wasmtime::Error, memory_exceeded: bool) -> RunError {
    if memory_exceeded || error.is::<MemoryCapExceeded>() {
        RunError::Failed {
            kind: TrapKind::Memory,
            message: one_line(error),
        }
    } else if error.is::<PoolConcurrencyLimitError>() {
        RunError::Capacity(one_line(error))
    } else {
        RunError::Failed {
            kind: TrapKind::Trap,
            message: one_line(error),
        }
    }
}

/// The cause of a trap on one line, without the wasm backtrace wasmtime attaches.
fn one_line(error: &wasmtime::Error) -> String {
    error.root_cause().to_string().replace('\n', " ")
}
