//! TLS on the public listener: HTTP/1.1 and HTTP/2 chosen by ALPN, and
//! certificate files replaced while the node serves.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::TlsConnector;
use wedge_test_harness::{Node, NodeBuilder, examples, guests};

use crate::node;

/// A certificate authority that signs leaf certificates for `localhost`.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
}

impl Authority {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let root = params.self_signed(&key).unwrap().der().clone();
        Self {
            issuer: Issuer::new(params, key),
            root,
        }
    }

    /// A fresh leaf: its PEM chain, its PEM key, and its DER.
    fn leaf(&self) -> (String, String, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Every connection a full handshake, so each one shows the certificate.
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector::from(Arc::new(config))
    }
}

/// The `[server.tls]` table naming `cert.pem` and `key.pem` in the node's directory.
const TLS: &str = "[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"";

/// Starts the node `b` on TLS with `pair` as its certificate.
fn start_tls(b: NodeBuilder, pair: &(String, String, CertificateDer<'static>)) -> Node {
    let b = b.table(TLS);
    write_pair(b.dir(), pair);
    b.start()
}

fn write_pair(dir: &Path, (cert, key, _): &(String, String, CertificateDer<'static>)) {
    std::fs::write(dir.join("key.pem"), key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
}

/// A TLS connection to `addr`, offering only `alpn`: the certificate the
/// server showed, and a request sender for the protocol it chose.
async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    alpn: &[u8],
) -> (CertificateDer<'static>, Sender) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut config = (*connector.config().clone()).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake succeeds");
    let (_, session) = tls.get_ref();
    let cert = session.peer_certificates().unwrap()[0].clone();
    let h2 = session.alpn_protocol() == Some(b"h2");
    assert_eq!(h2, alpn == b"h2", "ALPN chose what was offered");
    let io = TokioIo::new(tls);
    let sender = if h2 {
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        Sender::H2(sender)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Sender::H1(sender)
    };
    (cert, sender)
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    /// `GET /hello`: the status and the HTTP version it came over.
    async fn hello(&mut self) -> Result<(u16, http::Version), hyper::Error> {
        let (status, version, _) = self.get("/hello").await?;
        Ok((status, version))
    }

    /// `GET path`: the status, the HTTP version and the body.
    async fn get(&mut self, path: &str) -> Result<(u16, http::Version, String), hyper::Error> {
        let request = http::Request::get(format!("https://localhost{path}"))
            .header("host", "localhost")
            .body(Empty::new())
            .unwrap();
        // A fresh connection takes requests once its handshake is done.
        let response = match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await?
            }
        };
        let (version, status) = (response.version(), response.status().as_u16());
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, version, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A request over TLS says so: WAGI's `X_FULL_URL` and a component's URI
/// scheme are `https`, over HTTP/1.1 and HTTP/2 alike. Plain HTTP to the TLS
/// listener fails its handshake, and is counted by the time it is closed.
#[tokio::test(flavor = "multi_thread")]
pub async fn tls_requests_are_https_to_handlers() {
    let authority = Authority::new();
    let leaf = authority.leaf();
    let n = start_tls(
        node()
            .function("env", guests::ENV_DUMP)
            .function("p", guests::HTTP_PROBE),
        &leaf,
    );
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let (_, mut sender) = connect(&authority.connector(), n.addr(), alpn).await;
        let (status, _, env) = sender.get("/env?x=1").await.unwrap();
        assert_eq!(status, 200, "{env}");
        assert!(
            env.contains("ENV X_FULL_URL=https://localhost/env?x=1\n"),
            "{env}"
        );
        let (status, _, echo) = sender.get("/p/echo").await.unwrap();
        assert_eq!(status, 200, "{echo}");
        assert!(echo.contains("scheme: Some(Scheme::Https)"), "{echo}");
        assert!(echo.contains("uri: localhost/p/echo"), "{echo}");
    }
    let mut plain = tokio::net::TcpStream::connect(n.addr()).await.unwrap();
    plain
        .write_all(b"GET /env HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the plain connection was closed");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "no HTTP answer over plain TCP"
    );
    assert_eq!(
        n.metric(r#"wedge_connections_closed_total{reason="tls_handshake"}"#)
            .await,
        Some(1.0)
    );
}

/// curl with `--cacert` gets 200 over HTTP/1.1 and h2 as ALPN chooses.
/// Replacing the files changes the certificate new connections see, with no
/// request failing, old connections included; a broken replacement leaves the
/// last good certificate serving.
#[tokio::test(flavor = "multi_thread")]
pub async fn tls_serves_and_reloads() {
    let authority = Authority::new();
    let first = authority.leaf();
    let n = start_tls(node().function("hello", examples::HELLO), &first);
    let connector = authority.connector();

    let (cert, mut h1) = connect(&connector, n.addr(), b"http/1.1").await;
    assert_eq!(cert, first.2);
    assert_eq!(h1.hello().await.unwrap(), (200, http::Version::HTTP_11));
    let (_, mut h2) = connect(&connector, n.addr(), b"h2").await;
    assert_eq!(h2.hello().await.unwrap(), (200, http::Version::HTTP_2));

    // Load on old connections and new ones while the files change.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, served, failed, connector, addr) = (
            stop.clone(),
            served.clone(),
            failed.clone(),
            connector.clone(),
            n.addr(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for sender in [&mut h1, &mut h2] {
                    match sender.hello().await {
                        Ok((200, _)) => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                let (_, mut fresh) = connect(&connector, addr, b"h2").await;
                match fresh.hello().await {
                    Ok((200, _)) => served.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = authority.leaf();
    write_pair(n.dir(), &second);
    let started = Instant::now();
    loop {
        let (cert, mut fresh) = connect(&connector, n.addr(), b"http/1.1").await;
        assert_eq!(fresh.hello().await.unwrap().0, 200);
        if cert == second.2 {
            break;
        }
        assert_eq!(cert, first.2);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("certificate reloaded")
    })
    .expect("the reload is logged");

    let seen = n.log_lines().len();
    std::fs::write(
        n.dir().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .unwrap();
    n.wait_for_log_after(seen, Duration::from_secs(5), |l| {
        l.contains("does not load")
    })
    .expect("the broken file is logged");
    let (cert, mut fresh) = connect(&connector, n.addr(), b"h2").await;
    assert_eq!(cert, second.2, "the last good certificate keeps serving");
    assert_eq!(fresh.hello().await.unwrap().0, 200);

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(served.load(Ordering::Relaxed) > 10);
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
}

/// A node whose certificate files do not load does not start, and says why.
#[test]
fn a_bad_certificate_stops_the_start() {
    let b = node().table(TLS);
    std::fs::write(b.dir().join("cert.pem"), "not a certificate").unwrap();
    std::fs::write(b.dir().join("key.pem"), "not a key").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wedge"))
        .arg("serve")
        .arg("-c")
        .arg(b.write_config())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[server.tls]"), "{stderr}");
    assert!(stderr.contains("cert.pem"), "{stderr}");
}
