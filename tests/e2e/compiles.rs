//! Compiles: bounded in size and in time, abandoned without changing what
//! serves, never in the way of a rollback, a deployment change or another
//! function's upload, and cached in a bounded, stably named directory.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::modules::{padded, slow_to_compile};
use wedge_test_harness::{Node, examples, get_status, guests};

use crate::node;

/// `PUT` a module as a version through the admin API.
async fn upload(n: &Node, function: &str, label: &str, wasm: Vec<u8>) -> wedge_test_harness::Reply {
    n.admin(
        Method::PUT,
        &format!("/v1/functions/{function}/versions/{label}"),
        None,
        Bytes::from(wasm),
    )
    .await
}

/// A module over `max_module_size` is refused before anything compiles: in
/// the functions directory with the limit named, and as an upload with 413.
#[tokio::test(flavor = "multi_thread")]
pub async fn oversized_modules_are_refused() {
    let hello = std::fs::read(examples::HELLO).unwrap();
    let b = node()
        .functions_setting("max_module_size = \"256KiB\"")
        .function("hello", examples::HELLO);
    let fat = b.functions_dir().join("fat");
    std::fs::create_dir_all(&fat).unwrap();
    std::fs::write(fat.join("v1.wasm"), padded(&hello, 1, 300 << 10)).unwrap();
    let n = b.start();
    let line = n
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("cannot load") && l.contains("fat")
        })
        .expect("the refusal is logged");
    assert!(line.contains("max_module_size"), "{line}");
    assert!(line.contains("v1.wasm"), "{line}");
    assert_eq!(n.get("/fat").await.status, 503);

    let refused = upload(&n, "hello", "v2", padded(&hello, 2, 300 << 10)).await;
    assert_eq!(refused.status, 413, "{}", refused.text());
    let fits = upload(&n, "hello", "v2", padded(&hello, 3, 100 << 10)).await;
    assert_eq!(fits.status, 200, "{}", fits.text());
}

/// A compile that runs past `compile_timeout` is abandoned. When it is the
/// optimized compile, the module serves on from its baseline code and the log
/// says so. When it is the initialization of a reactor, the module is
/// refused: the upload gets 422 naming the limit, the same module dropped
/// into the directory is a counted load failure, and the version that served
/// keeps serving.
#[tokio::test(flavor = "multi_thread")]
pub async fn slow_compile_is_abandoned() {
    let n = node()
        // Room for hello to compile on a loaded machine; none for Cranelift
        // over the slow module, which alone takes several times the limit.
        .functions_setting("compile_timeout = \"4s\"")
        .function("hello", examples::HELLO)
        .start();
    let accepted = upload(&n, "slow", "v1", slow_to_compile(1000 << 10, 200)).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    let line = n
        .wait_for_log(Duration::from_secs(20), |l| {
            l.contains("the optimized compile failed") && l.contains("function=slow")
        })
        .expect("the abandoned optimized compile is logged");
    assert!(line.contains("compile_timeout"), "{line}");
    // Its `_start` writes nothing: the guest's malformed answer, not a 503.
    assert_eq!(get_status(n.addr(), "/slow").await, 502);

    let spin = std::fs::read(guests::C_INIT_SPIN).unwrap();
    let started = Instant::now();
    let refused = upload(&n, "hello", "v2", spin.clone()).await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(
        refused.text().contains("compile_timeout"),
        "{}",
        refused.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "abandoned, not finished"
    );
    let reply = n.get("/hello").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-wedge-version"), Some("v1"));

    let dir = n.dir().join("functions/spinner");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("v1.wasm"), &spin).unwrap();
    let line = n
        .wait_for_log(Duration::from_secs(20), |l| {
            l.contains("cannot load") && l.contains("function=spinner")
        })
        .expect("the abandoned compile is a load failure");
    assert!(line.contains("compile_timeout"), "{line}");
    assert!(
        n.metric(r#"wedge_module_load_failures_total{function="spinner"}"#)
            .await
            .unwrap()
            >= 1.0
    );
    assert_eq!(get_status(n.addr(), "/hello").await, 200);
}

