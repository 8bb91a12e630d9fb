//! The baseline for wedge's load benchmark: a bare hyper HTTP/1.1 hello-world on
//! the same runtime and allocator as wedge, with no wasm at all. On
//! `/stream?mb=N` it streams the bytes `examples/http-download` streams,
//! generated the same way, 64 KiB at a time: the baseline of
//! `cargo xtask bench stream`.
//!
//! `hyper-hello 127.0.0.1:8181`

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Answer>, Infallible> {
    if req.uri().path() == "/stream" {
        let mb = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("mb="))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(16);
        return Ok(Response::new(Answer::Lines(Lines {
            left: mb << 20,
            line: 0,
        })));
    }
    let mut response = Response::new(Answer::Hello(Full::new(Bytes::from_static(
        b"Hello from hyper!\n",
    ))));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// A response body: the hello, or generated lines.
enum Answer {
    Hello(Full<Bytes>),
    Lines(Lines),
}

/// Numbered 64-byte lines, as `examples/http-download` writes them.
struct Lines {
    left: usize,
    line: u64,
}

/// Bytes in one line, and lines in one frame (64 KiB).
const LINE: usize = 64;
const LINES_PER_FRAME: usize = 1024;

impl hyper::body::Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Answer::Hello(full) => std::pin::Pin::new(full).poll_frame(cx),
            Answer::Lines(lines) => {
                if lines.left == 0 {
                    return std::task::Poll::Ready(None);
                }
                let mut frame = vec![0u8; LINE * LINES_PER_FRAME];
                for chunk in frame.chunks_mut(LINE) {
                    lines.line += 1;
                    fill_line(chunk, lines.line);
                }
                frame.truncate(lines.left.min(frame.len()));
                lines.left -= frame.len();
                std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(frame.into()))))
            }
        }
    }
}

/// One line: a 12-digit number, a space, letters, a newline.
fn fill_line(into: &mut [u8], number: u64) {
    let mut n = number;
    for digit in into[..12].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    into[12] = b' ';
    for (i, b) in into[13..LINE - 1].iter_mut().enumerate() {
        *b = b'a' + ((number as usize + i) % 26) as u8;
    }
    into[LINE - 1] = b'\n';
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8181".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("hyper-hello listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
