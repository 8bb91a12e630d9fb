//! Outbound HTTP against real origins on loopback addresses (hyper, plain and
//! TLS with a test CA) and a real DNS server whose answers the tests change:
//! the allow-list on URLs and on resolved addresses, timeouts inside the
//! request's deadline, the response cap, pooled connections, re-resolution
//! after a TTL, and the metrics and access log.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{DnsServer, Node, Origin, TestCa, guests};

use crate::node;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOOPBACK_2: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// `url` as a query value.
fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `fetch` guest's report of calling `url` `n` times, one line per call.
async fn fetch(n: &Node, url: &str, times: usize) -> Vec<String> {
    fetch_with(n, url, times, "").await
}

/// [`fetch`] with more of the guest's options (`&follow=1`, `&keep=1`).
async fn fetch_with(n: &Node, url: &str, times: usize, options: &str) -> Vec<String> {
    let reply = n
        .get(&format!("/fetch?url={}&n={times}{options}", encode(url)))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text().lines().map(str::to_string).collect()
}

/// A node serving the `fetch` guest with `outbound`, resolving names
/// through `dns`, with `extra` lines in `[outbound]`.
fn fetch_node(dns: &DnsServer, outbound: &[String], extra: &str, timeout: &str) -> Node {
    let list = outbound
        .iter()
        .map(|o| format!("{o:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    node()
        .function("fetch", guests::FETCH)
        .function_toml(
            "fetch",
            &format!("timeout = \"{timeout}\"\noutbound = [{list}]\n"),
        )
        .table(&format!("[outbound]\ndns = [\"{}\"]\n{extra}", dns.addr()))
        .start()
}

/// Must-show 1, the allow-list: a listed origin answers, by name and by
/// address; an unlisted one is denied, and so is a listed name that resolves
/// to an address no entry names (loopback, the metadata service). A denied
/// call never reaches the origin. The calls are counted in the metrics and
/// timed in the access log.
#[tokio::test(flavor = "multi_thread")]
pub async fn listed_origins_answer_and_nothing_else() {
    let origin = Origin::start(LOOPBACK).await;
    let other = Origin::start(LOOPBACK_2).await;
    let dns = DnsServer::start().await;
    dns.set("origin.test", Ipv4Addr::LOCALHOST, 60);
    dns.set("rebound.test", Ipv4Addr::new(127, 0, 0, 2), 60);
    dns.set("metadata.test", Ipv4Addr::new(169, 254, 169, 254), 60);
    let n = fetch_node(
        &dns,
        &[
            "http://origin.test:*".into(),
            "http://127.0.0.1:*".into(),
            "http://rebound.test:*".into(),
            "http://metadata.test:*".into(),
        ],
        "",
        "5s",
    );
    let port = origin.port();

    let by_name = fetch(&n, &format!("http://origin.test:{port}/hello"), 1).await;
    assert_eq!(by_name, ["200 20"], "hello from 127.0.0.1");
    let by_address = fetch(&n, &format!("http://127.0.0.1:{port}/hello"), 1).await;
    assert_eq!(by_address, ["200 20"]);
    let accepted = origin.accepts();

    for (url, why) in [
        (
            format!("http://127.0.0.2:{}/hello", other.port()),
            "not in the function's outbound list",
        ),
        (
            format!("http://unlisted.test:{port}/hello"),
            "not in the function's outbound list",
        ),
        (
            format!("https://origin.test:{port}/hello"),
            "not in the function's outbound list",
        ),
        (
            format!("http://rebound.test:{}/hello", other.port()),
            "resolves to 127.0.0.2",
        ),
        (
            format!("http://metadata.test:{port}/hello"),
            "resolves to 169.254.169.254",
        ),
    ] {
        let lines = fetch(&n, &url, 1).await;
        assert!(
            lines[0].starts_with("error Denied") && lines[0].contains(why),
            "{url}: {lines:?}"
        );
    }
    assert_eq!(other.accepts(), 0, "a denied call reached its address");
    assert_eq!(origin.accepts(), accepted);

    let bad = fetch(&n, "not a url", 1).await;
    assert!(bad[0].starts_with("error Invalid"), "{bad:?}");

    // Redirects are followed only when asked.
    let redirect = format!("http://origin.test:{port}/redirect");
    assert_eq!(fetch(&n, &redirect, 1).await, ["302 0"]);
    assert_eq!(fetch_with(&n, &redirect, 1, "&follow=1").await, ["200 20"]);

    let metrics = n
        .admin(Method::GET, "/metrics", None, Bytes::new())
        .await
        .text();
    for line in [
        // The call by name, and the redirect followed to its end.
        "wedge_outbound_requests_total{function=\"fetch\",origin=\"http://origin.test:*\",status=\"200\"} 2",
        "wedge_outbound_requests_total{function=\"fetch\",origin=\"http://origin.test:*\",status=\"302\"} 1",
        "wedge_outbound_requests_total{function=\"fetch\",origin=\"http://rebound.test:*\",status=\"denied\"} 1",
        "wedge_outbound_request_duration_seconds_count{function=\"fetch\",origin=\"http://127.0.0.1:*\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let access = n
        .wait_for_log(Duration::from_secs(5), |l| {
            l.contains("wedge::access") && l.contains("/fetch")
        })
        .expect("an access event");
    let outbound_us: u64 = wedge_test_harness::field(&access, "outbound_us")
        .and_then(|v| v.parse().ok())
        .expect("outbound_us in the access event");
    assert!(outbound_us > 0, "{access}");
}

/// Must-show 1, limits: a stalled origin times out inside the request's
/// deadline and the guest still answers; an oversized body, with or without
/// a length, is `too_large`.
#[tokio::test(flavor = "multi_thread")]
pub async fn stalls_time_out_and_big_bodies_are_refused() {
    let origin = Origin::start(LOOPBACK).await;
    let dns = DnsServer::start().await;
    let n = fetch_node(
        &dns,
        &["http://127.0.0.1:*".into(), "https://127.0.0.1:*".into()],
        "max_response = \"64KiB\"\nmax_per_request = 3\nmax_calls_per_request = 5\ntls_timeout = \"300ms\"\n",
        "2s",
    );
    let base = format!("http://127.0.0.1:{}", origin.port());

    let started = Instant::now();
    let stalled = fetch(&n, &format!("{base}/stall"), 1).await;
    let took = started.elapsed();
    // The guest heard `timeout` with time left to answer: past its 2 s
    // deadline wedge would have answered 504 instead (`fetch` checks 200).
    assert!(stalled[0].starts_with("error Timeout"), "{stalled:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A server that takes the connection and never answers the handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let url = format!("https://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let hung = fetch(&n, &url, 1).await;
    assert!(
        hung[0].starts_with("error Timeout") && hung[0].contains("tls_timeout"),
        "{hung:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    for path in ["/big?n=100000", "/sized?n=100000"] {
        let big = fetch(&n, &format!("{base}{path}"), 1).await;
        assert!(big[0].starts_with("error TooLarge"), "{path}: {big:?}");
    }
    let fits = fetch(&n, &format!("{base}/big?n=65536"), 1).await;
    assert_eq!(fits, ["200 65536"]);

    // Responses held open count against max_per_request (3 here); calls in
    // all against max_calls_per_request (5).
    let lines = fetch_with(&n, &format!("{base}/hello"), 4, "&keep=1").await;
    assert_eq!(lines[..3], ["200 open"; 3]);
    assert!(
        lines[3].starts_with("error Busy") && lines[3].contains("max_per_request"),
        "{lines:?}"
    );
    let many = fetch(&n, &format!("{base}/hello"), 6).await;
    assert_eq!(many[..5], ["200 20"; 5]);
    assert!(
        many[5].starts_with("error Busy") && many[5].contains("max_calls_per_request"),
        "{many:?}"
    );
}

/// The node's own limit: past `max_inflight` open calls, all functions
/// together, a call is `busy` at once.
#[tokio::test(flavor = "multi_thread")]
pub async fn the_node_limits_open_calls() {
    let origin = Origin::start(LOOPBACK).await;
    let dns = DnsServer::start().await;
    let n = fetch_node(
        &dns,
        &["http://127.0.0.1:*".into()],
        "max_inflight = 2\n",
        "5s",
    );
    let url = format!("http://127.0.0.1:{}/hello", origin.port());
    let lines = fetch_with(&n, &url, 3, "&keep=1").await;
    assert_eq!(lines[..2], ["200 open"; 2]);
    assert!(
        lines[2].starts_with("error Busy") && lines[2].contains("max_inflight"),
        "{lines:?}"
    );
    // Calls held by a request end with it.
    assert_eq!(fetch(&n, &url, 2).await, ["200 20"; 2]);
}

/// Must-show 1, pooling and TLS: 200 calls in a row over plain HTTP, and 50
/// over TLS (a test CA in `ca_file`), each reuse a handful of connections.
/// A certificate from another CA fails the handshake with `tls`.
#[tokio::test(flavor = "multi_thread")]
pub async fn sequential_calls_reuse_pooled_connections() {
    let ca = TestCa::new();
    let plain = Origin::start(LOOPBACK).await;
    let tls = Origin::start_tls(LOOPBACK, &ca, &["origin.test"]).await;
    let stranger = Origin::start_tls(LOOPBACK, &TestCa::new(), &["origin.test"]).await;
    let dns = DnsServer::start().await;
    dns.set("origin.test", Ipv4Addr::LOCALHOST, 60);
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &ca.pem).unwrap();
    let n = fetch_node(
        &dns,
        &[
            "http://127.0.0.1:*".into(),
            "https://origin.test:*".into(),
            "https://127.0.0.1:*".into(),
        ],
        &format!("ca_file = {:?}\n", ca_file.path()),
        "10s",
    );

    let lines = fetch(&n, &format!("http://127.0.0.1:{}/hello", plain.port()), 200).await;
    assert_eq!(lines.len(), 200);
    assert!(lines.iter().all(|l| l == "200 20"), "{lines:?}");
    assert!(
        plain.accepts() <= 4,
        "{} connections for 200 calls",
        plain.accepts()
    );

    let lines = fetch(&n, &format!("https://origin.test:{}/hello", tls.port()), 50).await;
    assert!(lines.iter().all(|l| l == "200 20"), "{lines:?}");
    assert!(
        tls.accepts() <= 4,
        "{} TLS connections for 50 calls",
        tls.accepts()
    );

    let refused = fetch(
        &n,
        &format!("https://origin.test:{}/hello", stranger.port()),
        1,
    )
    .await;
    assert!(refused[0].starts_with("error Tls"), "{refused:?}");
    let wrong_name = fetch(&n, &format!("https://127.0.0.1:{}/hello", tls.port()), 1).await;
    assert!(wrong_name[0].starts_with("error Tls"), "{wrong_name:?}");
}

/// Must-show 1, DNS: a name whose answer changes is resolved again once its
/// TTL has passed, even while its pooled connection stays busy: calls move to
/// the new address.
#[tokio::test(flavor = "multi_thread")]
pub async fn names_are_resolved_again_after_their_ttl() {
    let first = Origin::start(LOOPBACK).await;
    let second = Origin::start_at((LOOPBACK_2, first.port()).into()).await;
    let dns = DnsServer::start().await;
    dns.set("moving.test", Ipv4Addr::LOCALHOST, 1);
    let n = fetch_node(
        &dns,
        &[
            "http://moving.test:*".into(),
            "http://127.0.0.1:*".into(),
            "http://127.0.0.2:*".into(),
        ],
        "",
        "10s",
    );
    let url = format!("http://moving.test:{}/hello", first.port());
    assert_eq!(fetch(&n, &url, 3).await, ["200 20"; 3]);
    assert_eq!((first.accepts(), second.accepts()), (1, 0));

    dns.set("moving.test", Ipv4Addr::new(127, 0, 0, 2), 1);
    // A call every 200 ms keeps the first connection from ever idling.
    let deadline = Instant::now() + Duration::from_secs(10);
    while second.accepts() == 0 {
        assert_eq!(fetch(&n, &url, 1).await, ["200 20"]);
        assert!(Instant::now() < deadline, "never re-resolved");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(first.accepts(), 1, "the first address got a new connection");
    assert!(dns.queries() >= 2, "{} DNS queries", dns.queries());
}
