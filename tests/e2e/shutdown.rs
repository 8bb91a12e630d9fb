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
