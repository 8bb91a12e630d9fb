//! The `wedge` host module end to end: the inventory example under contention
//! and across a crash, access control, hostile pointers, the rules example.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, guests, raw_call};

use crate::node;

fn inventory() -> Node {
    node().example("inventory").start()
}

async fn put(n: &Node, path: &str, body: &str) -> wedge_test_harness::Reply {
    n.send(
        Method::PUT,
        path,
        &[],
        Bytes::copy_from_slice(body.as_bytes()),
    )
    .await
}

/// The inventory example's exact HTTP interface.
#[tokio::test(flavor = "multi_thread")]
pub async fn inventory_interface() {
    let n = inventory();
    assert_eq!(n.get("/inventory/sku-1").await.status, 404);
    let seeded = put(&n, "/inventory/sku-1", "5").await;
    assert_eq!(seeded.status, 200);
    assert_eq!(seeded.text(), r#"{"sku":"sku-1","stock":5}"#);
    let got = n.get("/inventory/sku-1").await;
    assert_eq!(
        (got.status.as_u16(), got.text()),
        (200, r#"{"sku":"sku-1","stock":5}"#.into())
    );
    let r = n.post("/inventory/sku-1/reserve?qty=3", "").await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, r#"{"sku":"sku-1","remaining":2}"#.into())
    );
    let r = n.post("/inventory/sku-1/reserve?qty=3", "").await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (409, r#"{"error":"insufficient","remaining":2}"#.into())
    );
    assert_eq!(
        n.get("/inventory/sku-1").await.text(),
        r#"{"sku":"sku-1","stock":2}"#
    );
    assert_eq!(
        n.post("/inventory/ghost/reserve?qty=1", "").await.status,
        404
    );
    assert_eq!(
        n.post("/inventory/sku-1/reserve?qty=-1", "").await.status,
        400
    );
    assert_eq!(put(&n, "/inventory/sku-1", "many").await.status, 400);
}

async fn reserve_status(addr: std::net::SocketAddr, sku: &str) -> (u16, String) {
    raw_call(addr, "POST", &format!("/inventory/{sku}/reserve?qty=1")).await
}

/// The stock of `sku`, as the inventory example reports it.
pub async fn stock(n: &Node, sku: &str) -> i64 {
    let text = n.get(&format!("/inventory/{sku}")).await.text();
    text.trim_end_matches('}')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{text}"))
}

fn remaining(body: &str) -> i64 {
    let i = body.find("\"remaining\":").expect("remaining in body") + "\"remaining\":".len();
    body[i..].trim_end_matches('}').parse().unwrap()
}

/// Stock 1000, 40 clients making 50 reservations each: exactly 1000 succeed,
/// 1000 get 409, the stock ends at 0 and no response ever shows a negative stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn contention_never_oversells() {
    let n = inventory();
    assert_eq!(put(&n, "/inventory/flash", "1000").await.status, 200);
    let addr = n.addr();
    let clients: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(async move {
                let (mut ok, mut refused) = (0, 0);
                for _ in 0..50 {
                    let (status, body) = reserve_status(addr, "flash").await;
                    let left = remaining(&body);
                    assert!(left >= 0, "negative stock shown: {body}");
                    match status {
                        200 => ok += 1,
                        409 => {
                            assert_eq!(left, 0, "{body}");
                            refused += 1
                        }
                        other => panic!("unexpected {other}: {body}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for c in clients {
        let (o, r) = c.await.unwrap();
        ok += o;
        refused += r;
    }
    assert_eq!((ok, refused), (1000, 1000));
    assert_eq!(
        n.get("/inventory/flash").await.text(),
        r#"{"sku":"flash","stock":0}"#
    );
}

/// `kill -9` under reservation load with `durability = "sync"`: after a restart
/// every acknowledged reservation is reflected, and at most the requests in
/// flight at the crash are unaccounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn acknowledged_reservations_survive_a_crash() {
    const INITIAL: i64 = 1_000_000;
    let mut n = node()
        .example("inventory")
        .store("durability = \"sync\"")
        .start();
    assert_eq!(
        put(&n, "/inventory/crash", &INITIAL.to_string())
            .await
            .status,
        200
    );
    let addr = n.addr();
    let acked = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (acked, sent) = (acked.clone(), sent.clone());
            tokio::spawn(async move {
                loop {
                    sent.fetch_add(1, Ordering::SeqCst);
                    let (status, _) = reserve_status(addr, "crash").await;
                    if status != 200 {
                        // The node is gone: this request may or may not have landed.
                        return;
                    }
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 300 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n.kill();
    for c in clients {
        c.await.unwrap();
    }
    let (acked, sent) = (
        acked.load(Ordering::SeqCst) as i64,
        sent.load(Ordering::SeqCst) as i64,
    );
    let in_flight = sent - acked;
    assert!(acked >= 300, "only {acked} reservations before the crash");
    n.restart();
    let stock = stock(&n, "crash").await;
    assert!(
        stock <= INITIAL - acked,
        "lost acknowledged reservations: stock {stock}, acked {acked}"
    );
    assert!(
        stock >= INITIAL - acked - in_flight,
        "more taken than sent: stock {stock}, acked {acked}, in flight {in_flight}"
    );
}

/// Every operation through the SDK, and a store the function did not declare.
#[tokio::test(flavor = "multi_thread")]
pub async fn kv_probe() {
    let n = node()
        .function("probe", guests::KV_PROBE)
        .function_toml("probe", "kv = [\"mine\"]")
        .start();
    let denied = n.get("/probe?store=theirs").await.text();
    assert_eq!(denied, "open theirs: AccessDenied\n");
    let text = n.get("/probe?store=mine").await.text();
    assert_probe_passes(&text);
    assert!(text.lines().any(|l| l == "abi: Some(2)"), "{text}");
}

/// Checks the `kv_probe` guest's report: every call of the ABI answered as
/// documented, on whichever backend the node runs.
pub fn assert_probe_passes(text: &str) {
    for line in [
        "open mine: ok",
        "set: Ok(())",
        "get: Ok(Some(Ok(\"hello\")))",
        "missing: Ok(None)",
        "exists: Ok(true)",
        "add: Ok(5)",
        "add over: Err(OutOfRange { current: 5 })",
        "cas absent: Ok(true)",
        "cas wrong: Ok(false)",
        "big value: Err(TooLarge)",
        "empty key: Err(Invalid)",
        "list: Ok([Ok(\"list/0\"), Ok(\"list/1\"), Ok(\"list/2\")])",
        "delete: Ok(true)",
        "delete again: Ok(false)",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

/// Pointers, lengths and handles outside the guest's memory are `invalid` (5),
/// never a crash; and a refused call changes nothing.
#[tokio::test(flavor = "multi_thread")]
pub async fn kv_abuse() {
    let n = node().function("abuse", guests::KV_ABUSE).start();
    let text = n.get("/abuse").await.text();
    let (calls, last) = text.trim_end().rsplit_once('\n').expect("lines");
    let calls: Vec<&str> = calls.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(calls.len(), 17, "{text}");
    for line in calls {
        assert!(line.ends_with(": 5"), "expected invalid: {line}");
    }
    // `add` with a wild out-pointer was refused before it touched the counter.
    assert_eq!(last, "counter after refused add: 0 7");
    assert_eq!(n.get("/abuse").await.status, 200, "the host is still up");
}

/// Rules live in the store: replacing them changes the very next decision, and a
/// fact recorded through the session example feeds a rule.
#[tokio::test(flavor = "multi_thread")]
pub async fn rules_change_without_a_redeploy() {
    let n = node().example("rules").example("session").start();
    const UA: &[(&str, &str)] = &[("user-agent", "curl/8")];
    const SESSION: &[(&str, &str)] = &[("x-session-id", "s-42")];
    let check = |headers: &'static [(&'static str, &'static str)], path: &'static str| {
        let n = &n;
        async move { n.send(Method::GET, path, headers, Bytes::new()).await }
    };
    let first = check(UA, "/rules/check/orders?amount=5000").await;
    assert_eq!(
        (first.status.as_u16(), first.text()),
        (200, r#"{"decision":"allow","rule":null}"#.into())
    );

    let rules = r#"{"rules":[
        {"name":"block-curl","decision":"deny","when":[{"attr":"header:user-agent","op":"prefix","value":"curl"}]}
    ]}"#;
    assert_eq!(put(&n, "/rules/config", rules).await.status, 200);
    let second = check(UA, "/rules/check/orders?amount=5000").await;
    assert_eq!(
        (second.status.as_u16(), second.text()),
        (403, r#"{"decision":"deny","rule":"block-curl"}"#.into())
    );

    let rules = r#"{"rules":[
        {"name":"big-orders-need-verification","decision":"deny","when":[
            {"attr":"query:amount","op":"gt","value":1000},
            {"attr":"session:verified","op":"ne","value":"yes"}]}
    ]}"#;
    assert_eq!(put(&n, "/rules/config", rules).await.status, 200);
    let unverified = check(SESSION, "/rules/check/orders?amount=5000").await;
    assert_eq!(
        unverified.text(),
        r#"{"decision":"deny","rule":"big-orders-need-verification"}"#
    );
    assert_eq!(put(&n, "/session/s-42/verified", "yes").await.status, 200);
    let verified = check(SESSION, "/rules/check/orders?amount=5000").await;
    assert_eq!(
        (verified.status.as_u16(), verified.text()),
        (200, r#"{"decision":"allow","rule":null}"#.into())
    );

    let bad = put(
        &n,
        "/rules/config",
        r#"{"rules":[{"name":"x","decision":"deny","when":[]}]}"#,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("no conditions"), "{}", bad.text());
    assert_eq!(
        check(SESSION, "/rules/check/orders?amount=5000")
            .await
            .status,
        200,
        "bad rules change nothing"
    );
}

/// A store another function declares is not this function's to open.
#[tokio::test(flavor = "multi_thread")]
pub async fn undeclared_store_is_denied() {
    let n = node()
        .example("inventory")
        .function("nosy", guests::KV_PROBE)
        .start();
    let text = n.get("/nosy?store=inventory").await.text();
    assert_eq!(text, "open inventory: AccessDenied\n");
    // A guest trying ever-new names mints no metric labels.
    for i in 0..50 {
        let text = n.get(&format!("/nosy?store=made-up-{i}")).await.text();
        assert_eq!(text, format!("open made-up-{i}: AccessDenied\n"));
    }
    let metrics = n
        .admin(http::Method::GET, "/metrics", None, bytes::Bytes::new())
        .await
        .text();
    assert!(!metrics.contains("made-up"), "{metrics}");
    assert_eq!(
        n.metric(r#"wedge_kv_operations_total{store="",op="open",result="access_denied"}"#)
            .await,
        Some(51.0)
    );
}

/// SIGTERM flushes the store: with `periodic` durability and an interval far
/// longer than the test, a write still survives a graceful restart.
#[tokio::test(flavor = "multi_thread")]
pub async fn sigterm_flushes_the_store() {
    let mut n = node()
        .example("inventory")
        .store("durability = \"periodic\"")
        .store("flush_interval = \"1h\"")
        .start();
    assert_eq!(put(&n, "/inventory/kept", "41").await.status, 200);
    n.terminate();
    let status = n.expect_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    n.wait_for_log(Duration::from_secs(1), |l| {
        l.contains("key-value store closed")
    })
    .expect("flush logged");
    n.restart();
    assert_eq!(
        n.get("/inventory/kept").await.text(),
        r#"{"sku":"kept","stock":41}"#
    );
}

/// A reservation retried with its `Idempotency-Key` is answered from the
/// record of the first, even after a `kill -9` between the two sends.
#[tokio::test(flavor = "multi_thread")]
pub async fn a_retried_reservation_is_not_taken_twice() {
    let mut n = node()
        .example("inventory")
        .store("durability = \"sync\"")
        .start();
    assert_eq!(put(&n, "/inventory/sku", "5").await.status, 200);
    let order = [("Idempotency-Key", "order-7f3a")];
    let reserve = |n: &Node, headers: &[(&str, &str)]| {
        let (addr, headers) = (
            n.addr(),
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        );
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            wedge_test_harness::try_call(
                addr,
                "POST",
                "/inventory/sku/reserve",
                &headers,
                Duration::from_secs(10),
            )
            .await
            .expect("a reply")
        }
    };
    let first = reserve(&n, &order).await;
    assert_eq!(first, (200, r#"{"sku":"sku","remaining":4}"#.into()));
    assert_eq!(reserve(&n, &order).await, first);
    n.kill();
    n.restart();
    assert_eq!(
        reserve(&n, &order).await,
        first,
        "the record survives a crash"
    );
    assert_eq!(
        reserve(&n, &[("Idempotency-Key", "order-8b21")]).await,
        (200, r#"{"sku":"sku","remaining":3}"#.into())
    );
    assert_eq!(
        n.get("/inventory/sku").await.text(),
        r#"{"sku":"sku","stock":3}"#
    );
}
