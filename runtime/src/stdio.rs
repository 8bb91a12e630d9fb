//! A guest's standard streams: stdout collected for the CGI response under the
//! function's `max_response` cap, and stderr turned into one log event per line.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// Most a single guest write may carry; the cap is enforced on the total.
const WRITE_PERMIT: usize = 64 << 10;

/// The trap raised when a guest writes more than its function's `max_response`.
#[derive(Debug, thiserror::Error)]
#[error("response exceeds the function's max_response of {cap} bytes")]
pub struct ResponseTooLarge {
    /// The function's cap in bytes.
    pub cap: usize,
}

/// Collects what the guest writes to stdout. Writing past the cap traps the
/// guest at once, so a runaway writer stops costing CPU and memory.
#[derive(Clone)]
pub struct ResponseBuffer {
    collected: Arc<Mutex<Collected>>,
    cap: usize,
}

#[derive(Default)]
struct Collected {
    buf: BytesMut,
    overflowed: bool,
}

impl ResponseBuffer {
    /// A buffer that accepts at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            collected: Arc::default(),
            cap,
        }
    }

    /// Whether the guest tried to write past the cap.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Takes the collected bytes; without a copy once the guest's store is gone.
    pub fn into_bytes(self) -> Bytes {
        match Arc::try_unwrap(self.collected) {
            Ok(m) => m
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .buf
                .freeze(),
            Err(shared) => {
                let guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                Bytes::copy_from_slice(&guard.buf)
            }
        }
    }

    fn append(&self, bytes: &[u8]) -> Result<(), ResponseTooLarge> {
        let mut collected = self.lock();
        if collected.buf.len() + bytes.len() > self.cap {
            collected.overflowed = true;
            return Err(ResponseTooLarge { cap: self.cap });
        }
        collected.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IsTerminal for ResponseBuffer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ResponseBuffer {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for ResponseBuffer {
    async fn ready(&mut self) {}
}

impl OutputStream for ResponseBuffer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for ResponseBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(
            self.append(buf)
                .map(|()| buf.len())
                .map_err(|e| io::Error::new(io::ErrorKind::FileTooLarge, e)),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Longest stderr line logged as one event; longer lines are split.
const MAX_LINE: usize = 4096;
/// Stderr bytes logged per request; the rest is dropped so a chatty guest cannot flood the log.
const MAX_STDERR: usize = 64 << 10;

/// Who wrote a stderr line, attached to every event it becomes.
#[derive(Clone)]
pub struct GuestLog {
    function: Arc<str>,
    version: Arc<str>,
    request_id: Arc<str>,
}

impl GuestLog {
    /// Tags for the stderr of one request.
    pub fn new(function: Arc<str>, version: Arc<str>, request_id: Arc<str>) -> Self {
        Self {
            function,
            version,
            request_id,
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineLogger::new(self.clone()))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger::new(self.clone()))
    }
}

/// Splits stderr into lines and logs each one, tagged with its request.
struct LineLogger {
    tags: GuestLog,
    line: Vec<u8>,
    logged: usize,
    truncated: bool,
}

impl LineLogger {
    fn new(tags: GuestLog) -> Self {
        Self {
            tags,
            line: Vec::new(),
            logged: 0,
            truncated: false,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
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
            function = %self.tags.function,
            version = %self.tags.version,
            request_id = %self.tags.request_id,
            "{text}"
        );
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.line.is_empty() && !self.truncated {
            self.emit();
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineLogger {
    async fn ready(&mut self) {}
}

impl OutputStream for LineLogger {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_buffer_enforces_its_cap() {
        let buf = ResponseBuffer::new(8);
        assert!(buf.append(b"12345").is_ok());
        assert!(buf.append(b"678").is_ok());
        assert!(buf.append(b"9").is_err());
        assert!(buf.overflowed());
        assert_eq!(&buf.into_bytes()[..], b"12345678");
    }
}
