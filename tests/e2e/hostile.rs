//! Hostile guests: none of them takes the host down or slows other functions
//! beyond their own limits.

use std::time::{Duration, Instant};

use wedge_test_harness::{Node, examples, get_status, guests};

use crate::node;

/// While `path` is being hammered by a hostile guest, hello keeps answering.
async fn hello_keeps_serving(n: &Node, hostile_path: &str, expect: u16, limit: Duration) {
    let hostile: Vec<_> = (0..4)
        .map(|_| {
            let (addr, path) = (n.addr(), hostile_path.to_string());
            tokio::spawn(async move { get_status(addr, &path).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..20 {
        let started = Instant::now();
        let reply = n.get("/hello").await;
        assert_eq!(reply.status, 200);
        assert!(
            started.elapsed() < limit,
            "hello took {:?} next to {hostile_path}",
            started.elapsed()
        );
    }
    for h in hostile {
        assert_eq!(h.await.unwrap(), expect, "{hostile_path}");
    }
    assert_eq!(n.get("/hello").await.status, 200, "host is still up");
}

/// An infinite loop is cut off at its timeout with 504, and other requests are
/// served meanwhile.
#[tokio::test(flavor = "multi_thread")]
pub async fn spin() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("spin", guests::SPIN)
        .function_toml("spin", "timeout = \"1s\"")
        .start();
    let started = Instant::now();
    assert_eq!(n.get("/spin").await.status, 504);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1800),
        "{took:?}"
    );
    // Hello answers well within the spinners' own limit while four of them run.
    hello_keeps_serving(&n, "/spin", 504, Duration::from_millis(900)).await;
}

/// Unbounded allocation hits the memory cap: a trap, 500.
#[tokio::test(flavor = "multi_thread")]
pub async fn hog() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("hog", guests::HOG)
        .function_toml("hog", "memory = \"16MiB\"")
        .start();
    assert_eq!(n.get("/hog").await.status, 500);
    n.wait_for_log(Duration::from_secs(5), |l| l.contains("kind=memory"))
        .expect("memory cap named in the log");
    hello_keeps_serving(&n, "/hog", 500, Duration::from_secs(2)).await;
}

/// Unbounded recursion exhausts the stack: a trap, 500.
#[tokio::test(flavor = "multi_thread")]
pub async fn recurse() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("recurse", guests::RECURSE)
        .start();
    assert_eq!(n.get("/recurse").await.status, 500);
    hello_keeps_serving(&n, "/recurse", 500, Duration::from_secs(2)).await;
}

/// Endless stdout streams and is cut at the response cap: the client sees
/// an abort, and the cut is counted.
#[tokio::test(flavor = "multi_thread")]
pub async fn flood() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("flood", guests::FLOOD)
        .function_toml("flood", "max_response = \"1MiB\"")
        .start();
    // The body streams once the guest outruns the client, and is cut at
    // the cap: the client sees an abort, never a whole response.
    let reply = n.stream("/flood", false).await;
    assert_eq!(reply.status, 200);
    assert!(reply.aborted());
    assert!(
        reply.body().len() <= 1 << 20,
        "{} bytes",
        reply.body().len()
    );
    hello_keeps_serving(&n, "/flood", 200, Duration::from_secs(2)).await;
    assert_eq!(
        n.metric(r#"wedge_stream_cuts_total{function="flood",cause="max_response"}"#)
            .await,
        Some(5.0)
    );
}

/// WASI calls with descriptors that do not exist answer `EBADF`; with pointers
/// outside guest memory, misaligned, or an exit code out of range, they trap
/// (500) and name the call in the log. The host stays up.
#[tokio::test(flavor = "multi_thread")]
pub async fn wasi_abuse() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("abuse", guests::WASI_ABUSE)
        .start();
    let reply = n.get("/abuse?descriptors").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text(),
        "write fd 0: 8\nwrite fd 7: 8\nread fd 1: 8\nread fd 9: 8\n"
    );
    for (case, call) in [
        ("wild-iovecs", "fd_write"),
        ("wild-buffer", "fd_write"),
        ("wild-out", "fd_write"),
        ("misaligned-out", "fd_write"),
        ("wild-environ", "environ_get"),
        ("wild-sizes", "args_sizes_get"),
        ("wild-stdin", "fd_read"),
    ] {
        let reply = n.get(&format!("/abuse?{case}")).await;
        assert_eq!(reply.status, 500, "{case}");
        let rid = reply
            .header("x-request-id")
            .expect("request id")
            .to_string();
        n.wait_for_log(Duration::from_secs(5), |l| {
            l.contains(&rid) && l.contains("kind=trap") && l.contains(&format!("WASI `{call}`"))
        })
        .unwrap_or_else(|| panic!("{case}: no trap naming {call} in the log"));
    }
    assert_eq!(n.get("/abuse?exit-200").await.status, 500);
    n.wait_for_log(Duration::from_secs(5), |l| {
        l.contains("invalid exit status")
    })
    .expect("the bad exit code named in the log");
    assert_eq!(n.get("/hello").await.status, 200, "host is still up");
}
