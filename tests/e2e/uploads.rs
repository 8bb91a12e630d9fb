//! Request bodies streamed to a component as they arrive (`stream_request =
//! true`, SPEC §9): a long upload is hashed in bounded memory, and a sender
//! that is too slow or sends too much is cut off with 408 or 413, its
//! instance freed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wedge_test_harness::{Node, guests};

use crate::node;

/// The repeating pattern the uploads carry: `i % 251` over each 64 KiB.
fn chunk() -> Bytes {
    (0..64u32 << 10)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// FNV-1a over `count` copies of `piece`, as the probe computes it.
fn fnv(piece: &[u8], count: usize) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..count {
        for &b in piece {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

fn uploader() -> Node {
    node()
        .function("probe", guests::HTTP_PROBE)
        .function_toml("probe", "stream_request = true\ntimeout = \"300s\"")
        .start()
}

/// A long upload reaches the component as it arrives: the hash comes out
/// right, and the node's memory grows by far less than the body.
#[tokio::test(flavor = "multi_thread")]
pub async fn long_uploads_stream_to_the_guest() {
    let mib = crate::scale(128, 512);
    let n = uploader();
    // Warm the probe up, so its first instance is not counted as growth.
    n.post("/probe?do=hash", "warm").await;
    let piece = chunk();
    let count = mib * 16;
    let frames = futures_util::stream::iter(
        (0..count).map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(piece.clone()))),
    );
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(n.url("/probe?do=hash"))
        .body(StreamBody::new(frames))
        .unwrap();
    let before = n.rss_kib();
    let pid = n.pid();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let watch = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                if let Some(rss) = crate::streams::rss_of(pid) {
                    peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let response = client.request(request).await.expect("the upload is taken");
    let status = response.status();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    watch.abort();
    let text = String::from_utf8_lossy(&text);
    assert_eq!(status, 200, "{text}");
    let expected = format!("{} {:016x}", (mib as u64) << 20, fnv(&chunk(), count));
    assert_eq!(text, expected);
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed) - before;
    println!("{mib} MiB uploaded and hashed; RSS grew by {grew} KiB at most");
    assert!(grew < 64 << 10, "RSS grew by {grew} KiB");
}

/// A sender whose average rate since the body began is under
/// `min_body_rate` after its first 10 s is cut off with 408, and the
/// instance that was reading its body is freed.
#[tokio::test(flavor = "multi_thread")]
pub async fn slow_senders_are_cut_with_408() {
    let n = uploader();
    let mut s = TcpStream::connect(n.addr()).await.unwrap();
    s.write_all(b"POST /probe?do=hash HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    // A kilobyte a second, far under the default 16 KiB/s.
    loop {
        let _ = s.write_all(&[b'x'; 1024]).await;
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(k)) => {
                reply.extend_from_slice(&buf[..k]);
                if reply.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => assert!(started.elapsed() < Duration::from_secs(20), "never cut off"),
        }
    }
    let took = started.elapsed();
    let head = String::from_utf8_lossy(&reply);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(13),
        "{took:?}"
    );
    assert_eq!(n.metric("wedge_inflight_requests").await, Some(0.0));
    assert_eq!(n.post("/probe?do=hash", "abc").await.status, 200);
}

/// A streamed body is capped by `max_stream_request`: declared larger, it is
/// refused before the guest runs; sent larger, it is cut off with 413.
#[tokio::test(flavor = "multi_thread")]
pub async fn oversized_uploads_get_413() {
    let n = node()
        .server("max_stream_request = \"1MiB\"")
        .function("probe", guests::HTTP_PROBE)
        .function_toml("probe", "stream_request = true")
        .start();
    let declared = n
        .send(
            http::Method::POST,
            "/probe?do=hash",
            &[],
            Bytes::from(vec![b'x'; (1 << 20) + 1]),
        )
        .await;
    assert_eq!(declared.status, 413);
    let piece = chunk();
    let frames = futures_util::stream::iter(
        (0..32).map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(piece.clone()))),
    );
    let client = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(n.url("/probe?do=hash"))
        .body(StreamBody::new(frames))
        .unwrap();
    let response = client.request(request).await.expect("an answer");
    assert_eq!(response.status(), 413);
    // Within the cap, a streamed body is whole.
    assert_eq!(
        n.post("/probe?do=hash", vec![b'x'; 1 << 20]).await.text(),
        format!("1048576 {:016x}", fnv(b"x", 1 << 20))
    );
}
