//! Streams `?mb=N` MiB (default 1) of a repeating pattern in 64 KiB writes from
//! one small buffer, so the guest's own memory stays small however long the
//! body is: what a download of generated data looks like.

use std::io::Write;

fn main() {
    let mb: u64 = std::env::var("QUERY_STRING")
        .ok()
        .and_then(|q| q.strip_prefix("mb=").and_then(|n| n.parse().ok()))
        .unwrap_or(1);
    let mut out = std::io::stdout();
    out.write_all(b"Content-Type: application/octet-stream\n\n")
        .unwrap();
    let chunk: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
    for _ in 0..mb * 16 {
        out.write_all(&chunk).unwrap();
    }
}