/// While one function's big module compiles for seconds, a deployment change
/// applies, another function's upload is served, and a failing canary is
/// rolled back automatically: none of them waits for the compile.
#[tokio::test(flavor = "multi_thread")]
pub async fn compiles_never_block_the_control_plane() {
    let megabytes: usize = std::env::var("WEDGE_TEST_BIG_MODULE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let b = node()
        .version("r", "v1", guests::SWAP_A)
        .version("r", "v2", guests::TRAP)
        .function_toml(
            "r",
            "[rollout]\nauto_rollback = { max_error_rate = 0.2, min_requests = 10, window = \"30s\" }\n",
        );
    std::fs::write(
        b.functions_dir().join("r/deployment.toml"),
        "stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 0\n",
    )
    .unwrap();
    let n = b.start();
    let big = n.dir().join("functions/big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("v1.wasm"), slow_to_compile(megabytes << 20, 200)).unwrap();
    n.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("compiling") && l.contains("function=big")
    })
    .expect("the big module is compiling");

    let change = n
        .admin(
            Method::PUT,
            "/v1/functions/r/deployment",
            None,
            Bytes::from(r#"{"stable":"v1","canary":"v2","canary_percent":50}"#),
        )
        .await;
    assert_eq!(change.status, 200, "{}", change.text());
    let other = upload(&n, "other", "v1", std::fs::read(examples::HELLO).unwrap()).await;
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(get_status(n.addr(), "/other").await, 200);

    let started = Instant::now();
    let mut failed = 0;
    let rolled_back = loop {
        if get_status(n.addr(), "/r").await >= 500 {
            failed += 1;
        }
        if let Some(line) = n.log_lines().iter().find(|l| l.contains("rolled back")) {
            break line.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no rollback");
    };
    let took = started.elapsed();
    println!(
        "failing canary next to a {megabytes} MiB compile: rolled back after {took:?} and {failed} failed requests"
    );
    assert!(rolled_back.contains("function=r"), "{rolled_back}");
    assert!(
        !n.log_lines().iter().any(|l| l.contains("compiled")
            && l.contains("function=big")
            && l.contains("tier=optimized")),
        "the big module's optimized compile was still running through all of it"
    );
    for _ in 0..20 {
        assert_eq!(get_status(n.addr(), "/r").await, 200, "only v1 serves now");
    }
}

/// The compiled code of modules nothing uses any more, optimized or
/// baseline, is evicted beyond the most recent spares, and the directories
/// of other engines are removed.
#[tokio::test(flavor = "multi_thread")]
pub async fn module_cache_is_bounded() {
    let b = node().function("hello", examples::HELLO);
    let stale = b.dir().join("data/modules/0123456789abcdef01234567");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("old.cwasm"), b"compiled by another engine").unwrap();
    let n = b.start();
    assert!(!stale.exists(), "another engine's directory is removed");
    crate::swap::until_optimized(&n, "hello").await;
    // The optimized code's directory; the baseline code's is empty once the
    // optimized code is there.
    let engine = n.dir().join("data/modules").join(optimized_engine_dir(&n));

    let hello = std::fs::read(examples::HELLO).unwrap();
    for i in 0..40 {
        let reply = upload(&n, "hello", "v1", padded(&hello, i, 0)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    crate::swap::until_optimized(&n, "hello").await;
    let entries = count_entries(&engine);
    assert!(
        entries <= 1 + 32,
        "{entries} compiled modules kept for one in use"
    );
    assert_eq!(get_status(n.addr(), "/hello").await, 200);
    // Compiles of replaced versions that had begun finish, or are abandoned
    // when their turn comes. Their baseline code stays, to serve again at
    // once if a version comes back, but only the most recent spares of it.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let baseline: usize = std::fs::read_dir(n.dir().join("data/modules"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .filter(|d| *d != engine)
            .map(|d| count_entries(&d))
            .sum();
        if baseline <= 32 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{baseline} modules' baseline code kept, none in use"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cache directory of optimized code: the one holding `hello`'s entry.
fn optimized_engine_dir(n: &Node) -> String {
    for dir in std::fs::read_dir(n.dir().join("data/modules")).unwrap() {
        let dir = dir.unwrap();
        if count_entries(&dir.path()) > 0 {
            return dir.file_name().to_string_lossy().into_owned();
        }
    }
    panic!("no compiled code in the cache")
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".cwasm")
        })
        .count()
}

/// A new module serves from Winch's baseline code while Cranelift compiles,
/// then the optimized code replaces it under load without failing a request;
/// a restart serves the optimized code from the cache at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn baseline_code_serves_until_optimized_code_replaces_it() {
    let mut n = node().function("hello", examples::HELLO).start();
    crate::swap::until_optimized(&n, "hello").await;
    // A 5 MB Go reactor: Cranelift takes seconds over it, Winch far less.
    let dir = n.dir().join("functions/go-hello");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("v1.wasm"),
        std::fs::read(examples::GO_HELLO).unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_status(n.addr(), "/go-hello?name=a").await != 200 {
        assert!(Instant::now() < deadline, "go-hello never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(crate::swap::tiers(&n, "go-hello").await, ["baseline"]);

    // Requests run throughout the replacement; every one is answered right.
    let addr = n.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|i| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answered = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, body) =
                        wedge_test_harness::raw_call(addr, "GET", &format!("/go-hello?name=n{i}"))
                            .await;
                    assert_eq!(
                        (status, body.as_str()),
                        (200, format!("Hello, n{i}!\n").as_str())
                    );
                    answered += 1;
                    // Paced, not flat out: compiles run only on an idle core.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                answered
            })
        })
        .collect();
    crate::swap::until_optimized(&n, "go-hello").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        assert!(l.await.unwrap() > 0);
    }

    n.restart();
    assert_eq!(crate::swap::tiers(&n, "go-hello").await, ["optimized"]);
    assert_eq!(n.get("/go-hello?name=b").await.text(), "Hello, b!\n");
}

