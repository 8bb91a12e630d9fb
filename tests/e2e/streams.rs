//! Streamed responses (SPEC §9): bytes reach the client as the guest writes
//! them, for WAGI modules and components alike, over HTTP/1.1 and HTTP/2;
//! a stream cut by a trap, an exit or a limit is aborted so that the client
//! sees it; and small responses keep their `Content-Length`.

use std::time::Duration;

use futures_util::future::join_all;
use wedge_test_harness::{Streamed, examples, guests};

use crate::node;

/// Each event reaches the client when the guest writes it (within 50 ms),
/// not all at once at the end, for both handler formats over both protocols.
#[tokio::test(flavor = "multi_thread")]
pub async fn events() {
    let n = node()
        .function("events", guests::EVENTS)
        .function("probe", guests::HTTP_PROBE)
        .start();
    for path in ["/events?n=5&ms=200", "/probe?do=events&n=5&ms=200"] {
        for h2 in [false, true] {
            let reply = n.stream(path, h2).await;
            let what = format!("{path} over {:?}", reply.version);
            assert_eq!(reply.status, 200, "{what}");
            assert!(reply.end.is_ok(), "{what}: {:?}", reply.end);
            assert_eq!(
                reply.headers.get("content-type").unwrap(),
                "text/event-stream",
                "{what}"
            );
            assert!(reply.headers.get("content-length").is_none(), "{what}");
            let events = reply.events();
            assert_eq!(
                events.iter().map(|e| e.number).collect::<Vec<_>>(),
                [0, 1, 2, 3, 4],
                "{what}"
            );
            for e in &events {
                assert!(
                    e.latency() < Duration::from_millis(50),
                    "{what}: event {} took {:?} to arrive",
                    e.number,
                    e.latency()
                );
            }
            for pair in events.windows(2) {
                let gap = pair[1].arrived.duration_since(pair[0].arrived).unwrap();
                assert!(gap >= Duration::from_millis(150), "{what}: {gap:?}");
            }
        }
    }
}

/// A response that is complete when the guest ends keeps the fast path: a
/// `Content-Length` and one write, for both formats.
#[tokio::test(flavor = "multi_thread")]
pub async fn whole_responses_keep_their_length() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("probe", guests::HTTP_PROBE)
        .start();
    for path in ["/hello", "/probe?do=big&kib=16"] {
        let reply = n.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("content-length"),
            Some(reply.body.len().to_string().as_str()),
            "{path}"
        );
    }
}

/// A stream the guest or a limit cuts short is aborted: HTTP/1.1 closes
/// without the last chunk, HTTP/2 resets the stream. The client sees what
/// was written before, then the abort; each cut is counted by cause.
#[tokio::test(flavor = "multi_thread")]
pub async fn cuts_are_aborts() {
    let limits = "stream_idle = \"500ms\"\nmax_response = \"1MiB\"";
    let n = node()
        .function("events", guests::EVENTS)
        .function_toml("events", limits)
        .function("probe", guests::HTTP_PROBE)
        .function_toml("probe", limits)
        .start();
    expect_cuts(
        &n,
        &[
            ("events", "/events?n=2&ms=10&then=trap", "trap"),
            ("events", "/events?n=2&ms=10&then=exit", "exit"),
            ("events", "/events?n=2&ms=10&then=sleep", "stream_idle"),
            ("events", "/events?n=2&ms=10&then=flood", "max_response"),
            ("probe", "/probe?do=events&n=2&ms=10&then=trap", "trap"),
            (
                "probe",
                "/probe?do=events&n=2&ms=10&then=unfinished",
                "unfinished",
            ),
            (
                "probe",
                "/probe?do=events&n=2&ms=10&then=sleep",
                "stream_idle",
            ),
            (
                "probe",
                "/probe?do=events&n=2&ms=10&then=flood",
                "max_response",
            ),
        ],
    )
    .await;
}

/// A guest that computes on after its head is cut at `max_stream`, or, when
/// that is zero, at the request's `timeout`; a guest that computes without
/// writing is idle, and `stream_idle` cuts it first when it is shorter.
#[tokio::test(flavor = "multi_thread")]
pub async fn time_limits_cut_streams() {
    let n = node()
        .function("spinner", guests::EVENTS)
        .function_toml("spinner", "stream_idle = \"10s\"\nmax_stream = \"1s\"")
        .function("timed", guests::EVENTS)
        .function_toml("timed", "stream_idle = \"10s\"\ntimeout = \"1s\"")
        .function("idle", guests::EVENTS)
        .function_toml("idle", "stream_idle = \"300ms\"\nmax_stream = \"10s\"")
        .function("cspinner", guests::HTTP_PROBE)
        .function_toml("cspinner", "stream_idle = \"10s\"\nmax_stream = \"1s\"")
        .function("ctimed", guests::HTTP_PROBE)
        .function_toml("ctimed", "stream_idle = \"10s\"\ntimeout = \"1s\"")
        .start();
    expect_cuts(
        &n,
        &[
            ("spinner", "/spinner?n=2&ms=10&then=spin", "max_stream"),
            ("timed", "/timed?n=2&ms=10&then=spin", "timeout"),
            ("idle", "/idle?n=2&ms=10&then=spin", "stream_idle"),
            (
                "cspinner",
                "/cspinner?do=events&n=2&ms=10&then=spin",
                "max_stream",
            ),
            ("ctimed", "/ctimed?do=events&n=2&ms=10&then=spin", "timeout"),
        ],
    )
    .await;
}

