//! Observability: metrics after known traffic, and structured JSON logs.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, examples, guests};

use crate::node;

fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// After known traffic, `/metrics` counts requests by status, traps by kind,
/// swaps, rollbacks and key-value operations.
#[tokio::test(flavor = "multi_thread")]
pub async fn metrics_count_known_traffic() {
    let b = node()
        .function("hello", examples::HELLO)
        .function("t", guests::TRAP)
        .function("slow", guests::SLEEPY)
        .function_toml("slow", "timeout = \"200ms\"")
        .function("s", guests::SWAP_A)
        .example("inventory")
        .version("r", "v1", guests::SWAP_A)
        .version("r", "v2", guests::TRAP)
        .function_toml(
            "r",
            "[rollout]\nauto_rollback = { max_error_rate = 0.1, min_requests = 5, window = \"10s\" }\n",
        );
    std::fs::write(
        b.functions_dir().join("r/deployment.toml"),
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 100\n",
    )
    .unwrap();
    let n = b.start();
    for _ in 0..5 {
        assert_eq!(n.get("/hello").await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(n.get("/t").await.status, 500);
    }
    for _ in 0..2 {
        assert_eq!(n.get("/slow?ms=5000").await.status, 504);
    }
    assert_eq!(n.get("/nowhere").await.status, 404);
    assert_eq!(
        n.send(Method::PUT, "/inventory/sku", &[], Bytes::from_static(b"3"))
            .await
            .status,
        200
    );
    // s gets new bytes: two swaps, onto their baseline code and then onto
    // their optimized code.
    crate::swap::until_optimized(&n, "s").await;
    let swaps_of_s = || async {
        n.metric("wedge_module_swaps_total{function=\"s\"}")
            .await
            .unwrap_or(0.0)
    };
    let swaps_before = swaps_of_s().await;
    let target = n.dir().join("functions/s/v1.wasm");
    std::fs::copy(guests::SWAP_B, target.with_extension("up")).unwrap();
    std::fs::rename(target.with_extension("up"), &target).unwrap();
    // One rollback: r's canary always traps.
    while !n
        .log_lines()
        .iter()
        .any(|l| l.contains("rolled back automatically"))
    {
        n.get("/r").await;
    }
    while n.get("/s").await.text() != "B" {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    crate::swap::until_optimized(&n, "s").await;
    assert_eq!(swaps_of_s().await, swaps_before + 2.0);

    let metrics = n
        .admin(Method::GET, "/metrics", None, Bytes::new())
        .await
        .text();
    let expect = |series: &str, value: f64| {
        assert_eq!(
            sample(&metrics, series),
            Some(value),
            "{series} in:\n{metrics}"
        );
    };
    expect(
        "wedge_requests_total{function=\"hello\",version=\"v1\",status=\"200\"}",
        5.0,
    );
    expect(
        "wedge_requests_total{function=\"t\",version=\"v1\",status=\"500\"}",
        3.0,
    );
    expect(
        "wedge_requests_total{function=\"slow\",version=\"v1\",status=\"504\"}",
        2.0,
    );
    expect(
        "wedge_requests_total{function=\"\",version=\"\",status=\"404\"}",
        1.0,
    );
    expect(
        "wedge_guest_traps_total{function=\"t\",version=\"v1\",kind=\"trap\"}",
        3.0,
    );
    expect(
        "wedge_guest_traps_total{function=\"slow\",version=\"v1\",kind=\"timeout\"}",
        2.0,
    );
    expect(
        "wedge_guest_traps_total{function=\"hello\",version=\"v1\",kind=\"trap\"}",
        0.0,
    );
    expect("wedge_rollbacks_total{function=\"r\"}", 1.0);
    expect(
        "wedge_kv_operations_total{store=\"inventory\",op=\"set\",result=\"ok\"}",
        1.0,
    );
    expect(
        "wedge_kv_operations_total{store=\"inventory\",op=\"open\",result=\"ok\"}",
        1.0,
    );
    expect(
        "wedge_request_duration_seconds_count{function=\"hello\",version=\"v1\"}",
        5.0,
    );
    expect(
        "wedge_request_duration_seconds_bucket{function=\"hello\",version=\"v1\",le=\"+Inf\"}",
        5.0,
    );
    assert!(
        metrics.contains("wedge_request_duration_seconds_bucket{function=\"hello\",version=\"v1\",le=\"0.00001\"}"),
        "buckets resolve tens of microseconds"
    );
    expect(
        "wedge_instantiate_duration_seconds_count{function=\"hello\"}",
        5.0,
    );
    expect("wedge_inflight_requests", 0.0);
    assert!(sample(&metrics, "wedge_module_load_failures_total{function=\"s\"}").is_none());
}

/// `--log-format json`: one JSON object per line; the access event of a request
/// carries every field, and so do guest stderr lines.
#[tokio::test(flavor = "multi_thread")]
pub async fn json_access_log() {
    let n = node()
        .server("region = \"eu-test-1\"")
        .arg("--log-format")
        .arg("json")
        .function("chatty", guests::CHATTY)
        .start();
    let reply = n
        .send(
            Method::GET,
            "/chatty?x=1",
            &[("x-request-id", "json-req-42")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let line = n
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("\"wedge::access\"") && l.contains("json-req-42")
        })
        .expect("access event");
    let event: serde_json::Value = serde_json::from_str(&line).expect(&line);
    for field in [
        "method",
        "path",
        "status",
        "function",
        "version",
        "module_sha256",
        "region",
        "request_id",
        "total_us",
        "instantiate_us",
        "guest_us",
    ] {
        assert!(event.get(field).is_some(), "{field} missing from {line}");
    }
    assert_eq!(event["method"], "GET");
    assert_eq!(event["path"], "/chatty");
    assert_eq!(event["status"], 200);
    assert_eq!(event["function"], "chatty");
    assert_eq!(event["version"], "v1");
    assert_eq!(event["region"], "eu-test-1");
    assert_eq!(event["module_sha256"].as_str().unwrap().len(), 12);
    assert!(event["total_us"].as_u64().unwrap() >= event["guest_us"].as_u64().unwrap());

    let stderr_line = n
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("first line from the guest")
        })
        .unwrap();
    let guest: serde_json::Value = serde_json::from_str(&stderr_line).expect(&stderr_line);
    assert_eq!(guest["function"], "chatty");
    assert_eq!(guest["version"], "v1");
    assert_eq!(guest["request_id"], "json-req-42");
    assert_eq!(guest["region"], "eu-test-1");
    for l in n.log_lines() {
        serde_json::from_str::<serde_json::Value>(&l)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
}

/// An idle node with the examples loaded holds under 20 MiB besides its own
/// code, both after a first start that compiles them (the compiler's memory
/// must go back to the system) and after a restart that takes their code
/// from the cache. The binary's code pages are shared and read-only, and
/// their count depends on the build (21 MiB of a release build is resident
/// at idle, 28 MiB of the debug build these tests run): with them a
/// release node stays under the 40 MiB goal (docs/performance.md).
#[tokio::test(flavor = "multi_thread")]
pub async fn idle_memory_stays_small() {
    let mut n = node()
        .example("hello")
        .example("inventory")
        .example("plain")
        .example("rules")
        .example("session")
        .start();
    n.wait_for_log(Duration::from_secs(5), |l| l.contains("compiling=5"))
        .expect("a first start compiles the five examples");
    for name in ["hello", "inventory", "plain", "rules", "session"] {
        crate::swap::until_optimized(&n, name).await;
    }
    assert_eq!(n.get("/hello").await.status, 200);
    let first = idle_rss_kib(&n).await;
    eprintln!("idle RSS after compiling the examples, its own code aside: {first} KiB");
    assert!(first < 20 * 1024, "idle RSS after compiling: {first} KiB");

    // The compiled code is in the cache now; start again from it.
    n.kill();
    n.restart();
    assert_eq!(n.get("/hello").await.status, 200);
    let restarted = idle_rss_kib(&n).await;
    eprintln!("idle RSS after a restart from the cache, its own code aside: {restarted} KiB");
    assert!(
        restarted < 20 * 1024,
        "idle RSS after a restart: {restarted} KiB"
    );
}

/// The node's resident memory once it has been idle for half a second,
/// less the clean pages of its own executable (its code): everything it
/// allocated, its stacks, the compiled modules it maps, its libraries, and
/// any page of the executable it wrote to.
async fn idle_rss_kib(n: &Node) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let binary = std::fs::canonicalize(env!("CARGO_BIN_EXE_wedge")).unwrap();
    let binary = binary.to_string_lossy();
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", n.pid())).unwrap();
    let field = |line: &str, name: &str| -> Option<u64> {
        line.strip_prefix(name)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let (mut total, mut own_code) = (0, 0);
    let mut in_binary = false;
    for line in smaps.lines() {
        let is_header = line.split_whitespace().next().is_some_and(|range| {
            range.contains('-') && range.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        });
        if is_header {
            in_binary = line.trim_end().ends_with(&*binary);
        } else if let Some(rss) = field(line, "Rss:") {
            total += rss;
            if in_binary {
                own_code += rss;
            }
        } else if let Some(anon) = field(line, "Anonymous:")
            && in_binary
        {
            own_code -= anon;
        }
    }
    total - own_code
}
