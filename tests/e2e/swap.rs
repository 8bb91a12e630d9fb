//! Live swap: modules change under load without a failed request, requests in
//! flight finish on the module they started with, and bad changes change nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wedge_test_harness::{Node, examples, guests, raw_call};

use crate::node;

/// The body of `GET path`, or the whole reply when it is not a 200.
pub(crate) async fn body(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    match raw_call(addr, "GET", path).await {
        (200, body) => Ok(body),
        (status, body) => Err(format!("{status}: {body}")),
    }
}

/// Waits until `GET path` answers `expected`; how long that took.
pub(crate) async fn until_serving(n: &Node, path: &str, expected: &str) -> Duration {
    let started = Instant::now();
    loop {
        if body(n.addr(), path).await.as_deref() == Ok(expected) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{expected} never served"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until `GET path` is answered by `version` (its `x-wedge-version`).
pub(crate) async fn until_serving_version(n: &Node, path: &str, version: &str) {
    let started = Instant::now();
    while n.get(path).await.header("x-wedge-version") != Some(version) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{version} never served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Replaces `target` by writing a temporary file next to it and renaming it.
pub(crate) fn replace_by_rename(target: &Path, wasm: &str) {
    let tmp = target.with_extension("uploading");
    std::fs::copy(wasm, &tmp).unwrap();
    std::fs::rename(&tmp, target).unwrap();
}

/// Replaces `target` in place: truncate, then write.
pub(crate) fn replace_in_place(target: &Path, wasm: &str) {
    std::fs::write(target, std::fs::read(wasm).unwrap()).unwrap();
}

/// Eight clients hammer a function while its module is swapped 60 times between
/// two builds, half by rename and half in place: no request fails, every answer
/// comes from one of the builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn swaps_under_load() {
    let n = node().function("swap", guests::SWAP_A).start();
    let target = n.dir().join("functions/swap/v1.wasm");
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (stop, served, addr) = (stop.clone(), served.clone(), n.addr());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match body(addr, "/swap").await {
                        Ok(b) if b == "A" || b == "B" => served.fetch_add(1, Ordering::Relaxed),
                        other => panic!("a request failed during swaps: {other:?}"),
                    };
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for i in 0..60 {
        let (wasm, expected) = if i % 2 == 0 {
            (guests::SWAP_B, "B")
        } else {
            (guests::SWAP_A, "A")
        };
        if i % 4 < 2 {
            replace_by_rename(&target, wasm);
        } else {
            replace_in_place(&target, wasm);
        }
        latencies.push(until_serving(&n, "/swap", expected).await);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "60 swaps under load: {} requests served, write-to-serving median {median:?}, max {:?}",
        served.load(Ordering::Relaxed),
        latencies.last().unwrap()
    );
    assert!(served.load(Ordering::Relaxed) > 60);
}

/// A request running when its module is swapped completes with the old
/// module's answer; requests after the swap get the new one.
#[tokio::test(flavor = "multi_thread")]
pub async fn in_flight_request_keeps_its_module() {
    let n = node().function("swap", guests::SWAP_A).start();
    let addr = n.addr();
    let slow = tokio::spawn(async move { body(addr, "/swap?ms=1500").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    replace_by_rename(&n.dir().join("functions/swap/v1.wasm"), guests::SWAP_B);
    until_serving(&n, "/swap", "B").await;
    assert_eq!(slow.await.unwrap().as_deref(), Ok("A"));
}

/// A broken module, a forbidden import or bad TOML changes nothing that serves;
/// the error names the file.
#[tokio::test(flavor = "multi_thread")]
pub async fn bad_changes_keep_the_last_good_state() {
    let n = node().function("swap", guests::SWAP_A).start();
    let dir = n.dir().join("functions/swap");
    let cases: [(&str, &dyn Fn()); 3] = [
        ("v1.wasm", &|| {
            std::fs::write(dir.join("v1.wasm"), b"\0asm\x01\0\0\0garbage").unwrap()
        }),
        ("v1.wasm", &|| {
            replace_by_rename(&dir.join("v1.wasm"), guests::FORBIDDEN)
        }),
        ("function.toml", &|| {
            std::fs::write(dir.join("function.toml"), "rout = \"/x\"").unwrap()
        }),
    ];
    for (file, break_it) in cases {
        let seen = n.log_lines().len();
        break_it();
        let line = n
            .wait_for_log_after(seen, Duration::from_secs(5), |l| {
                l.contains("cannot load") && l.contains(file)
            })
            .unwrap_or_else(|| panic!("no error for {file}"));
        assert!(line.contains("swap"), "{line}");
        assert_eq!(
            body(n.addr(), "/swap").await.as_deref(),
            Ok("A"),
            "still serving after {file}"
        );
    }
    let _ = std::fs::remove_file(dir.join("function.toml"));
    replace_by_rename(&dir.join("v1.wasm"), guests::SWAP_B);
    until_serving(&n, "/swap", "B").await;
}

/// A function directory created while `n` runs serves; removed, it is gone.
async fn a_function_comes_and_goes(n: &Node) {
    let dir = n.dir().join("functions/later");
    std::fs::create_dir_all(&dir).unwrap();
    replace_by_rename(&dir.join("v1.wasm"), guests::SWAP_A);
    until_serving(n, "/later", "A").await;
    std::fs::remove_dir_all(&dir).unwrap();
    let started = Instant::now();
    while n.get("/later").await.status != 404 {
        assert!(started.elapsed() < Duration::from_secs(10), "never removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// New functions appear and removed ones disappear without a restart.
#[tokio::test(flavor = "multi_thread")]
pub async fn functions_come_and_go() {
    let n = node().function("hello", examples::HELLO).start();
    assert_eq!(n.get("/later").await.status, 404);
    a_function_comes_and_goes(&n).await;
}

/// `wedge serve` run as a new user runs it, in its directory with the default
/// `./wedge.toml` naming `functions` relative to it, sees the directory
/// change: a new version, a new function, a removed one.
#[tokio::test(flavor = "multi_thread")]
pub async fn a_node_run_from_its_directory_sees_changes() {
    let n = node()
        .in_its_directory()
        .function("swap", guests::SWAP_A)
        .start();
    until_serving(&n, "/swap", "A").await;
    replace_by_rename(&n.dir().join("functions/swap/v2.wasm"), guests::SWAP_B);
    until_serving(&n, "/swap", "B").await;
    a_function_comes_and_goes(&n).await;
}

/// A restart with 20 unchanged functions compiles nothing: every module comes
/// from the compiled-module cache.
#[tokio::test(flavor = "multi_thread")]
pub async fn restart_compiles_nothing() {
    let b = node();
    for i in 0..20 {
        // Distinct bytes per function, so each is its own cache entry.
        let name = format!("f{i:02}");
        let dir = b.functions_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = std::fs::read(examples::HELLO).unwrap();
        // A custom section (id 0) named after the function.
        let payload = [&[name.len() as u8][..], name.as_bytes()].concat();
        bytes.extend_from_slice(&[0, payload.len() as u8]);
        bytes.extend_from_slice(&payload);
        std::fs::write(dir.join("v1.wasm"), bytes).unwrap();
    }
    let mut n = b.start();
    let first = n
        .wait_for_log(Duration::from_secs(5), |l| l.contains("functions loaded"))
        .unwrap();
    for i in 0..20 {
        until_optimized(&n, &format!("f{i:02}")).await;
    }
    assert!(
        first.contains("functions=0") && first.contains("compiling=20"),
        "{first}"
    );
    n.terminate();
    n.expect_exit(Duration::from_secs(10));
    n.restart();
    let second = n
        .wait_for_log(Duration::from_secs(5), |l| l.contains("functions loaded"))
        .unwrap();
    eprintln!("restart: {second}");
    assert!(second.contains("functions=20"), "{second}");
    assert!(
        second.contains("compiling=0") && second.contains("cached=20"),
        "{second}"
    );
    assert_eq!(n.get("/f07").await.text(), "Hello from wedge!\n");
}

/// A live change that makes one function claim another's route is refused:
/// both keep serving as before, and the clash is logged with the file.
#[tokio::test(flavor = "multi_thread")]
pub async fn route_clash_on_reload_changes_nothing() {
    let n = node()
        .function("one", guests::SWAP_A)
        .function("two", guests::SWAP_B)
        .start();
    let seen = n.log_lines().len();
    std::fs::write(
        n.dir().join("functions/two/function.toml"),
        "route = \"/one\"",
    )
    .unwrap();
    let line = n
        .wait_for_log_after(seen, Duration::from_secs(5), |l| {
            l.contains("already taken")
        })
        .expect("clash logged");
    assert!(
        line.contains("function.toml") && line.contains("two"),
        "{line}"
    );
    assert_eq!(body(n.addr(), "/one").await.as_deref(), Ok("A"));
    assert_eq!(body(n.addr(), "/two").await.as_deref(), Ok("B"));
}

/// One change is one swap: re-reads of unchanged files (wedge's own
/// `deployment.toml` writes included) swap nothing.
#[tokio::test(flavor = "multi_thread")]
pub async fn one_change_is_one_swap() {
    let n = node().function("swap", guests::SWAP_A).start();
    replace_by_rename(&n.dir().join("functions/swap/v1.wasm"), guests::SWAP_B);
    until_serving(&n, "/swap", "B").await;
    // B serves from baseline code first; its optimized code is one more swap.
    until_optimized(&n, "swap").await;
    let before = swaps(&n).await;
    // Touch without changing: the same bytes again, and a no-op deployment.
    replace_by_rename(&n.dir().join("functions/swap/v1.wasm"), guests::SWAP_B);
    let up = n
        .admin(
            http::Method::PUT,
            "/v1/functions/swap/deployment",
            None,
            bytes::Bytes::from_static(br#"{"stable":"v1"}"#),
        )
        .await;
    assert_eq!(up.status, 200, "{}", up.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The deployment.toml that pinned v1 is a real change; the rest is not.
    assert_eq!(swaps(&n).await, before + 1.0);
}

/// `wedge_module_swaps_total` of function `swap`.
async fn swaps(n: &Node) -> f64 {
    n.metric(r#"wedge_module_swaps_total{function="swap"}"#)
        .await
        .unwrap_or(0.0)
}

/// The code each loaded version of `function` serves from, as the admin API
/// lists it: `baseline` or `optimized`.
pub async fn tiers(n: &Node, function: &str) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(
        &n.admin(
            http::Method::GET,
            "/v1/functions",
            None,
            bytes::Bytes::new(),
        )
        .await
        .text(),
    )
    .unwrap();
    listed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == function)
        .flat_map(|f| f["versions"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["tier"].as_str().map(str::to_string))
        .collect()
}

/// Waits until every loaded version of `function` serves optimized code.
pub async fn until_optimized(n: &Node, function: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let tiers = tiers(n, function).await;
        if !tiers.is_empty() && tiers.iter().all(|t| t == "optimized") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{function} still serves {tiers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
