//! What a client sends, refused before it reaches a guest or an instance:
//! control bytes bound for the environment, bad `Host` headers, requests over
//! the per-address rate, and bodies that trickle in.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use wedge_test_harness::{examples, get_status, guests, raw_request};

use crate::node;

/// The status and the head of a raw HTTP/1.1 exchange.
async fn raw(addr: std::net::SocketAddr, request: &str) -> (u16, String) {
    let reply = raw_request(addr, request.as_bytes(), Duration::from_secs(2)).await;
    let status = reply.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, reply)
}

/// A decoded NUL, newline or other control byte in the path, the query or a
/// header would end one environment string early and forge the next. Each is
/// refused with 400 before any guest runs; the same bytes above 0x7F, and
/// ordinary requests, pass. An underscored header cannot shadow a real one.
#[tokio::test(flavor = "multi_thread")]
pub async fn environment_injection_is_refused() {
    let n = node().function("probe", guests::ENV_DUMP).start();
    for target in [
        "/probe/a%00QUERY_STRING=do=trap?do=label",
        "/probe/a%0aREMOTE_ADDR=1.2.3.4",
        "/probe/%7f",
        "/probe?x=%00y",
        "/probe?x=%1b%5b2J",
        "/probe?a=1&b=%0d%0aSet-Cookie:%20x",
    ] {
        let (status, reply) = raw(
            n.addr(),
            &format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{target}: {reply}");
        assert!(
            !reply.to_ascii_lowercase().contains("x-wedge-version"),
            "{target}: no guest ran"
        );
    }
    let (status, reply) = raw(
        n.addr(),
        "GET /probe HTTP/1.1\r\nHost: x\r\nX-Note: a\tb\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "a tab in a header value: {reply}");

    let (status, reply) = raw(
        n.addr(),
        "GET /probe/caf%C3%A9?q=%FF HTTP/1.1\r\nHost: x\r\nX-User-Id: 7\r\nX_User_Id: forged\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("ENV PATH_INFO=/café\n"), "{reply}");
    assert!(reply.contains("ENV QUERY_STRING=q=%FF\n"), "{reply}");
    assert_eq!(
        reply.matches("ENV HTTP_X_USER_ID=").count(),
        1,
        "one variable, from the real header: {reply}"
    );
    assert!(reply.contains("ENV HTTP_X_USER_ID=7\n"), "{reply}");
    assert!(!reply.contains("forged"), "{reply}");
    assert_eq!(
        n.metric(r#"wedge_requests_total{function="",version="",status="400"}"#)
            .await,
        Some(7.0)
    );
}

/// HTTP/1.1 needs exactly one `Host`, and it must be a host and port.
/// HTTP/1.0 may leave it out, and so may HTTP/2, which has `:authority`.
#[tokio::test(flavor = "multi_thread")]
pub async fn host_header_rules() {
    let n = node().function("hello", examples::HELLO).start();
    let cases = [
        ("GET /hello HTTP/1.1\r\n", 400),
        ("GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n", 400),
        ("GET /hello HTTP/1.1\r\nHost: a b\r\n", 400),
        ("GET /hello HTTP/1.1\r\nHost: user@a\r\n", 400),
        ("GET /hello HTTP/1.1\r\nHost: edge.example:8080\r\n", 200),
        ("GET /hello HTTP/1.1\r\nHost: [::1]:8080\r\n", 200),
        ("GET /hello HTTP/1.0\r\n", 200),
    ];
    for (head, expected) in cases {
        let (status, reply) = raw(n.addr(), &format!("{head}Connection: close\r\n\r\n")).await;
        assert_eq!(status, expected, "{head:?}: {reply}");
    }
    assert_eq!(n.get_h2c("/hello").await.status, 200);
}

/// With `[server.per_ip] rate`, an address gets `burst` requests at once and
/// then `rate` a second; beyond that 429 with `Retry-After`, and the bucket
/// refills.
#[tokio::test(flavor = "multi_thread")]
pub async fn per_ip_rate_limit() {
    let n = node()
        .function("hello", examples::HELLO)
        .table("[server.per_ip]\nrate = 2\nburst = 5")
        .start();
    for i in 0..5 {
        assert_eq!(get_status(n.addr(), "/hello").await, 200, "request {i}");
    }
    let limited = n.get("/hello").await;
    assert_eq!(limited.status, 429);
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    assert!(
        limited.text().contains("too many requests"),
        "{}",
        limited.text()
    );
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        get_status(n.addr(), "/hello").await,
        200,
        "the bucket refilled"
    );
    assert_eq!(
        n.metric(r#"wedge_requests_total{function="",version="",status="429"}"#)
            .await,
        Some(1.0)
    );
}

/// Bodies are read before a request takes an admission slot: clients that
/// trickle their bodies hold connections, not serving capacity. With more
/// tricklers than `max_inflight`, every normal request is served; as many
/// tricklers as `max_inflight` get 408 at `body_timeout`, and the rest, over
/// the bound on bodies read at once, 503.
#[tokio::test(flavor = "multi_thread")]
pub async fn trickled_bodies_hold_no_capacity() {
    let (tricklers, max_inflight) = (crate::scale(30, 260), crate::scale(10, 200));
    let n = node()
        .server(&format!("max_inflight = {max_inflight}"))
        .server("body_timeout = \"3s\"")
        .table("[server.per_ip]\nmax_connections = 1000")
        .function("hello", examples::HELLO)
        .function("raw", guests::VERBATIM)
        .start();
    let count = tricklers;
    let tricklers: Vec<_> = (0..count)
        .map(|_| {
            let addr = n.addr();
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
                    .await
                    .unwrap();
                let started = Instant::now();
                // One byte every 200 ms: 1000 bytes would take 200 s.
                let mut reply = Vec::new();
                loop {
                    if s.write_all(b"a").await.is_err() {
                        break;
                    }
                    let mut buf = [0u8; 512];
                    match tokio::time::timeout(
                        Duration::from_millis(200),
                        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
                    )
                    .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(k)) => reply.extend_from_slice(&buf[..k]),
                        Err(_) => {}
                    }
                    if started.elapsed() > Duration::from_secs(20) {
                        break;
                    }
                }
                String::from_utf8_lossy(&reply).into_owned()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut served = 0;
    for _ in 0..101 {
        if get_status(n.addr(), "/hello").await == 200 {
            served += 1;
        }
    }
    println!(
        "{count} trickled bodies, max_inflight = {max_inflight}: {served} of 101 normal requests served"
    );
    assert_eq!(
        served, 101,
        "every normal request served next to the tricklers"
    );
    let mut timed_out = 0;
    for t in tricklers {
        let reply = t.await.unwrap();
        if reply.starts_with("HTTP/1.1 408") {
            timed_out += 1;
        } else {
            // Beyond max_inflight bodies being read at once: refused at once.
            assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
        }
    }
    assert_eq!(
        timed_out, max_inflight,
        "one body read per slot, cut off at body_timeout"
    );
}
