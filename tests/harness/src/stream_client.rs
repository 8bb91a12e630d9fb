//! Reading a streamed response as it arrives, over HTTP/1.1 or h2c: each
//! frame with the wall-clock time it came, and whether the body ended whole
//! or was aborted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A streamed response, read to its end or its abort.
#[derive(Debug)]
pub struct Streamed {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// HTTP version the response came over.
    pub version: http::Version,
    /// Each data frame and when it arrived.
    pub frames: Vec<(SystemTime, Bytes)>,
    /// `Ok` when the body ended whole; the client's error when it was cut.
    pub end: Result<(), String>,
}

/// One server-sent event of a test guest (`data: <i> <unix ms> [<version>]`):
/// its number, when the guest wrote it, when it arrived, and the version
/// that wrote it when it says.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event's number.
    pub number: u64,
    /// When the guest wrote it, by its wall clock.
    pub written: SystemTime,
    /// When the client had all of it.
    pub arrived: SystemTime,
    /// The version that wrote it, when it says.
    pub version: String,
}

impl Event {
    /// How long it took from the guest's write to the client.
    pub fn latency(&self) -> Duration {
        self.arrived
            .duration_since(self.written)
            .unwrap_or(Duration::ZERO)
    }
}

impl Streamed {
    /// The whole body received.
    pub fn body(&self) -> Bytes {
        let mut all = BytesMut::new();
        for (_, b) in &self.frames {
            all.extend_from_slice(b);
        }
        all.freeze()
    }

    /// Whether the client saw the body cut short.
    pub fn aborted(&self) -> bool {
        self.end.is_err()
    }

    /// The `data: <i> <unix ms>` events received whole, with their times.
    pub fn events(&self) -> Vec<Event> {
        let mut events = Vec::new();
        let mut text = String::new();
        for (arrived, frame) in &self.frames {
            text.push_str(&String::from_utf8_lossy(frame));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let mut words = event.trim().trim_start_matches("data: ").split(' ');
                let (Some(Ok(number)), Some(Ok(ms))) = (
                    words.next().map(str::parse::<u64>),
                    words.next().map(str::parse::<u64>),
                ) else {
                    continue;
                };
                events.push(Event {
                    number,
                    written: UNIX_EPOCH + Duration::from_millis(ms),
                    arrived: *arrived,
                    version: words.next().unwrap_or_default().to_string(),
                });
            }
        }
        events
    }
}

/// Starts `GET url` over HTTP/1.1 or, with `h2`, h2c: the response with its
/// body unread.
pub async fn open_stream(url: &str, h2: bool) -> http::Response<Incoming> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build_http::<Empty<Bytes>>();
    let req = Request::get(url).body(Empty::new()).unwrap();
    client.request(req).await.expect("request failed")
}

/// Reads `response`'s body to its end or its abort, timing each frame.
pub async fn read_stream(response: http::Response<Incoming>) -> Streamed {
    let status = response.status();
    let headers = response.headers().clone();
    let version = response.version();
    let mut body = response.into_body();
    let mut frames = Vec::new();
    let end = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Err(e)) => break Err(format!("{e:?}")),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    frames.push((SystemTime::now(), data));
                }
            }
        }
    };
    Streamed {
        status,
        headers,
        version,
        frames,
        end,
    }
}

/// Reads `GET path` from `addr` over HTTP/1.1 on a raw connection, chunk by
/// chunk as the bytes arrive: a body cut short shows as the connection
/// closing before the last chunk (or before `Content-Length` bytes), which
/// is exactly what an HTTP/1.1 client sees of an abort.
pub async fn read_h1_stream(addr: std::net::SocketAddr, path: &str) -> Streamed {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: wedge.test\r\n\r\n").as_bytes())
        .await
        .expect("send the request");
    let mut buf = BytesMut::new();
    let mut eof = false;
    // Reads more into `buf`; false once the connection has closed.
    async fn more(s: &mut tokio::net::TcpStream, buf: &mut BytesMut, eof: &mut bool) -> bool {
        if *eof {
            return false;
        }
        match s.read_buf(buf).await {
            Ok(0) | Err(_) => {
                *eof = true;
                false
            }
            Ok(_) => true,
        }
    }
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(
            more(&mut s, &mut buf, &mut eof).await,
            "closed before the head"
        );
    };
    let head = String::from_utf8_lossy(&buf.split_to(head_end)).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .expect("a status line");
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.trim().as_bytes()),
                http::HeaderValue::from_str(value.trim()),
            )
        {
            headers.append(name, value);
        }
    }
    let mut frames = Vec::new();
    let length = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let end = match length {
        Some(mut left) => loop {
            if !buf.is_empty() {
                let n = left.min(buf.len());
                frames.push((SystemTime::now(), buf.split_to(n).freeze()));
                left -= n;
            }
            if left == 0 {
                break Ok(());
            }
            if !more(&mut s, &mut buf, &mut eof).await {
                break Err(format!(
                    "closed with {left} bytes of Content-Length missing"
                ));
            }
        },
        None => loop {
            let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                if !more(&mut s, &mut buf, &mut eof).await {
                    break Err(format!(
                        "closed before the last chunk, with {:?} unread",
                        String::from_utf8_lossy(&buf)
                    ));
                }
                continue;
            };
            let size = std::str::from_utf8(&buf[..line_end])
                .ok()
                .and_then(|l| {
                    usize::from_str_radix(l.split(';').next().unwrap_or("").trim(), 16).ok()
                })
                .expect("a chunk size line");
            if buf.len() < line_end + 2 + size + 2 {
                if !more(&mut s, &mut buf, &mut eof).await {
                    break Err("closed in the middle of a chunk".to_string());
                }
                continue;
            }
            let _ = buf.split_to(line_end + 2);
            let chunk = buf.split_to(size).freeze();
            let _ = buf.split_to(2);
            if size == 0 {
                break Ok(());
            }
            frames.push((SystemTime::now(), chunk));
        },
    };
    Streamed {
        status,
        headers,
        version: http::Version::HTTP_11,
        frames,
        end,
    }
}

impl crate::Node {
    /// `GET path`, read as it streams: over HTTP/1.1 on a raw connection, or,
    /// with `h2`, over h2c through hyper's client.
    pub async fn stream(&self, path: &str, h2: bool) -> Streamed {
        match h2 {
            false => read_h1_stream(self.addr(), path).await,
            true => read_stream(open_stream(&self.url(path), true).await).await,
        }
    }
}
