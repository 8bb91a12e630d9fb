//! The examples in other languages, served beside the Rust ones as `cargo
//! xtask serve` serves them: `go-rules` (Go) decides on facts the Rust
//! `session` example recorded, `c-stock` (C) sells the Rust `inventory`
//! example's stock, and `origin-fallback` serves from the store and falls
//! back to its origin over HTTP.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, Origin, examples};

use crate::node;

async fn send(
    n: &Node,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let reply = n
        .send(
            method,
            path,
            headers,
            Bytes::copy_from_slice(body.as_bytes()),
        )
        .await;
    (reply.status.as_u16(), reply.text())
}

/// Must-show 3: a Go handler decides on facts a Rust handler wrote.
#[tokio::test(flavor = "multi_thread")]
pub async fn go_rules_decide_on_facts_the_rust_session_example_recorded() {
    let n = node().example("session").example("go-rules").start();
    let rules = r#"{"default": "allow", "rules": [
        {"name": "big-orders-need-verification", "decision": "deny",
         "when": [{"attr": "query:amount", "op": "gt", "value": 1000},
                  {"attr": "session:verified", "op": "ne", "value": "yes"}]}]}"#;
    let (status, body) = send(&n, Method::PUT, "/go-rules/config", &[], rules).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(&n, Method::PUT, "/go-rules/config", &[], "{\"rulez\":1}").await;
    assert_eq!(status, 400, "bad rules are refused");

    let session = [("x-session-id", "s-42")];
    let check = "/go-rules/check/pay?amount=5000";
    let (status, body) = send(&n, Method::GET, check, &session, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("big-orders-need-verification"), "{body}");

    // The Rust session example records the fact; the Go rules read it.
    let (status, body) = send(&n, Method::PUT, "/session/s-42/verified", &[], "yes").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(&n, Method::GET, check, &session, "").await;
    assert_eq!(
        (status, body.trim()),
        (200, r#"{"decision":"allow","rule":null}"#)
    );
    let (status, _) = send(&n, Method::GET, "/go-rules/check/pay?amount=10", &[], "").await;
    assert_eq!(status, 200);
}

/// The C example sells the same stock as the Rust inventory example.
#[tokio::test(flavor = "multi_thread")]
pub async fn c_stock_sells_the_rust_inventory_examples_stock() {
    let n = node().example("inventory").example("c-stock").start();
    assert_eq!(
        send(&n, Method::PUT, "/inventory/lamp", &[], "3").await.0,
        200
    );
    let (status, body) = send(&n, Method::GET, "/c-stock/lamp", &[], "").await;
    assert_eq!((status, body.trim()), (200, r#"{"sku":"lamp","stock":3}"#));
    for left in [2, 1, 0] {
        let (status, body) = send(&n, Method::POST, "/c-stock/lamp/buy", &[], "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&format!("\"remaining\":{left}")), "{body}");
    }
    let (status, body) = send(&n, Method::POST, "/c-stock/lamp/buy", &[], "").await;
    assert_eq!(status, 409, "{body}");
    let (_, body) = send(&n, Method::GET, "/inventory/lamp", &[], "").await;
    assert_eq!(body, r#"{"sku":"lamp","stock":0}"#);
    let (status, _) = send(&n, Method::GET, "/c-stock/no%20such", &[], "").await;
    assert_eq!(status, 400);
}

/// origin-fallback: a miss calls the origin and caches, a hit does not call
/// it, and an origin that went away still gets a stale copy served.
#[tokio::test(flavor = "multi_thread")]
pub async fn origin_fallback_caches_what_the_origin_said() {
    let origin = Origin::start(IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let toml = format!(
        "outbound = [\"http://127.0.0.1:*\"]\nenv = {{ ORIGIN = \"http://127.0.0.1:{}\", MAX_AGE_SECS = \"1\" }}\n",
        origin.port()
    );
    let n = node()
        .function("origin-fallback", examples::ORIGIN_FALLBACK)
        .function_toml("origin-fallback", &toml)
        .start();
    let first = n.get("/origin-fallback/hello").await;
    assert_eq!(
        (first.status.as_u16(), first.text()),
        (200, "hello from 127.0.0.1".into())
    );
    assert_eq!(first.header("x-cache"), Some("miss"));
    let second = n.get("/origin-fallback/hello").await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.text(), "hello from 127.0.0.1");
    assert_eq!(origin.accepts(), 1);
    let missing = n.get("/origin-fallback/nothing-here").await;
    assert_eq!(
        (missing.status.as_u16(), missing.header("x-cache")),
        (404, Some("pass"))
    );

    drop(origin);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = n.get("/origin-fallback/hello").await;
    assert_eq!(stale.header("x-cache"), Some("stale"));
    assert_eq!(stale.text(), "hello from 127.0.0.1");
    let never = n.get("/origin-fallback/other").await;
    assert_eq!(never.status, 502, "{}", never.text());
}
