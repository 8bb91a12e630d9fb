//! Build B of the live-swap function: answers "B", after sleeping `?ms=N`
//! or after keeping its core busy for `?spin=N` milliseconds.

fn main() {
    wedge_sdk::serve(|req| {
        if let Some(ms) = req.query_param("ms").and_then(|v| v.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        if let Some(ms) = req.query_param("spin").and_then(|v| v.parse().ok()) {
            spin(std::time::Duration::from_millis(ms));
        }
        wedge_sdk::Response::text(200, "B")
    });
}

/// Computes for `long` without a pause.
fn spin(long: std::time::Duration) {
    let started = std::time::Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < long {
        for _ in 0..1000 {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}
