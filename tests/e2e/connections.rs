//! Connections from clients that misbehave: idle, silent half-way through a
//! request head, too many, or not reading their responses. Each is cut off by
//! its limit or timeout while normal clients and the admin API are served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wedge_test_harness::{Node, examples, get_status, guests};

use crate::node;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `GET http://x<path>`: static `:method GET` and `:scheme http`,
/// then `:path` and `:authority` as literals.
fn get_block(path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x04, path.len() as u8];
    b.extend_from_slice(path.as_bytes());
    b.extend_from_slice(&[0x01, 1, b'x']);
    b
}

/// An HTTP/2 connection made by hand: the preface, empty SETTINGS, and `GET
/// path` on stream 1 when given, whose response it waits for.
async fn h2c(addr: SocketAddr, path: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    if let Some(path) = path {
        out.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &get_block(path),
        ));
    }
    s.write_all(&out).await.unwrap();
    if path.is_some() {
        assert_eq!(response_status(&mut s).await, Some(200));
    }
    s
}

/// Reads frames until the response HEADERS of stream 1; its `:status`, when
/// it is one of HPACK's static ones.
async fn response_status(s: &mut TcpStream) -> Option<u16> {
    loop {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.ok()?;
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if head[3] == HEADERS && stream == 1 {
            return match payload.first() {
                Some(0x88) => Some(200),
                Some(0x8d) => Some(404),
                _ => Some(0),
            };
        }
    }
}

/// Waits until the server closes `s`; how long that took, or `None` after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Lets this test process hold as many sockets as the test needs.
fn enough_file_descriptors(n: u64) {
    let limit = rlimit::increase_nofile_limit(n).unwrap();
    assert!(
        limit >= n,
        "this test needs {n} file descriptors, the limit is {limit}"
    );
}

