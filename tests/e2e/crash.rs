//! Crashes in the middle of a write to `functions/`: after a restart the node
//! serves the last good state it remembered in `store.dir`, and names the
//! broken file in its log and in the admin API.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, guests, raw_call};

use crate::node;

/// Waits until `GET path` answers 200 with `body`.
async fn until_body(n: &Node, path: &str, body: &str) {
    let started = Instant::now();
    loop {
        if raw_call(n.addr(), "GET", path).await == (200, body.to_string()) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{body} never served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `last_error` the admin API shows for `function`.
async fn last_error(n: &Node, function: &str) -> serde_json::Value {
    let reply = n
        .admin(Method::GET, "/v1/functions", None, Bytes::new())
        .await;
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    v["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == function)
        .map(|f| f["last_error"].clone())
        .unwrap_or_default()
}

/// An operator's `cp` of a new module over the old one is cut off by a
/// `kill -9`: the file holds half a module. The node that restarts serves the
/// last version that loaded, says which file is broken, and picks the module
/// up once it is whole.
#[tokio::test(flavor = "multi_thread")]
pub async fn half_written_module_serves_the_last_good_version() {
    let mut n = node().function("f", guests::SWAP_A).start();
    until_body(&n, "/f", "A").await;
    let target = n.dir().join("functions/f/v1.wasm");
    let b = std::fs::read(guests::SWAP_B).unwrap();
    std::fs::write(&target, &b[..b.len() / 2]).unwrap();
    n.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("cannot load") && l.contains("function=f")
    })
    .expect("the half module is refused while running");
    until_body(&n, "/f", "A").await;

    n.kill();
    n.restart();
    until_body(&n, "/f", "A").await;
    let line = n
        .wait_for_log(Duration::from_secs(5), |l| l.contains("last good state"))
        .expect("the fallback is logged");
    assert!(line.contains("functions/f/v1.wasm"), "{line}");
    let error = last_error(&n, "f").await;
    assert!(
        error["path"]
            .as_str()
            .unwrap()
            .ends_with("functions/f/v1.wasm"),
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("last good state"),
        "{error}"
    );

    std::fs::write(&target, &b).unwrap();
    until_body(&n, "/f", "B").await;
    assert_eq!(last_error(&n, "f").await, serde_json::Value::Null);
}

/// A garbage `deployment.toml` at start-up does not make the function
/// disappear: the remembered deployment serves, and the file is named.
#[tokio::test(flavor = "multi_thread")]
pub async fn garbage_deployment_serves_the_last_good_state() {
    let b = node()
        .version("f", "v1", guests::SWAP_A)
        .version("f", "v2", guests::SWAP_B);
    std::fs::write(
        b.functions_dir().join("f/deployment.toml"),
        "stable = \"v1\"\n",
    )
    .unwrap();
    let mut n = b.start();
    until_body(&n, "/f", "A").await;
    n.kill();
    std::fs::write(
        n.dir().join("functions/f/deployment.toml"),
        b"\x00\x13garbage \xff\xfe",
    )
    .unwrap();
    n.restart();
    until_body(&n, "/f", "A").await;
    let error = last_error(&n, "f").await;
    assert!(
        error["path"]
            .as_str()
            .unwrap()
            .ends_with("functions/f/deployment.toml"),
        "{error}"
    );
}
