//! SIGTERM: stop accepting, finish in-flight requests, exit 0.

use std::time::Duration;

use wedge_test_harness::guests;

use crate::node;

/// A request running when SIGTERM arrives completes with its response; then the
/// process exits 0 and stops accepting.
#[tokio::test(flavor = "multi_thread")]
pub async fn in_flight_request_completes_across_sigterm() {
    let mut n = node().function("sleepy", guests::SLEEPY).start();
    let url = n.url("/sleepy?ms=1500");
    let addr = n.addr();
    let in_flight = tokio::spawn(async move {
        let uri: http::Uri = url.parse().unwrap();
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
            uri.path_and_query().unwrap()
        );
        wedge_test_harness::raw_request(addr, req.as_bytes(), Duration::from_secs(10)).await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    n.terminate();
    let reply = in_flight.await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("slept 1500ms\n"), "{reply}");
    let status = n.expect_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

/// Streams running at SIGTERM: one that ends within `shutdown_timeout` ends
/// whole; one that would go on longer is aborted when the time is up, so its
/// client sees a cut body, never a whole one. The process exits 0.
#[tokio::test(flavor = "multi_thread")]
pub async fn streams_run_until_shutdown_timeout() {
    let mut n = node()
        .server("shutdown_timeout = \"1500ms\"")
        .function("events", guests::EVENTS)
        .function_toml("events", "max_stream = \"60s\"")
        .start();
    let short = {
        let n = &n;
        async move { n.stream("/events?n=8&ms=100", false).await }
    };
    let long = {
        let n = &n;
        async move { n.stream("/events?n=100&ms=100", true).await }
    };
    let signal = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        n.terminate();
    };
    let (short, long, ()) = tokio::join!(short, long, signal);
    assert_eq!(short.end, Ok(()), "the short stream ends whole");
    assert_eq!(short.events().len(), 8);
    assert!(long.aborted(), "the long stream is cut, not ended");
    let got = long.events().len();
    assert!((10..40).contains(&got), "{got} events before the cut");
    let status = n.expect_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
