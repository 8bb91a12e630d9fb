//! Real HTTP against a node: HTTP/1.1 and h2c through hyper's client, and raw
//! bytes over TCP for what a well-behaved client would never send.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
    /// HTTP version the response came over.
    pub version: http::Version,
}

impl Reply {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client(h2: bool) -> HttpClient {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .http2_only(h2)
        .pool_max_idle_per_host(if h2 { 1 } else { 0 });
    builder.build_http()
}

impl crate::Node {
    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    /// `GET path` over h2c with prior knowledge.
    pub async fn get_h2c(&self, path: &str) -> Reply {
        let req = Request::get(self.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        read(client(true).request(req).await.expect("h2c request failed")).await
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.send(Method::POST, path, &[], body.into()).await
    }

    /// Any request over HTTP/1.1 on a fresh connection.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).unwrap();
        read(client(false).request(req).await.expect("request failed")).await
    }
}

impl crate::Node {
    /// A request to the admin API, with the node's token unless `token` says otherwise.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.admin_addr()));
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Full::new(body)).unwrap();
        read(
            client(false)
                .request(req)
                .await
                .expect("admin request failed"),
        )
        .await
    }
}

impl crate::Node {
    /// The value of one series in the admin API's `/metrics`, such as
    /// `wedge_connections_closed_total{reason="idle"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let token = self.token.clone();
        let text = self
            .admin(Method::GET, "/metrics", token.as_deref(), Bytes::new())
            .await
            .text();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    }
}

/// Writes `bytes` on a fresh TCP connection and returns everything the server
/// sends back before closing or going quiet for `idle`.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8], idle: Duration) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(idle, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `method path` with an empty body on a fresh connection with `Connection:
/// close`: the status and the body, or status 0 when no response came within 30
/// seconds. Needs no `Node`, so it can run in spawned tasks.
pub async fn raw_call(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let reply = raw_request(addr, req.as_bytes(), Duration::from_secs(30)).await;
    let status = reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The status of `GET path`, as [`raw_call`] gets it.
pub async fn get_status(addr: SocketAddr, path: &str) -> u16 {
    raw_call(addr, "GET", path).await.0
}

/// `method path` with `headers` and an empty body on a fresh connection, as
/// a client that expects failures sends it: `None` when the connection is
/// refused or reset, or no complete response came within `patience`.
pub async fn try_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    patience: Duration,
) -> Option<(u16, String)> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    let reply = tokio::time::timeout(patience, exchange).await.ok()??;
    let status = reply.get(9..12)?.parse().ok()?;
    let (_, body) = reply.split_once("\r\n\r\n")?;
    Some((status, body.to_string()))
}
