//! A response whose body the handler writes as it goes: server-sent events,
//! large downloads, anything that should reach the client before the
//! handler is done.

use std::io::{self, Write};

use crate::response::Response;
use crate::wasi;

/// The body of a streamed response, written straight to stdout.
///
/// Nothing is buffered here: each `write` goes to wedge at once. wedge sends
/// the head and what was written as soon as the handler waits on anything
/// (a sleep, a store call on etcd, an outbound request, a client that is
/// behind), has computed on for 10 ms, or has written 64 KiB; after that,
/// every write reaches the client as the handler makes it. While the client
/// is not reading, a write waits. `flush` does nothing more than a write
/// did, and is there for code that calls it.
#[derive(Debug)]
pub struct BodyWriter {
    _private: (),
}

impl Response {
    /// Writes this response's head and whatever body it has now, and hands
    /// back the writer for the rest of the body.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// wedge_sdk::serve_stream(|_req| {
    ///     let mut body = wedge_sdk::Response::new(200)
    ///         .with_header("Content-Type", "text/event-stream")
    ///         .stream()?;
    ///     for i in 0..3 {
    ///         write!(body, "data: {i}\n\n")?;
    ///         std::thread::sleep(std::time::Duration::from_secs(1));
    ///     }
    ///     Ok(())
    /// });
    /// ```
    pub fn stream(self) -> io::Result<BodyWriter> {
        wasi::write_stdout(self.head().as_bytes(), self.body())?;
        Ok(BodyWriter { _private: () })
    }
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        wasi::write_stdout(&[], buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
