//! What the test guests share; each guest is a binary under src/bin.

/// Computes for `long` without a pause: a request that keeps its core busy.
pub fn spin(long: std::time::Duration) {
    let started = std::time::Instant::now();
    let mut n: u64 = 0;
    while started.elapsed() < long {
        for _ in 0..1000 {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}
