//! wrk, the load generator of every round: its runs and the figures read
//! from its output.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How hard and how long wrk loads a target: `--duration`, `--connections`
/// and `--threads`, as wrk takes them.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    pub duration: String,
    pub connections: String,
    pub threads: String,
}

/// One wrk run's figures.
pub struct Figures {
    pub requests_per_sec: f64,
    pub p50: String,
    pub p99: String,
}

/// Fails, saying how to install it, when wrk does not run.
pub fn ensure_installed() -> Result<(), String> {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(_) => Err("wrk is not installed (apt-get install wrk)".into()),
    }
}

/// Waits until `url` answers 200 to a one-second wrk run, for up to 60 s.
pub fn wait_ready(url: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let ok = Command::new("wrk")
            .args(["-t1", "-c1", "-d1s", url])
            .output()
            .map(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                o.status.success() && !text.contains("Non-2xx") && text.contains("Requests/sec")
            })
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("{url} did not answer 200 within 60s"))
}

/// Runs wrk against every URL at once; for several, each gets one thread and
/// its share of the connections, and the figures are their sum (req/s) and
/// their worst (p50, p99).
pub fn wrk_all(load: &Load, urls: &[String], script: Option<&Path>) -> Result<Figures, String> {
    if let [url] = urls {
        return wrk(load, url, script);
    }
    let total: usize = load
        .connections
        .parse()
        .map_err(|_| "--connections needs a count")?;
    let share = Load {
        duration: load.duration.clone(),
        connections: (total / urls.len()).max(1).to_string(),
        threads: "1".into(),
    };
    let runs: Vec<_> = urls
        .iter()
        .map(|url| {
            let (share, url) = (share.clone(), url.clone());
            let script = script.map(|s| s.to_path_buf());
            std::thread::spawn(move || wrk(&share, &url, script.as_deref()))
        })
        .collect();
    let mut sum = Figures {
        requests_per_sec: 0.0,
        p50: String::new(),
        p99: String::new(),
    };
    for run in runs {
        let f = run.join().map_err(|_| "a wrk thread panicked")??;
        sum.requests_per_sec += f.requests_per_sec;
        if latency_us(&f.p50) > latency_us(&sum.p50) {
            sum.p50 = f.p50;
        }
        if latency_us(&f.p99) > latency_us(&sum.p99) {
            sum.p99 = f.p99;
        }
    }
    Ok(sum)
}

/// wrk's `812.00us`, `1.32ms`, `2.01s` in microseconds; 0 when unreadable.
fn latency_us(text: &str) -> f64 {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        (text, 0.0)
    };
    number.parse::<f64>().map_or(0.0, |n| n * scale)
}

/// One wrk run against `url` with `load`, with a Lua `script` when given.
pub fn wrk(load: &Load, url: &str, script: Option<&Path>) -> Result<Figures, String> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}", load.duration))
        .arg("--latency");
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        eprintln!("warning: errors during the run against {url}:\n{text}");
    }
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
    };
    let requests_per_sec = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    Ok(Figures {
        requests_per_sec,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::latency_us;

    #[test]
    fn latencies_read_in_microseconds() {
        let read = [("812.00us", 812.0), ("1.32ms", 1320.0), ("2.01s", 2.01e6)];
        for (text, us) in read {
            assert!((latency_us(text) - us).abs() < 1e-6, "{text}");
        }
        assert_eq!(latency_us("fast"), 0.0);
    }
}
