//! Clocks of the `golive` scenario: a file landing at a known instant,
//! waiting for something to happen, and what the waits add up to.

use std::path::Path;
use std::time::{Duration, Instant};

/// How long one answer may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one thing may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(600);

/// Waits for `done`, polling every `every`; how long it took from `since`.
pub fn wait_for(
    what: &str,
    since: Instant,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, String> {
    while !done() {
        if since.elapsed() > PATIENCE {
            return Err(format!("{what} did not happen within {PATIENCE:?}"));
        }
        std::thread::sleep(every);
    }
    Ok(since.elapsed())
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, min and max in milliseconds.
pub fn spread(times: &mut [Duration]) -> String {
    times.sort();
    format!(
        "median {:.0} ms (min {:.0}, max {:.0}, {} rounds)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

/// Writes `bytes` as `path` through a temporary file and a rename: the
/// moment it lands.
pub fn land(path: &Path, bytes: &[u8]) -> Result<Instant, String> {
    let tmp = path.with_extension("landing");
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    let landed = Instant::now();
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
    Ok(landed)
}
