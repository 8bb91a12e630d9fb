//! Reactor handlers: `_initialize` runs once when the module loads, wedge
//! snapshots the result, and every request starts from the snapshot and
//! calls `wedge_handle`. What initialization may not touch (stores, the
//! request) fails the load with the reason, and an initializer that never
//! returns is stopped by the compile timeout.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{examples, guests};

use crate::node;

/// The `name=value` fields of a `reactor` guest's answer.
fn fields(text: &str) -> std::collections::HashMap<String, String> {
    text.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The constructor ran once, before any request, and its work is in every
/// request's instance; each request starts fresh and sees its own request.
#[tokio::test(flavor = "multi_thread")]
pub async fn reactor() {
    let n = node().function("r", guests::C_REACTOR).start();
    let first = fields(&n.get("/r?a=1").await.text());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = n
        .send(Method::POST, "/r?b=2", &[], Bytes::from_static(b"hello"))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let second = fields(&reply.text());
    for f in [&first, &second] {
        assert_eq!(f["constructor_runs"], "1", "{f:?}");
        assert_eq!(
            f["handled"], "1",
            "a request starts from the snapshot: {f:?}"
        );
        assert_eq!(f["square12"], "144", "{f:?}");
    }
    assert_eq!(
        first["built_at"], second["built_at"],
        "the constructor ran at load, not per request"
    );
    assert_eq!(
        (first["method"].as_str(), first["query"].as_str()),
        ("GET", "a=1")
    );
    assert_eq!(
        (
            second["method"].as_str(),
            second["query"].as_str(),
            second["body"].as_str()
        ),
        ("POST", "b=2", "hello")
    );

    let check = std::process::Command::new(env!("CARGO_BIN_EXE_wedge"))
        .args(["check", guests::C_REACTOR])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(out.contains("shape:  reactor"), "{out}");
}

/// Uploads `wasm` as a new version of a serving function and expects it
/// refused with a reason containing each of `reason`, the old version still
/// serving. The compile timeout is short, for the initializer that never
/// returns, but long enough for v1's own compile while the other tests
/// compile too (the debug build's compile child took over 3 s).
async fn refused_at_load(wasm: &str, reason: &[&str]) {
    let n = node()
        .admin_token("t")
        .functions_setting("compile_timeout = \"10s\"")
        .function("f", guests::SWAP_A)
        .start();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while n.get("/f").await.text() != "A" {
        assert!(std::time::Instant::now() < deadline, "v1 never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let module = Bytes::from(std::fs::read(wasm).unwrap());
    let reply = n
        .admin(
            Method::PUT,
            "/v1/functions/f/versions/v2",
            Some("t"),
            module,
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    for part in reason {
        assert!(reply.text().contains(part), "{part}: {}", reply.text());
    }
    assert!(!n.dir().join("functions/f/v2.wasm").exists());
    assert_eq!(n.get("/f").await.text(), "A");
}

#[tokio::test(flavor = "multi_thread")]
pub async fn init_store() {
    refused_at_load(
        guests::C_INIT_STORE,
        &["`wedge::kv_open` was called during initialization"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
pub async fn init_stdin() {
    refused_at_load(
        guests::C_INIT_STDIN,
        &["fd_read", "stdin", "during initialization"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
pub async fn init_spin() {
    refused_at_load(guests::C_INIT_SPIN, &["compile_timeout"]).await;
}

/// The Go SDK's reactor: the Go runtime starts once at load, and every
/// request still reads its own request.
#[tokio::test(flavor = "multi_thread")]
pub async fn go_hello_is_a_reactor_and_reads_each_request() {
    let n = node().example("go-hello").start();
    for name in ["edge", "wedge", "gopher"] {
        let reply = n.get(&format!("/go-hello?name={name}")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), format!("Hello, {name}!\n"));
    }
    assert_eq!(n.get("/go-hello").await.text(), "Hello from wedge!\n");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_wedge"))
        .args(["check", examples::GO_HELLO])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(out.contains("shape:  reactor (`_initialize` once"), "{out}");
}

/// A `wedge_handle` that takes an argument is refused when the module
/// loads, with the export named, rather than failing every request.
#[tokio::test(flavor = "multi_thread")]
pub async fn a_handler_of_the_wrong_type_is_refused() {
    // (module (memory (export "memory") 1)
    //   (func (export "wedge_handle") (param i32)))
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(&[1, 5, 1, 0x60, 1, 0x7f, 0]); // type: (i32) -> ()
    wasm.extend_from_slice(&[3, 2, 1, 0]); // one function of that type
    wasm.extend_from_slice(&[5, 3, 1, 0, 1]); // one memory, one page
    let mut exports = vec![2];
    exports.push(6);
    exports.extend_from_slice(b"memory");
    exports.extend_from_slice(&[2, 0]);
    exports.push(12);
    exports.extend_from_slice(b"wedge_handle");
    exports.extend_from_slice(&[0, 0]);
    wasm.push(7);
    wasm.push(exports.len() as u8);
    wasm.extend_from_slice(&exports);
    wasm.extend_from_slice(&[10, 4, 1, 2, 0, 0x0b]); // its body: nothing
    let n = node()
        .admin_token("t")
        .function("f", guests::SWAP_A)
        .start();
    let reply = n
        .admin(
            Method::PUT,
            "/v1/functions/f/versions/v2",
            Some("t"),
            Bytes::from(wasm),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("`wedge_handle` must be a function that takes and returns nothing"),
        "{}",
        reply.text()
    );
    assert_eq!(n.get("/f").await.text(), "A");
}
