//! An origin for outbound-HTTP tests: a hyper server on a loopback address,
//! plain or TLS with a certificate from a test CA, that counts the
//! connections it accepts.
//!
//! Routes:
//! - `/hello`: 200 `hello from <address>`;
//! - `/echo`: 200, the method, the `x-from` header and the body;
//! - `/big?n=<bytes>`: 200 with that many bytes, chunked (no length);
//! - `/sized?n=<bytes>`: the same with `Content-Length`;
//! - `/redirect`: 302 to `/hello`;
//! - `/stall`: never answers;
//! - `/drip?n=<chunks>&ms=<gap>`: 200 with that many 1 KiB chunks, one
//!   every `ms` milliseconds.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A certificate authority that signs the TLS origins' certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM: what `[outbound] ca_file` points at.
    pub pem: String,
}

impl TestCa {
    /// A fresh CA.
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    fn acceptor(&self, names: &[&str]) -> TlsAcceptor {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der_key)
        .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A running origin; stops, connections and all, when dropped.
pub struct Origin {
    addr: SocketAddr,
    accepts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// A plain HTTP origin on `ip` (a loopback address) and a free port.
    pub async fn start(ip: IpAddr) -> Self {
        Self::serve(SocketAddr::new(ip, 0), None).await
    }

    /// A plain HTTP origin on `addr`, a port chosen by the test.
    pub async fn start_at(addr: SocketAddr) -> Self {
        Self::serve(addr, None).await
    }

    /// A TLS origin on `ip` whose certificate, signed by `ca`, names `names`.
    pub async fn start_tls(ip: IpAddr, ca: &TestCa, names: &[&str]) -> Self {
        Self::serve(SocketAddr::new(ip, 0), Some(ca.acceptor(names))).await
    }

    async fn serve(addr: SocketAddr, tls: Option<TlsAcceptor>) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicU64::new(0));
        let counted = accepts.clone();
        let task = tokio::spawn(async move {
            // Dropped with this task: stopping the origin closes its connections too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                while connections.try_join_next().is_some() {}
                counted.fetch_add(1, Ordering::SeqCst);
                let tls = tls.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| route(req, addr));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match tls {
                        None => builder.serve_connection(TokioIo::new(tcp), service).await,
                        Some(tls) => match tls.accept(tcp).await {
                            Ok(stream) => {
                                builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Self {
            addr,
            accepts,
            task,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> u64 {
        self.accepts.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

fn count(req: &Request<Incoming>) -> usize {
    param(req, "n").unwrap_or(0)
}

/// The query parameter `name`, as a number.
fn param(req: &Request<Incoming>, name: &str) -> Option<usize> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}

async fn route(req: Request<Incoming>, addr: SocketAddr) -> Result<Response<Body>, Infallible> {
    Ok(match req.uri().path() {
        "/hello" => full(StatusCode::OK, format!("hello from {}", addr.ip())),
        "/echo" => {
            let method = req.method().to_string();
            let from = req
                .headers()
                .get("x-from")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            let body = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
            full(StatusCode::OK, format!("{method} {from} {body}"))
        }
        "/big" => {
            let n = count(&req);
            let chunks = (0..n.div_ceil(16 << 10)).map(move |i| {
                let len = (16 << 10).min(n - i * (16 << 10));
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; len])))
            });
            Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        }
        "/sized" => full(StatusCode::OK, vec![b'x'; count(&req)]),
        "/redirect" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "/hello")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        "/drip" => {
            let n = count(&req);
            let gap = Duration::from_millis(param(&req, "ms").unwrap_or(0) as u64);
            let chunks = futures_util::stream::unfold(0, move |i| async move {
                if i == n {
                    return None;
                }
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 1024]))),
                    i + 1,
                ))
            });
            Response::new(StreamBody::new(chunks).boxed())
        }
        "/stall" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            full(StatusCode::OK, "late")
        }
        _ => full(StatusCode::NOT_FOUND, "no such route"),
    })
}
