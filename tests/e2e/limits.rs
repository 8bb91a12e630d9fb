//! Every limit of `[server]` and `function.toml`, enforced and seen from outside.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{examples, get_status, guests, raw_request};

use crate::node;

/// A body over `max_request_body` is refused with 413, with or without a declared length.
#[tokio::test(flavor = "multi_thread")]
pub async fn body_too_large() {
    let n = node()
        .server("max_request_body = \"1KiB\"")
        .function("raw", guests::VERBATIM)
        .start();
    let ok = format!("Content-Type: text/plain\n\n{}", "a".repeat(900));
    assert_eq!(n.post("/raw", ok).await.status, 200);
    let big = "a".repeat(2048);
    assert_eq!(n.post("/raw", big.clone()).await.status, 413);

    // Declared too large: answered before the body is sent at all.
    let head = "POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    let reply = raw_request(n.addr(), head.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

    // Chunked, no declared length: cut off at the limit.
    let mut chunked =
        String::from("POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..4 {
        chunked += &format!("400\r\n{}\r\n", "b".repeat(1024));
    }
    chunked += "0\r\n\r\n";
    let reply = raw_request(n.addr(), chunked.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert_eq!(n.get("/raw").await.status, 502, "node still serves");
}

/// Request line plus headers over `max_header_bytes` get 431, whether hyper or
/// wedge notices first.
#[tokio::test(flavor = "multi_thread")]
pub async fn headers_too_large() {
    let n = node()
        .server("max_header_bytes = \"4KiB\"")
        .function("hello", examples::HELLO)
        .start();
    let small = "a".repeat(1000);
    let ok = n
        .send(Method::GET, "/hello", &[("x-big", &small)], Bytes::new())
        .await;
    assert_eq!(ok.status, 200);
    let medium = "a".repeat(6000);
    let reply = n
        .send(Method::GET, "/hello", &[("x-big", &medium)], Bytes::new())
        .await;
    assert_eq!(reply.status, 431);
    let huge = format!(
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
        "h".repeat(64 << 10)
    );
    let reply = raw_request(n.addr(), huge.as_bytes(), Duration::from_secs(2)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert_eq!(n.get("/hello").await.status, 200);
}

/// Beyond `max_inflight`, requests get 503 with Retry-After at once instead of queueing.
#[tokio::test(flavor = "multi_thread")]
pub async fn sleepy() {
    let n = node()
        .server("max_inflight = 2")
        .function("sleepy", guests::SLEEPY)
        .start();
    let quick = n.get("/sleepy?ms=1").await;
    assert_eq!(quick.status, 200);
    assert_eq!(quick.text(), "slept 1ms\n");

    let held: Vec<_> = (0..2)
        .map(|_| {
            let addr = n.addr();
            tokio::spawn(async move { get_status(addr, "/sleepy?ms=1500").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    let rejected = n.get("/sleepy?ms=1").await;
    assert_eq!(rejected.status, 503);
    assert_eq!(rejected.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "503 is immediate, not queued"
    );
    for h in held {
        assert_eq!(h.await.unwrap(), 200, "admitted requests complete");
    }
    assert_eq!(
        n.get("/sleepy?ms=1").await.status,
        200,
        "capacity comes back"
    );
}

/// The function's `timeout` answers 504 within the timeout plus a small margin.
#[tokio::test(flavor = "multi_thread")]
pub async fn timeout_is_504() {
    let n = node()
        .function("slow", guests::SLEEPY)
        .function_toml("slow", "timeout = \"300ms\"")
        .start();
    let started = Instant::now();
    let reply = n.get("/slow?ms=5000").await;
    let took = started.elapsed();
    assert_eq!(reply.status, 504);
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(1300), "{took:?}");
}

/// Writing more than `max_response` is a 502, and the writer is stopped.
#[tokio::test(flavor = "multi_thread")]
pub async fn response_cap() {
    let n = node()
        .function("raw", guests::VERBATIM)
        .function_toml("raw", "max_response = \"4KiB\"")
        .start();
    let fits = format!("Content-Type: text/plain\n\n{}", "x".repeat(3000));
    assert_eq!(n.post("/raw", fits).await.status, 200);
    let over = format!("Content-Type: text/plain\n\n{}", "x".repeat(5000));
    let reply = n.post("/raw", over).await;
    assert_eq!(reply.status, 502);
    assert!(reply.text().contains("too large"), "{}", reply.text());
}

/// A connection that never finishes its request head is closed after `header_read_timeout`.
#[tokio::test(flavor = "multi_thread")]
pub async fn header_read_timeout() {
    let n = node()
        .server("header_read_timeout = \"500ms\"")
        .function("hello", examples::HELLO)
        .start();
    for partial in ["", "GET /hello HTTP/1.1\r\nHost: x\r\n"] {
        let started = Instant::now();
        let reply = raw_request(n.addr(), partial.as_bytes(), Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "closed after {took:?} for {partial:?}"
        );
        assert!(!reply.contains("200 OK"), "{reply}");
    }
    assert_eq!(n.get("/hello").await.status, 200);
}

/// A function whose only version does not load answers 503; others serve.
#[tokio::test(flavor = "multi_thread")]
pub async fn no_loadable_version() {
    let b = node().function("hello", examples::HELLO);
    let broken = b.functions_dir().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("v1.wasm"), b"\0asm garbage").unwrap();
    let n = b.start();
    assert_eq!(n.get("/broken").await.status, 503);
    assert_eq!(n.get("/hello").await.status, 200);
}

/// Without a `timeout` of its own a function gets `server.request_timeout`.
#[tokio::test(flavor = "multi_thread")]
pub async fn server_request_timeout_is_the_default() {
    let n = node()
        .server("request_timeout = \"300ms\"")
        .function("slow", guests::SLEEPY)
        .start();
    assert_eq!(n.get("/slow?ms=10").await.status, 200);
    let started = Instant::now();
    assert_eq!(n.get("/slow?ms=5000").await.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1300));
}
