//! `cargo xtask bench`: wrk against wedge serving `examples/hello` and against the
//! raw hyper hello-world, in the same run, with the ratio between them.
//!
//! Options: `--duration 10s`, `--connections 32`, `--threads 2`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, lay_out_examples, root, run};

/// One wrk run's figures.
struct Figures {
    requests_per_sec: f64,
    p50: String,
    p99: String,
}

struct Options {
    duration: String,
    connections: String,
    threads: String,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        duration: "10s".into(),
        connections: "32".into(),
        threads: "2".into(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        match flag.as_str() {
            "--duration" => o.duration = value,
            "--connections" => o.connections = value,
            "--threads" => o.threads = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk is not installed (apt-get install wrk)".into());
    }
    run(cargo().args([
        "build",
        "--release",
        "--package",
        "wedge",
        "--package",
        "hyper-hello",
    ]))?;

    let wedge_port = free_port()?;
    let hyper_port = free_port()?;
    let dir = root().join("target/bench");
    let config = lay_out_examples(&dir, &format!("127.0.0.1:{wedge_port}"))?;
    let release = root().join("target/release");
    let wedge = Server(
        Command::new(release.join("wedge"))
            .arg("serve")
            .arg("-c")
            .arg(&config)
            // Default logging, access events included: what an operator runs.
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start wedge: {e}"))?,
    );
    let hyper = Server(
        Command::new(release.join("hyper-hello"))
            .arg(format!("127.0.0.1:{hyper_port}"))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start hyper-hello: {e}"))?,
    );
    let hyper_url = format!("http://127.0.0.1:{hyper_port}/");
    let wedge_url = format!("http://127.0.0.1:{wedge_port}/hello");
    wait_ready(&hyper_url)?;
    wait_ready(&wedge_url)?;

    println!(
        "wrk -t{} -c{} -d{} (same run, same machine: {} cores)",
        options.threads,
        options.connections,
        options.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let hyper_figures = wrk(&options, &hyper_url)?;
    let wedge_figures = wrk(&options, &wedge_url)?;
    drop((wedge, hyper));

    println!(
        "{:<28} {:>12} {:>10} {:>10}",
        "target", "req/s", "p50", "p99"
    );
    for (name, f) in [
        ("raw hyper hello", &hyper_figures),
        ("wedge examples/hello", &wedge_figures),
    ] {
        println!(
            "{:<28} {:>12.0} {:>10} {:>10}",
            name, f.requests_per_sec, f.p50, f.p99
        );
    }
    println!(
        "ratio wedge/hyper: {:.3}",
        wedge_figures.requests_per_sec / hyper_figures.requests_per_sec
    );
    Ok(())
}

/// Kills the server when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn wait_ready(url: &str) -> Result<(), String> {
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

fn wrk(options: &Options, url: &str) -> Result<Figures, String> {
    let out = Command::new("wrk")
        .arg(format!("-t{}", options.threads))
        .arg(format!("-c{}", options.connections))
        .arg(format!("-d{}", options.duration))
        .arg("--latency")
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
