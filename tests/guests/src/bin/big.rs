//! Answers with a body of `?mb=N` MiB (default 1) of `x`: a response large
//! enough that a client which stops reading leaves it waiting in the host.

use std::io::Write;

fn main() {
    let mb: usize = std::env::var("QUERY_STRING")
        .ok()
        .and_then(|q| q.strip_prefix("mb=").and_then(|n| n.parse().ok()))
        .unwrap_or(1);
    let mut out = std::io::stdout();
    out.write_all(b"Content-Type: text/plain\n\n").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..mb {
        out.write_all(&chunk).unwrap();
    }
}
