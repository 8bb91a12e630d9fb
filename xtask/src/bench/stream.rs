//! The `stream` scenario: how fast a long streamed body reaches a client.
//! `examples/http-download`, a component, streams 1 GiB of generated lines
//! through wedge; the raw hyper server streams the same bytes, generated the
//! same way (`/stream` of `bench/hyper-hello`). One client downloads each in
//! turn, `--rounds` times; the table gives the median round's MiB/s and
//! wedge's ratio to hyper within that round.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::node::start_wedge;

/// The body's size.
const MIB: usize = 1024;

/// Runs the scenario.
pub fn bench(rounds: usize) -> Result<(), String> {
    let (_hyper, port) = super::hyper::spawn()?;
    let (_wedge, wedge_port) = start_wedge("stream", "sync")?;
    let targets = [
        (
            "raw hyper, 64 KiB frames",
            port,
            format!("/stream?mb={MIB}"),
        ),
        (
            "wedge examples/http-download (wasi:http)",
            wedge_port,
            format!("/http-download?mb={MIB}"),
        ),
    ];
    // One small download each first: the servers are up and warm.
    for (_, port, path) in &targets {
        let small = path.replace(&format!("mb={MIB}"), "mb=1");
        download(*port, &small, Duration::from_secs(60))?;
    }
    let mut results: Vec<[f64; 2]> = Vec::new();
    for round in 1..=rounds {
        let mut speeds = [0.0; 2];
        for (i, (name, port, path)) in targets.iter().enumerate() {
            let (bytes, took) = download(*port, path, Duration::from_secs(600))?;
            if bytes < MIB << 20 {
                return Err(format!("{name}: {bytes} bytes, not {MIB} MiB"));
            }
            speeds[i] = (bytes as f64 / (1 << 20) as f64) / took.as_secs_f64();
            eprintln!("round {round}: {name}: {:.0} MiB/s", speeds[i]);
        }
        results.push(speeds);
    }
    results.sort_by(|a, b| (a[1] / a[0]).total_cmp(&(b[1] / b[0])));
    let median = results[results.len() / 2];
    println!("\n{MIB} MiB streamed to one HTTP/1.1 client, median of {rounds} rounds");
    println!("| target | MiB/s | vs raw hyper |");
    println!("|---|---|---|");
    for (i, (name, _, _)) in targets.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2}x |",
            median[i],
            median[i] / median[0]
        );
    }
    Ok(())
}

/// Downloads `path` from `127.0.0.1:port` over HTTP/1.1, reading it to its
/// end without keeping it: the bytes after the head (chunk framing
/// included) and the time from the request to the last byte.
fn download(port: u16, path: &str, limit: Duration) -> Result<(usize, Duration), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    let started = Instant::now();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 << 10];
    let mut head = Vec::new();
    let mut body = 0usize;
    loop {
        let n = s.read(&mut buf).map_err(|e| format!("{path}: {e}"))?;
        if n == 0 {
            break;
        }
        if body == 0 && head.len() < 64 << 10 {
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                if !head.starts_with(b"HTTP/1.1 200") {
                    let line = String::from_utf8_lossy(&head[..end]).into_owned();
                    return Err(format!("{path}: {line}"));
                }
                body = head.len() - end - 4;
                head.clear();
            }
        } else {
            body += n;
        }
    }
    Ok((body, started.elapsed()))
}
