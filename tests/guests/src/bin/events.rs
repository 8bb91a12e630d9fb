//! Server-sent events: `?n=N` events (default 5) `?ms=M` milliseconds apart
//! (default 200), each carrying its number, the wall-clock time it was
//! written and the version serving it (`data: <i> <unix ms> <version>`),
//! flushed one by one. `?then=` ends the
//! stream otherwise after them: `trap`, `exit` (status 3), `sleep` (waits
//! 60 s without writing), `spin` (computes without end), `flood` (writes
//! without end).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() {
    let query = std::env::var("QUERY_STRING").unwrap_or_default();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    let n: u64 = param("n").and_then(|v| v.parse().ok()).unwrap_or(5);
    let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(200);
    let version = std::env::var("WEDGE_VERSION").unwrap_or_default();
    let mut out = std::io::stdout();
    out.write_all(b"Content-Type: text/event-stream\nCache-Control: no-cache\n\n")
        .unwrap();
    out.flush().unwrap();
    for i in 0..n {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        write!(out, "data: {i} {} {version}\n\n", now.as_millis()).unwrap();
        out.flush().unwrap();
    }
    match param("then").as_deref() {
        Some("trap") => std::process::abort(),
        Some("exit") => std::process::exit(3),
        Some("sleep") => std::thread::sleep(Duration::from_secs(60)),
        Some("spin") => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Some("flood") => {
            let chunk = vec![b'x'; 64 << 10];
            loop {
                out.write_all(&chunk).unwrap();
            }
        }
        _ => {}
    }
}
