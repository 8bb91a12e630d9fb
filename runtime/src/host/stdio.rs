//! A guest's standard streams: stdout held for the CGI response under the
//! function's `max_response` cap and handed on as it streams, and stderr
//! turned into one log event per line.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::{Bytes, BytesMut};

/// The trap raised when a guest writes more than its function's `max_response`.
#[derive(Debug, thiserror::Error)]
#[error("response exceeds the function's max_response of {cap} bytes")]
pub struct ResponseTooLarge {
    /// The function's cap in bytes.
    pub cap: usize,
}

/// Bytes of stdout held for the client before the guest's next write waits:
/// a streaming guest's writes pause here while the client is not reading.
pub const STDOUT_HIGH_WATER: usize = 64 << 10;

/// What a WAGI guest writes to stdout, shared between the guest's `fd_write`
/// and the response that carries it to the client. Writing past the
/// function's `max_response` traps the guest at once, so a runaway writer
/// stops costing CPU and memory.
#[derive(Clone)]
pub struct Stdout(Arc<Mutex<Outflow>>);

struct Outflow {
    /// Written and not yet taken for the client.
    buf: BytesMut,
    /// Everything written so far, taken or not.
    written: usize,
    cap: usize,
    overflowed: bool,
    /// The guest waiting for `buf` to drain.
    waiting: Option<Waker>,
}

impl Stdout {
    /// Stdout that accepts at most `cap` bytes in all.
    pub fn new(cap: usize) -> Self {
        Self(Arc::new(Mutex::new(Outflow {
            buf: BytesMut::new(),
            written: 0,
            cap,
            overflowed: false,
            waiting: None,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outflow> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cap, in bytes.
    pub fn cap(&self) -> usize {
        self.lock().cap
    }

    /// Whether the guest tried to write past the cap.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Appends one write, or refuses all of it when it would go past the cap.
    pub fn append(&self, bytes: &[u8]) -> Result<(), ResponseTooLarge> {
        let mut out = self.lock();
        if out.written + bytes.len() > out.cap {
            out.overflowed = true;
            return Err(ResponseTooLarge { cap: out.cap });
        }
        out.written += bytes.len();
        out.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Resolves once what is held for the client is under
    /// [`STDOUT_HIGH_WATER`]: the guest's write waits here for the client.
    pub fn drained(&self) -> impl Future<Output = ()> + Send + 'static {
        let stdout = self.clone();
        std::future::poll_fn(move |cx| {
            let mut out = stdout.lock();
            if out.buf.len() < STDOUT_HIGH_WATER {
                Poll::Ready(())
            } else {
                out.waiting = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }

    /// Bytes held and not yet taken.
    pub fn held(&self) -> usize {
        self.lock().buf.len()
    }

    /// Runs `f` over the bytes held, without taking them.
    pub fn peek<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        f(&self.lock().buf)
    }

    /// Takes the first `n` bytes held.
    pub fn take(&self, n: usize) -> Bytes {
        let mut out = self.lock();
        let n = n.min(out.buf.len());
        let taken = out.buf.split_to(n).freeze();
        if let Some(waker) = out.waiting.take() {
            waker.wake();
        }
        taken
    }

    /// Takes everything held.
    pub fn take_all(&self) -> Bytes {
        self.take(usize::MAX)
    }
}

/// Longest stderr line logged as one event; longer lines are split.
const MAX_LINE: usize = 4096;
/// Stderr bytes logged per request; the rest is dropped so a chatty guest cannot flood the log.
const MAX_STDERR: usize = 64 << 10;

/// Splits a guest's stderr into lines and logs each one, tagged with the
/// function, version and request that wrote it. A last line without a newline
/// is logged when the logger drops.
pub struct GuestLog {
    function: Arc<str>,
    version: Arc<str>,
    request_id: Arc<str>,
    line: Vec<u8>,
    logged: usize,
    truncated: bool,
}

impl GuestLog {
    /// The stderr logger of one request.
    pub fn new(function: Arc<str>, version: Arc<str>, request_id: Arc<str>) -> Self {
        Self {
            function,
            version,
            request_id,
            line: Vec::new(),
            logged: 0,
            truncated: false,
        }
    }

    /// Takes one write to stderr.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.logged + self.line.len() >= MAX_STDERR {
                if !self.truncated {
                    self.truncated = true;
                    self.emit_line_text("[wedge: further stderr output from this request dropped]");
                }
                return;
            }
            match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&bytes[..i]);
                    bytes = &bytes[i + 1..];
                    self.emit();
                }
                None => {
                    self.line.extend_from_slice(bytes);
                    bytes = &[];
                }
            }
            if self.line.len() >= MAX_LINE {
                self.emit();
            }
        }
    }

    fn emit(&mut self) {
        let line = std::mem::take(&mut self.line);
        self.logged += line.len() + 1;
        let text = String::from_utf8_lossy(&line);
        self.emit_line_text(text.trim_end_matches('\r'));
        self.line = line;
        self.line.clear();
    }

    fn emit_line_text(&self, text: &str) {
        tracing::info!(
            target: "wedge::guest",
            function = %self.function,
            version = %self.version,
            request_id = %self.request_id,
            "{text}"
        );
    }
}

impl Drop for GuestLog {
    fn drop(&mut self) {
        if !self.line.is_empty() && !self.truncated {
            self.emit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_enforces_its_cap_over_what_was_taken_too() {
        let out = Stdout::new(8);
        assert!(out.append(b"12345").is_ok());
        assert_eq!(&out.take(2)[..], b"12");
        assert!(out.append(b"678").is_ok());
        assert!(out.append(b"9").is_err());
        assert!(out.overflowed());
        assert_eq!(&out.take_all()[..], b"345678");
    }
}