/// Idle HTTP/2 connections, hundreds of them, cost nothing: `/hello` and the
/// admin API answer while they are held, and each is closed once it has been
/// idle for `idle_timeout`.
#[tokio::test(flavor = "multi_thread")]
pub async fn idle_connections_are_closed() {
    let count = crate::scale(300, 1100);
    enough_file_descriptors(4096);
    let n = node()
        .server(&format!("idle_timeout = \"{}s\"", crate::scale(3, 10)))
        .table("[server.per_ip]\nmax_connections = 2000")
        .function("hello", examples::HELLO)
        .start();
    let mut idle = Vec::new();
    for _ in 0..count {
        idle.push(h2c(n.addr(), Some("/hello")).await);
    }
    let mut keep_alive = TcpStream::connect(n.addr()).await.unwrap();
    keep_alive
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    keep_alive.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let mut latencies = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        assert_eq!(get_status(n.addr(), "/hello").await, 200);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let started = Instant::now();
    let functions = n
        .admin(Method::GET, "/v1/functions", None, Bytes::new())
        .await;
    let admin = started.elapsed();
    assert_eq!(functions.status, 200);
    println!(
        "{count} idle h2c connections held: /hello p50 {:?}, p99 {:?} (a new connection each); admin /v1/functions answered in {admin:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );
    for s in idle.iter_mut() {
        assert!(
            closed_within(s, Duration::from_secs(20)).await.is_some(),
            "an idle HTTP/2 connection was closed"
        );
    }
    assert!(
        closed_within(&mut keep_alive, Duration::from_secs(20))
            .await
            .is_some()
    );
    // A connection is counted once its task has finished, just after the
    // client sees it closed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let closed = n
            .metric(r#"wedge_connections_closed_total{reason="idle"}"#)
            .await
            .unwrap();
        if closed >= (count + 1) as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{closed} connections counted as closed for being idle, of {}",
            count + 1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get_status(n.addr(), "/hello").await, 200);
}

/// A request head must be complete within `header_read_timeout`: a silent new
/// connection, an HTTP/1 head that stops half-way, and an HTTP/2 HEADERS block
/// that never ends are all closed then. An HTTP/2 connection that merely sits
/// idle between requests is not.
#[tokio::test(flavor = "multi_thread")]
pub async fn unfinished_heads_are_cut_off() {
    let n = node()
        .server("header_read_timeout = \"1s\"")
        .server("idle_timeout = \"30s\"")
        .function("hello", examples::HELLO)
        .start();
    let limit = Duration::from_secs(4);
    let mut silent = TcpStream::connect(n.addr()).await.unwrap();
    let mut half_h1 = TcpStream::connect(n.addr()).await.unwrap();
    half_h1
        .write_all(b"GET /hello HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let mut half_preface = TcpStream::connect(n.addr()).await.unwrap();
    half_preface.write_all(&PREFACE[..10]).await.unwrap();
    let mut open_block = h2c(n.addr(), Some("/hello")).await;
    let block = get_block("/hello");
    // HEADERS without END_HEADERS: a CONTINUATION should follow, and never does.
    open_block
        .write_all(&frame(HEADERS, END_STREAM, 3, &block[..4]))
        .await
        .unwrap();
    let mut idle_h2 = h2c(n.addr(), Some("/hello")).await;
    for (what, s) in [
        ("silent", &mut silent),
        ("half an HTTP/1 head", &mut half_h1),
        ("half a preface", &mut half_preface),
        ("an open HEADERS block", &mut open_block),
    ] {
        let took = closed_within(s, limit).await;
        assert!(took.is_some(), "{what} was not closed within {limit:?}");
    }
    assert_eq!(
        closed_within(&mut idle_h2, Duration::from_millis(500)).await,
        None,
        "an idle HTTP/2 connection lives until idle_timeout"
    );
    assert!(
        n.metric(r#"wedge_connections_closed_total{reason="header_timeout"}"#)
            .await
            .unwrap()
            >= 4.0
    );
    assert_eq!(get_status(n.addr(), "/hello").await, 200);
}

/// CPU time the process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Connections stuck half-way through the HTTP/2 preface cost no CPU while
/// they wait: the node reads them instead of polling.
#[tokio::test(flavor = "multi_thread")]
pub async fn half_prefaces_cost_no_cpu() {
    let n = node()
        .table("[server.per_ip]\nmax_connections = 1000")
        .function("hello", examples::HELLO)
        .start();
    let mut held = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(n.addr()).await.unwrap();
        s.write_all(&PREFACE[..10]).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_ticks(n.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(n.pid()) - before;
    // Clock ticks are 10 ms: 500 connections polled every millisecond used 74
    // ticks in these two seconds; waiting on reads uses about none.
    assert!(
        used <= 10,
        "{used} ticks of CPU in 2 s for 500 idle half-prefaces"
    );
    assert_eq!(get_status(n.addr(), "/hello").await, 200);
}

/// Opens `count` HTTP/1.1 connections that each finish one request and stay open.
async fn held_connections(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..count {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.unwrap();
        held.push(s);
    }
    held
}

/// Beyond `max_connections` a new connection waits in the listen backlog
/// until one closes; beyond `per_ip.max_connections` it is closed at once.
/// The admin API answers throughout.
#[tokio::test(flavor = "multi_thread")]
pub async fn connection_limits() {
    let n = node()
        .server("max_connections = 20")
        .table("[server.per_ip]\nmax_connections = 50")
        .function("hello", examples::HELLO)
        .start();
    let mut held = held_connections(n.addr(), 20).await;
    let waiting = tokio::spawn({
        let addr = n.addr();
        async move {
            let status = get_status(addr, "/hello").await;
            (status, Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!waiting.is_finished(), "the 21st connection waits");
    let health = n.admin(Method::GET, "/healthz", None, Bytes::new()).await;
    assert_eq!(health.status, 200, "the admin API answers at the limit");
    let freed = Instant::now();
    drop(held.pop());
    let (status, answered) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        answered >= freed,
        "the 21st connection is answered only once one of the 20 closes"
    );

    let n = node()
        .table("[server.per_ip]\nmax_connections = 5")
        .function("hello", examples::HELLO)
        .start();
    let _five = held_connections(n.addr(), 5).await;
    let mut sixth = TcpStream::connect(n.addr()).await.unwrap();
    let _ = sixth
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), sixth.read(&mut buf))
        .await
        .expect("closed at once, not left waiting");
    assert!(matches!(read, Ok(0) | Err(_)), "no answer: {read:?}");
    assert_eq!(
        n.metric(r#"wedge_connections_closed_total{reason="per_ip_limit"}"#)
            .await,
        Some(1.0)
    );
}

/// Samples the node's resident memory until `until` resolves; the peak, KiB.
async fn peak_rss_while<T>(n: &Node, until: impl std::future::Future<Output = T>) -> (T, u64) {
    tokio::pin!(until);
    let mut peak = n.rss_kib();
    loop {
        tokio::select! {
            out = &mut until => return (out, peak.max(n.rss_kib())),
            () = tokio::time::sleep(Duration::from_millis(20)) => peak = peak.max(n.rss_kib()),
        }
    }
}

/// Waits until the node's resident memory is below `kib`; false after 10 s.
async fn rss_falls_below(n: &Node, kib: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if n.rss_kib() < kib {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Forty HTTP/1.1 clients ask for 8 MiB each and never read it, from a WAGI
/// module and then from a component. The responses stream, so a client that
/// does not read holds its guest at its next write: the node's memory grows
/// by less than 64 MiB for all forty. Each is disconnected once it has
/// accepted nothing for `write_timeout`, its instance is freed, and other
/// clients are served meanwhile.
#[tokio::test(flavor = "multi_thread")]
pub async fn slow_readers_are_disconnected() {
    let write_timeout = crate::scale(2, 30) as u64;
    let n = node()
        .server(&format!("write_timeout = \"{write_timeout}s\""))
        .function("hello", examples::HELLO)
        .function("stream_bytes", guests::STREAM_BYTES)
        .function_toml("stream_bytes", "max_stream = \"120s\"")
        .function("probe", guests::HTTP_PROBE)
        .function_toml("probe", "max_stream = \"120s\"")
        .start();
    for (round, path) in ["/stream_bytes?mb=8", "/probe?do=bytes&mb=8"]
        .iter()
        .enumerate()
    {
        // Warm the function's instance slots up: forty at once.
        let small = path.replace("mb=8", "mb=1");
        let warm: Vec<_> = (0..40).map(|_| n.stream(&small, false)).collect();
        for reply in futures_util::future::join_all(warm).await {
            assert_eq!(reply.body().len(), 1 << 20, "{path}");
        }
        let before = n.rss_kib();
        let mut readers = Vec::new();
        for _ in 0..40 {
            let mut s = TcpStream::connect(n.addr()).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            readers.push(s);
        }
        let started = Instant::now();
        let (_, peak) = peak_rss_while(&n, async {
            for _ in 0..10 {
                assert_eq!(get_status(n.addr(), "/hello").await, 200);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            while n
                .metric(r#"wedge_connections_closed_total{reason="write_timeout"}"#)
                .await
                .unwrap_or(0.0)
                < 40.0 * (round + 1) as f64
            {
                assert!(
                    started.elapsed() < Duration::from_secs(write_timeout + 10),
                    "not all disconnected"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let disconnected = started.elapsed();
        println!(
            "{path}: 40 readers of 8 MiB that never read: peak RSS {} MiB (from {} MiB), all disconnected after {disconnected:?}",
            peak / 1024,
            before / 1024
        );
        assert!(
            peak - before < 64 << 10,
            "{path}: RSS grew by {} KiB",
            peak - before
        );
        for s in readers.iter_mut() {
            // What the kernel had buffered arrives, then the end: never all 8 MiB.
            let mut got = 0usize;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => got += k,
                    Err(_) => panic!("the connection was left open"),
                }
            }
            assert!(got < 8 << 20, "{got} bytes");
        }
        assert_eq!(n.metric("wedge_inflight_requests").await, Some(0.0));
    }
    assert_eq!(get_status(n.addr(), "/hello").await, 200);
}

/// One HTTP/2 connection opens 100 streams for 4 MiB each with a window of
/// zero, so nothing can be sent. The responses stream, so each guest waits
/// at its first write: the node's memory grows by less than 64 MiB while
/// other clients are served. The connection is dropped after
/// `write_timeout`, and its streams' instances are freed. Repeated, the
/// attack leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
pub async fn zero_window_http2_is_dropped() {
    let n = node()
        .server("write_timeout = \"2s\"")
        .function("hello", examples::HELLO)
        .function("stream_bytes", guests::STREAM_BYTES)
        .function_toml("stream_bytes", "max_stream = \"120s\"")
        .start();
    let idle = n.rss_kib();
    for round in 1..=3u64 {
        let before = settled_rss(&n).await;
        let peak = zero_window_attack(&n, before).await;
        assert!(
            peak - before < 64 << 10,
            "attack {round}: RSS grew by {} KiB",
            peak - before
        );
        // The streams' instances go with their connection.
        let freed = Instant::now();
        while n.metric("wedge_inflight_requests").await != Some(0.0) {
            assert!(
                freed.elapsed() < Duration::from_secs(2),
                "instances still held"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        n.metric(r#"wedge_connections_closed_total{reason="write_timeout"}"#)
            .await,
        Some(3.0)
    );
    assert!(
        rss_falls_below(&n, idle + 64 * 1024).await,
        "freed: {} KiB against {idle} KiB idle",
        n.rss_kib()
    );
    assert_eq!(get_status(n.addr(), "/hello").await, 200);
}

/// Opens 100 streams with a zero window on one connection, serves `/hello`
/// meanwhile, and waits for the node to drop the connection; the peak RSS.
async fn zero_window_attack(n: &Node, before: u64) -> u64 {
    let tcp = TcpStream::connect(n.addr()).await.unwrap();
    let (mut client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let mut responses = Vec::new();
    for _ in 0..100 {
        client = client.ready().await.unwrap();
        let request = http::Request::get(format!("http://{}/stream_bytes?mb=4", n.addr()))
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        responses.push(response);
    }
    let started = Instant::now();
    let (ended, peak) = peak_rss_while(n, async {
        for _ in 0..5 {
            assert_eq!(get_status(n.addr(), "/hello").await, 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::timeout(Duration::from_secs(15), driver).await
    })
    .await;
    println!(
        "HTTP/2, window 0, 100 streams of 4 MiB: peak RSS {} MiB (from {} MiB), dropped after {:?}",
        peak / 1024,
        before / 1024,
        started.elapsed()
    );
    ended.expect("the connection was dropped").unwrap().ok();
    peak
}

/// The node's resident memory once the lanes have handed back what they
/// freed: the least it reaches in three seconds, which is three of their
/// once-a-second collections.
async fn settled_rss(n: &Node) -> u64 {
    let mut least = n.rss_kib();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        least = least.min(n.rss_kib());
    }
    least
}

/// A guest that answers slowly is not a stalled client: a request that takes
/// longer than `write_timeout` and `idle_timeout` still gets its answer.
#[tokio::test(flavor = "multi_thread")]
pub async fn slow_guests_are_not_stalled_clients() {
    let n = node()
        .server("write_timeout = \"1s\"")
        .server("idle_timeout = \"1s\"")
        .function("slow", guests::SLEEPY)
        .start();
    let reply = n.get_h2c("/slow?ms=2500").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "slept 2500ms\n");
    assert_eq!(get_status(n.addr(), "/slow?ms=2500").await, 200);
}
