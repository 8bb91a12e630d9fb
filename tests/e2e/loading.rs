//! Module validation: imports outside the guest ABI are refused, by `wedge serve`
//! and by `wedge check`, and name the import.

use std::process::Command;
use std::time::Duration;

use wedge_test_harness::{examples, guests};

use crate::node;

/// A module importing `env::launch_missiles` is refused with the import named;
/// the other functions serve.
#[tokio::test(flavor = "multi_thread")]
pub async fn forbidden() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("evil", guests::FORBIDDEN)
        .start();
    let line = n
        .wait_for_log(Duration::from_secs(5), |l| l.contains("forbidden import"))
        .expect("load error logged");
    assert!(line.contains("env::launch_missiles"), "{line}");
    assert!(line.contains("evil"), "names the function: {line}");
    assert!(line.contains("v1.wasm"), "names the file: {line}");
    assert_eq!(n.get("/evil").await.status, 503);
    assert_eq!(n.get("/hello").await.status, 200);

    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .args(["check", guests::FORBIDDEN])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("forbidden import `env::launch_missiles`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
}

/// `wedge check` on a good module prints its imports, size and hash.
#[test]
fn check_prints_imports_size_and_hash() {
    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .args(["check", examples::HELLO])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let size = std::fs::metadata(examples::HELLO).unwrap().len();
    assert!(
        stdout.contains(&format!("size:   {size} bytes")),
        "{stdout}"
    );
    assert!(
        stdout.contains("wasi_snapshot_preview1::fd_write (func)"),
        "{stdout}"
    );
    let sha = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sha256: "))
        .expect("hash line");
    assert_eq!(sha.len(), 64);
    assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
}

/// `wedge check` on something that is not wasm fails with one line.
#[test]
fn check_refuses_garbage() {
    let dir = tempfile_dir();
    let path = dir.join("junk.wasm");
    std::fs::write(&path, b"definitely not wasm").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("not a valid WebAssembly module"),
        "{stderr}"
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wedge-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A bad `wedge.toml` is refused with the unknown key named.
#[test]
fn bad_config_names_the_key() {
    let dir = tempfile_dir();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_inflite = 5\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wedge"))
        .arg("serve")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_inflite"), "{stderr}");
}

/// A broken `function.toml` keeps that function out, names the key and the file,
/// and leaves the others serving.
#[tokio::test(flavor = "multi_thread")]
pub async fn bad_function_toml_is_named() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("typo", examples::HELLO)
        .function_toml("typo", "rout = \"/typo\"\n")
        .start();
    let line = n
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("cannot load") && l.contains("typo")
        })
        .expect("load error logged");
    assert!(line.contains("rout"), "names the key: {line}");
    assert!(line.contains("function.toml"), "names the file: {line}");
    assert_eq!(n.get("/typo").await.status, 404);
    assert_eq!(n.get("/hello").await.status, 200);
}

/// Two functions on one route: the first by name keeps it, the clash is logged.
#[tokio::test(flavor = "multi_thread")]
pub async fn route_clash_is_refused() {
    let n = node()
        .function("alpha", guests::ENV_DUMP)
        .function_toml("alpha", "route = \"/shared\"")
        .function("beta", guests::ENV_DUMP)
        .function_toml("beta", "route = \"/shared\"")
        .start();
    let line = n
        .wait_for_log(Duration::from_secs(5), |l| l.contains("already taken"))
        .expect("clash logged");
    assert!(line.contains("beta") && line.contains("alpha"), "{line}");
    let text = n.get("/shared").await.text();
    assert!(text.contains("ENV WEDGE_FUNCTION=alpha"), "{text}");
}
