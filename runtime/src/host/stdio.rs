//! A guest's standard streams: stdout collected for the CGI response under the
//! function's `max_response` cap, and stderr turned into one log event per line.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// The trap raised when a guest writes more than its function's `max_response`.
#[derive(Debug, thiserror::Error)]
#[error("response exceeds the function's max_response of {cap} bytes")]
pub struct ResponseTooLarge {
    /// The function's cap in bytes.
    pub cap: usize,
}

/// Collects what the guest writes to stdout. Writing past the cap traps the
/// guest at once, so a runaway writer stops costing CPU and memory.
pub struct ResponseBuffer {
    buf: BytesMut,
    cap: usize,
    overflowed: bool,
}

impl ResponseBuffer {
    /// A buffer that accepts at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            cap,
            overflowed: false,
        }
    }

    /// Whether the guest tried to write past the cap.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The collected bytes.
    pub fn into_bytes(self) -> Bytes {
        self.buf.freeze()
    }

    /// Appends one write, or refuses all of it when it would go past the cap.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), ResponseTooLarge> {
        if self.buf.len() + bytes.len() > self.cap {
            self.overflowed = true;
            return Err(ResponseTooLarge { cap: self.cap });
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
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
    fn response_buffer_enforces_its_cap() {
        let mut buf = ResponseBuffer::new(8);
        assert!(buf.append(b"12345").is_ok());
        assert!(buf.append(b"678").is_ok());
        assert!(buf.append(b"9").is_err());
        assert!(buf.overflowed());
        assert_eq!(&buf.into_bytes()[..], b"12345678");
    }
}
