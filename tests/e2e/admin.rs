//! The admin API and the CLI's client commands against a live node.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, guests};

use crate::node;

async fn functions(n: &Node) -> serde_json::Value {
    let reply = n
        .admin(Method::GET, "/v1/functions", Some("s3cret"), Bytes::new())
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    serde_json::from_slice(&reply.body).unwrap()
}

fn cli(n: &Node, args: &[&str]) -> (bool, String, String) {
    let out = n.cli(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every route but /healthz needs the bearer token.
#[tokio::test(flavor = "multi_thread")]
pub async fn token_is_required() {
    let n = node()
        .admin_token("s3cret")
        .function("f", guests::SWAP_A)
        .start();
    assert_eq!(
        n.admin(Method::GET, "/healthz", None, Bytes::new())
            .await
            .status,
        200
    );
    for path in ["/v1/functions", "/metrics", "/readyz"] {
        let none = n.admin(Method::GET, path, None, Bytes::new()).await;
        assert_eq!(none.status, 401, "{path}");
        assert_eq!(none.header("www-authenticate"), Some("Bearer"));
        assert_eq!(
            n.admin(Method::GET, path, Some("wrong"), Bytes::new())
                .await
                .status,
            401,
            "{path}"
        );
        assert_eq!(
            n.admin(Method::GET, path, Some("s3cret"), Bytes::new())
                .await
                .status,
            200,
            "{path}"
        );
    }
    // The scheme is case-insensitive, as every HTTP authentication scheme is.
    for scheme in ["bearer", "BEARER"] {
        let reply = wedge_test_harness::raw_request(
            n.admin_addr(),
            format!(
                "GET /v1/functions HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} s3cret\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
            std::time::Duration::from_secs(2),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{scheme}: {reply}");
    }
    let upload = n
        .admin(
            Method::PUT,
            "/v1/functions/f/versions/v2",
            Some("nope"),
            Bytes::from_static(b"\0asm"),
        )
        .await;
    assert_eq!(upload.status, 401);
    assert!(!n.dir().join("functions/f/v2.wasm").exists());
}

/// An admin API beyond loopback without a token is refused at start.
#[test]
fn public_admin_needs_a_token() {
    let dir = std::env::temp_dir().join(format!("wedge-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("wedge.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .args(["serve", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("token_file"), "{stderr}");
}

/// An upload with a forbidden import is refused with a 4xx naming it, and
/// changes nothing.
#[tokio::test(flavor = "multi_thread")]
pub async fn upload_of_forbidden_import_changes_nothing() {
    let n = node()
        .admin_token("s3cret")
        .function("f", guests::SWAP_A)
        .start();
    let module = Bytes::from(std::fs::read(guests::FORBIDDEN).unwrap());
    let reply = n
        .admin(
            Method::PUT,
            "/v1/functions/f/versions/v2",
            Some("s3cret"),
            module,
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.text().contains("env::launch_missiles"),
        "{}",
        reply.text()
    );
    let dir = n.dir().join("functions/f");
    assert!(!dir.join("v2.wasm").exists());
    assert!(!dir.join("deployment.toml").exists());
    assert_eq!(n.get("/f").await.text(), "A");
    let listed = functions(&n).await;
    assert_eq!(
        listed["functions"][0]["versions"].as_array().unwrap().len(),
        1
    );
}

/// Upload never moves traffic; deployment, promote and rollback do, as the spec says.
#[tokio::test(flavor = "multi_thread")]
pub async fn upload_deploy_promote_rollback() {
    let n = node()
        .admin_token("s3cret")
        .function("f", guests::SWAP_A)
        .start();
    let t = Some("s3cret");
    let b = Bytes::from(std::fs::read(guests::SWAP_B).unwrap());
    let up = n
        .admin(Method::PUT, "/v1/functions/f/versions/v2", t, b)
        .await;
    assert_eq!(up.status, 200, "{}", up.text());
    let pinned = std::fs::read_to_string(n.dir().join("functions/f/deployment.toml")).unwrap();
    assert!(
        pinned.contains("stable = \"v1\""),
        "the upload pinned the old stable: {pinned}"
    );
    for _ in 0..10 {
        assert_eq!(n.get("/f").await.text(), "A", "an upload moves no traffic");
    }

    let deploy = |body: &'static str| {
        n.admin(
            Method::PUT,
            "/v1/functions/f/deployment",
            t,
            Bytes::from_static(body.as_bytes()),
        )
    };
    assert_eq!(
        deploy(r#"{"stable":"v1","canary":"v9","canary_percent":10}"#)
            .await
            .status,
        422
    );
    let set = deploy(r#"{"stable":"v1","canary":"v2","canary_percent":100}"#).await;
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(n.get("/f").await.text(), "B");

    let rolled = n
        .admin(Method::POST, "/v1/functions/f/rollback", t, Bytes::new())
        .await;
    assert_eq!(rolled.status, 200, "{}", rolled.text());
    assert_eq!(
        n.get("/f").await.text(),
        "A",
        "with a canary, rollback gives it 0 %"
    );

    assert_eq!(
        deploy(r#"{"stable":"v1","canary":"v2","canary_percent":50}"#)
            .await
            .status,
        200
    );
    let promoted = n
        .admin(Method::POST, "/v1/functions/f/promote", t, Bytes::new())
        .await;
    assert_eq!(promoted.status, 200, "{}", promoted.text());
    for _ in 0..10 {
        assert_eq!(
            n.get("/f").await.text(),
            "B",
            "promote: the canary is stable at 100 %"
        );
    }
    let back = n
        .admin(Method::POST, "/v1/functions/f/rollback", t, Bytes::new())
        .await;
    assert_eq!(back.status, 200, "{}", back.text());
    for _ in 0..10 {
        assert_eq!(
            n.get("/f").await.text(),
            "A",
            "without a canary, rollback restores the old stable"
        );
    }
    let again = n
        .admin(Method::POST, "/v1/functions/f/rollback", t, Bytes::new())
        .await;
    assert_eq!(again.status, 409, "nothing left to roll back");
    assert_eq!(
        n.admin(Method::POST, "/v1/functions/f/promote", t, Bytes::new())
            .await
            .status,
        409
    );

    let listed = functions(&n).await;
    let f = &listed["functions"][0];
    assert_eq!(f["deployment"]["stable"], "v1");
    let v1 = f["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["label"] == "v1")
        .unwrap();
    assert!(v1["requests"].as_u64().unwrap() >= 20);
    assert_eq!(v1["sha256"].as_str().unwrap().len(), 64);
    let metrics = n
        .admin(Method::GET, "/metrics", t, Bytes::new())
        .await
        .text();
    assert!(
        metrics.contains("wedge_module_swaps_total{function=\"f\"}"),
        "{metrics}"
    );
}

/// The admin API shows a function's last load error.
#[tokio::test(flavor = "multi_thread")]
pub async fn last_error_is_shown() {
    let n = node()
        .admin_token("s3cret")
        .function("f", guests::SWAP_A)
        .start();
    std::fs::write(n.dir().join("functions/f/function.toml"), "rout = 1").unwrap();
    n.wait_for_log(Duration::from_secs(5), |l| l.contains("cannot load"))
        .unwrap();
    let listed = functions(&n).await;
    let error = &listed["functions"][0]["last_error"];
    assert!(
        error["message"].as_str().unwrap().contains("rout"),
        "{error}"
    );
    assert!(
        error["path"].as_str().unwrap().ends_with("function.toml"),
        "{error}"
    );
}

/// `wedge deploy`, `status`, `promote`, `rollback` and `kv` against a live node.
#[tokio::test(flavor = "multi_thread")]
pub async fn cli_deploy_and_status() {
    let n = node().admin_token("s3cret").example("inventory").start();
    let (ok, out, err) = cli(&n, &["deploy", "g", guests::SWAP_A]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with("deployed g v1 (sha256 ") && out.contains("as stable at 100%"),
        "{out}"
    );
    assert_eq!(n.get("/g").await.text(), "A");

    let (ok, out, err) = cli(&n, &["deploy", "g", guests::SWAP_B, "--canary", "10"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("deployed g v2") && out.contains("as canary at 10% (stable v1)"),
        "{out}"
    );

    let (ok, out, err) = cli(&n, &["status"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("g "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("/g") && line.contains("v1") && line.contains("v2 10%"),
        "{line}"
    );
    assert!(out.lines().any(|l| l.starts_with("inventory ")), "{out}");

    let (ok, out, err) = cli(&n, &["promote", "g"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "g: stable v2 at 100%");
    assert_eq!(n.get("/g").await.text(), "B");
    let (ok, out, _) = cli(&n, &["rollback", "g"]);
    assert!(ok);
    assert_eq!(out.trim(), "g: stable v1 at 100%");
    assert_eq!(n.get("/g").await.text(), "A");

    assert!(cli(&n, &["kv", "set", "inventory", "sku-9", "12"]).0);
    assert_eq!(
        n.get("/inventory/sku-9").await.text(),
        r#"{"sku":"sku-9","stock":12}"#
    );
    n.post("/inventory/sku-9/reserve?qty=2", "").await;
    let (ok, out, _) = cli(&n, &["kv", "get", "inventory", "sku-9"]);
    assert!(ok);
    assert_eq!(out.trim(), "10");
    assert!(cli(&n, &["kv", "del", "inventory", "sku-9"]).0);
    let (ok, _, err) = cli(&n, &["kv", "get", "inventory", "sku-9"]);
    assert!(!ok);
    assert_eq!(err.trim(), "error: no key `sku-9` in store `inventory`");

    let out = n.cli(&["status", "--admin", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot reach the admin API"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
