//! The key-value store on a disk that fills up and frees again. The node runs
//! in its own mount namespace with `store.dir` on a small tmpfs, which the
//! test fills through `/proc/<pid>/root`. Needs root (CAP_SYS_ADMIN), as the
//! CI machine has.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{Node, raw_call};

use crate::node;

const INITIAL: i64 = 1_000_000;

/// One reservation: whether it was acknowledged.
async fn reserve(n: &Node) -> bool {
    raw_call(n.addr(), "POST", "/inventory/sku-1/reserve?qty=1")
        .await
        .0
        == 200
}

async fn ready(n: &Node) -> u16 {
    n.admin(Method::GET, "/readyz", None, Bytes::new())
        .await
        .status
        .as_u16()
}

/// Fills the file system holding `dir` with a file until it is full.
fn fill(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    loop {
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    // Whatever partial chunk fitted is there; the disk is full.
    let _ = file.sync_all();
    path
}

/// Writes fail cleanly while the disk is full and `/readyz` says so; once
/// space returns the store recovers by itself, with no restart, and every
/// acknowledged reservation is in the stock.
#[tokio::test(flavor = "multi_thread")]
pub async fn full_disk_then_freed() {
    let b = node().example("inventory");
    let store = b.dir().join("data");
    std::fs::create_dir_all(&store).unwrap();
    let n = b
        .wrapper(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs -o size=24m wedge-store \"$0\" && exec \"$@\"",
            store.to_str().unwrap(),
        ])
        .start();
    let seeded = n
        .send(
            Method::PUT,
            "/inventory/sku-1",
            &[],
            Bytes::from(INITIAL.to_string()),
        )
        .await;
    assert_eq!(seeded.status, 200, "{}", seeded.text());
    let mut acknowledged = 0i64;
    for _ in 0..50 {
        assert!(reserve(&n).await);
        acknowledged += 1;
    }

    // The node's view of `store.dir`: the tmpfs in its mount namespace.
    let inside =
        PathBuf::from(format!("/proc/{}/root", n.pid())).join(store.strip_prefix("/").unwrap());
    let filler = fill(&inside);
    // sled writes into space its files already hold until it needs more.
    let mut refused = 0;
    let filled = Instant::now();
    while refused < 20 && filled.elapsed() < Duration::from_secs(30) {
        match reserve(&n).await {
            true => acknowledged += 1,
            false => refused += 1,
        }
    }
    assert!(refused > 0, "writes fail on a full disk");
    assert_eq!(ready(&n).await, 503, "/readyz says the store cannot write");
    let errors = n.metric("wedge_store_errors_total").await.unwrap();
    assert!(errors >= 1.0, "{errors}");
    assert_eq!(n.metric("wedge_store_ready").await, Some(0.0));
    assert_eq!(
        raw_call(n.addr(), "GET", "/hello-does-not-exist").await.0,
        404,
        "the node serves"
    );

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    while ready(&n).await != 200 {
        assert!(
            freed.elapsed() < Duration::from_secs(20),
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = freed.elapsed();
    for _ in 0..50 {
        assert!(reserve(&n).await, "writes succeed again");
        acknowledged += 1;
    }
    let stock = crate::kv::stock(&n, "sku-1").await;
    let lost = stock - (INITIAL - acknowledged);
    println!(
        "disk full then freed: {acknowledged} writes acknowledged, {refused} refused, {lost} lost; ready again {recovered:?} after space returned"
    );
    assert!(
        lost <= 0,
        "acknowledged reservations lost: stock {stock}, acknowledged {acknowledged}"
    );
    assert!(
        stock >= INITIAL - acknowledged - refused,
        "stock {stock} below what was ever asked for"
    );
    assert_eq!(n.metric("wedge_store_ready").await, Some(1.0));
}