/// A start with functions the cache lacks serves at once: each function goes
/// live when its code is ready, its route answers 503 with `Retry-After`
/// until then, `/readyz` counts those still pending (and with `?all=1`
/// answers 503 until none is), and the admin API and `wedge status` list
/// them as starting.
#[tokio::test(flavor = "multi_thread")]
pub async fn init_slow() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("late", guests::C_INIT_SLOW)
        .start_serving();
    let ready = |query: &'static str| {
        let n = &n;
        async move {
            let reply = n
                .admin(Method::GET, &format!("/readyz{query}"), None, Bytes::new())
                .await;
            (reply.status.as_u16(), reply.text())
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while get_status(n.addr(), "/hello").await != 200 {
        assert!(Instant::now() < deadline, "hello never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // hello serves while late's initializer is still asleep; late's route
    // says it is starting, to retry, rather than that nothing is there.
    let early = n.get("/late/x").await;
    assert_eq!(early.status, 503, "{}", early.text());
    assert_eq!(early.header("retry-after"), Some("1"));
    assert!(
        early.text().starts_with("function starting, retry shortly"),
        "{}",
        early.text()
    );
    assert_eq!(get_status(n.addr(), "/nothing-here").await, 404);
    assert_eq!(ready("").await, (200, "ready\npending: 1\n".to_string()));
    let (status, text) = ready("?all=1").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("1 functions still compiling"), "{text}");
    let listed = n
        .admin(Method::GET, "/v1/functions", None, Bytes::new())
        .await
        .text();
    let listed: serde_json::Value = serde_json::from_str(&listed).expect(&listed);
    let late = listed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "late")
        .unwrap_or_else(|| panic!("late is listed: {listed}"));
    assert_eq!(late["starting"], true, "{late}");
    assert_eq!(late["loaded"], false, "{late}");
    assert_eq!(late["route"], "/late", "{late}");
    let status = String::from_utf8(n.cli(&["status"]).stdout).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("late "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.contains("/late") && line.contains("starting"),
        "{line}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("hello ") && l.contains(" wagi ")),
        "{status}"
    );

    while get_status(n.addr(), "/late").await != 200 {
        assert!(Instant::now() < deadline, "late never served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(n.get("/late").await.text(), "ready 1\n");
    assert_eq!(
        ready("?all=1").await,
        (200, "ready\npending: 0\n".to_string())
    );
}

/// A function redeployed faster than it compiles compiles only what will
/// serve: compiles of replaced versions are abandoned, those waiting for a
/// slot when their turn comes and those running on the spot, and the last
/// version still goes optimized.
#[tokio::test(flavor = "multi_thread")]
pub async fn replaced_versions_are_not_compiled() {
    let n = node().function("hello", examples::HELLO).start();
    // More versions than the node's optimized compile slots, so some wait.
    let slots = wedge::control::catalogue::compiler::Compiler::slots();
    let versions = slots + 6;
    // Cranelift takes seconds over it; the upload's Winch compile, moments.
    let slow = slow_to_compile(512 << 10, 200);
    for i in 0..versions {
        let reply = upload(&n, "churn", "v1", padded(&slow, i as u32, 0)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    crate::swap::until_optimized(&n, "churn").await;
    let compiled = n
        .log_lines()
        .iter()
        .filter(|l| {
            l.contains("function=churn") && l.contains("tier=optimized") && l.contains("compiled")
        })
        .count();
    let abandoned = n
        .log_lines()
        .iter()
        .filter(|l| l.contains("compile abandoned"))
        .count();
    println!("{versions} versions: {compiled} optimized compiles, {abandoned} abandoned");
    assert!(
        compiled <= 2 && abandoned >= versions - 2,
        "{versions} versions: {compiled} optimized compiles, {abandoned} abandoned"
    );
}