/// Runs each `(function, path, cause)` over HTTP/1.1 and HTTP/2 at once, and
/// checks that each client saw the two events, then an abort, and that the
/// node counted each cut under its cause.
async fn expect_cuts(n: &wedge_test_harness::Node, cases: &[(&str, &str, &str)]) {
    let runs = cases.iter().flat_map(|&(function, path, cause)| {
        [false, true].map(|h2| async move { (function, path, cause, h2, n.stream(path, h2).await) })
    });
    let mut wrong = Vec::new();
    for (_, path, cause, h2, reply) in join_all(runs).await {
        let what = format!("{path} ({cause}) over {}", if h2 { "h2" } else { "h1" });
        let numbers: Vec<u64> = reply.events().iter().map(|e| e.number).collect();
        if reply.status != 200 || !reply.aborted() || numbers != [0, 1] {
            wrong.push(format!(
                "{what}: {} {:?} {}",
                reply.status,
                reply.end,
                body_text(&reply)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for (function, _, cause) in cases {
        let series =
            format!("wedge_stream_cuts_total{{function=\"{function}\",cause=\"{cause}\"}}");
        let counted = n.metric(&series).await.unwrap_or(0.0);
        assert_eq!(counted, 2.0, "{series}");
    }
    assert_eq!(n.metric("wedge_streams_open").await, Some(0.0));
    // The node serves on.
    assert_eq!(n.stream("/events?n=1", false).await.end, Ok(()));
}

fn body_text(reply: &Streamed) -> String {
    String::from_utf8_lossy(&reply.body()[..reply.body().len().min(200)]).into_owned()
}

/// A long body streams whole, byte for byte, from either format, while the
/// node's memory stays near flat: the guest writes only as fast as the
/// client reads, and nothing holds the body.
#[tokio::test(flavor = "multi_thread")]
pub async fn long_bodies_stream_in_bounded_memory() {
    let mib = crate::scale(256, 1024);
    let n = node()
        .function("stream_bytes", guests::STREAM_BYTES)
        .function("probe", guests::HTTP_PROBE)
        .function_toml("probe", "max_response = \"2GiB\"\nmax_stream = \"300s\"")
        .function_toml(
            "stream_bytes",
            "max_response = \"2GiB\"\nmax_stream = \"300s\"",
        )
        .start();
    // Warm both up, so that their first instances are not counted as growth.
    n.stream("/stream_bytes?mb=1", false).await;
    n.stream("/probe?do=bytes&mb=1", false).await;
    for (path, h2) in [
        (format!("/stream_bytes?mb={mib}"), false),
        (format!("/probe?do=bytes&mb={mib}"), true),
    ] {
        let before = n.rss_kib();
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
        let watch = tokio::spawn({
            let peak = peak.clone();
            let pid = n.pid();
            async move {
                loop {
                    if let Some(rss) = rss_of(pid) {
                        peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        let response = wedge_test_harness::open_stream(&n.url(&path), h2).await;
        assert_eq!(response.status(), 200, "{path}");
        let (len, pattern_ok) = count_pattern(response.into_body()).await;
        watch.abort();
        assert!(pattern_ok, "{path}: bytes out of order");
        assert_eq!(len, (mib as u64) << 20, "{path}");
        let grew = peak.load(std::sync::atomic::Ordering::Relaxed) - before;
        println!(
            "{path}: {mib} MiB streamed, RSS grew by {} KiB at most",
            grew
        );
        assert!(grew < 64 << 10, "{path}: RSS grew by {grew} KiB");
    }
}

/// Reads a body of the test guests' repeating pattern (`i % 251` over each
/// 64 KiB) without keeping it: its length, and whether every byte was right.
async fn count_pattern(mut body: hyper::body::Incoming) -> (u64, bool) {
    use http_body_util::BodyExt;
    let mut len = 0u64;
    let mut ok = true;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the body ends whole");
        if let Ok(data) = frame.into_data() {
            for (i, b) in data.iter().enumerate() {
                let at = (len + i as u64) % (64 << 10);
                ok &= *b == (at % 251) as u8;
            }
            len += data.len() as u64;
        }
    }
    (len, ok)
}

pub(crate) fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `examples/ticker` sends an event a second, each as it is written, with a
/// counter the store keeps across requests.
#[tokio::test(flavor = "multi_thread")]
pub async fn ticker_example() {
    let toml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/ticker/function.toml"
    ))
    .unwrap();
    let n = node()
        .function("ticker", examples::TICKER)
        .function_toml("ticker", &toml)
        .start();
    let mut ticks = Vec::new();
    for (h2, expect) in [(false, [1, 2, 3]), (true, [4, 5, 6])] {
        let reply = n.stream("/ticker?n=3", h2).await;
        assert_eq!(reply.end, Ok(()));
        assert_eq!(reply.headers["content-type"], "text/event-stream");
        // One frame per event, a second apart.
        let text: Vec<(std::time::SystemTime, String)> = reply
            .frames
            .iter()
            .map(|(at, b)| (*at, String::from_utf8_lossy(b).into_owned()))
            .collect();
        let events: Vec<_> = text.iter().filter(|(_, t)| t.contains("data: ")).collect();
        assert_eq!(events.len(), 3, "{text:?}");
        for pair in events.windows(2) {
            let gap = pair[1].0.duration_since(pair[0].0).unwrap();
            assert!(
                gap >= Duration::from_millis(900) && gap < Duration::from_millis(1500),
                "{gap:?}"
            );
        }
        for (_, event) in &events {
            let tick: u64 = event
                .split("\"tick\":")
                .nth(1)
                .and_then(|t| t.split(',').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("no tick in {event:?}"));
            ticks.push(tick);
        }
        assert_eq!(&ticks[ticks.len() - 3..], expect);
    }
}

/// `examples/http-download`, a component, streams a generated file whole
/// with the headers it set.
#[tokio::test(flavor = "multi_thread")]
pub async fn download_example() {
    let n = node()
        .function("http-download", examples::HTTP_DOWNLOAD)
        .function_toml(
            "http-download",
            "max_response = \"1GiB\"\nmax_stream = \"60s\"",
        )
        .start();
    for h2 in [false, true] {
        let reply = n.stream("/http-download?mb=8", h2).await;
        assert_eq!(reply.end, Ok(()));
        assert_eq!(
            reply.headers["content-disposition"],
            "attachment; filename=\"lines-8MiB.txt\""
        );
        let body = reply.body();
        assert_eq!(body.len(), 8 << 20);
        let lines: Vec<&[u8]> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), (8 << 20) / 64);
        assert!(lines.last().unwrap().starts_with(b"000000131072 "));
    }
}

/// 200 streams run while the function swaps its stable version 20 times and
/// rolls a canary back: none is cut, and each is written to the end by the
/// version it started on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
pub async fn swaps_never_cut_a_stream() {
    let n = node()
        .function("sse", guests::EVENTS)
        .function_toml("sse", "max_stream = \"30s\"")
        .start();
    let dir = n.dir().join("functions/sse");
    std::fs::copy(guests::EVENTS, dir.join("v2.wasm")).unwrap();
    let deploy = |text: &str| std::fs::write(dir.join("deployment.toml"), text).unwrap();
    deploy("stable = \"v1\"\n");
    crate::swap::until_serving_version(&n, "/sse?n=1", "v1").await;
    let streams: Vec<_> = (0..200)
        .map(|i| {
            let n = &n;
            async move {
                // Half start at once, half spread across the swaps.
                if i >= 100 {
                    tokio::time::sleep(Duration::from_millis(20 * (i - 100))).await;
                }
                n.stream("/sse?n=30&ms=100", i % 2 == 1).await
            }
        })
        .collect();
    let swaps = async {
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            deploy(if i % 2 == 0 {
                "stable = \"v2\"\n"
            } else {
                "stable = \"v1\"\n"
            });
        }
        deploy("stable = \"v1\"\ncanary = \"v2\"\ncanary_percent = 50\n");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rolled = n
            .admin(
                http::Method::POST,
                "/v1/functions/sse/rollback",
                None,
                Default::default(),
            )
            .await;
        assert_eq!(rolled.status, 200, "{}", rolled.text());
    };
    let (replies, ()) = tokio::join!(join_all(streams), swaps);
    let mut versions = std::collections::BTreeMap::new();
    for reply in &replies {
        assert_eq!(reply.end, Ok(()), "a stream was cut");
        let started_on = reply.headers["x-wedge-version"].to_str().unwrap();
        let events = reply.events();
        assert_eq!(events.len(), 30);
        assert!(
            events.iter().all(|e| e.version == started_on),
            "a stream that started on {started_on} was written by another version"
        );
        *versions.entry(started_on.to_string()).or_insert(0) += 1;
    }
    println!("streams by version: {versions:?}");
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(n.metric("wedge_streams_open").await, Some(0.0));
}
