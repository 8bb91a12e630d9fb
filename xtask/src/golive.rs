//! `cargo xtask bench golive` (part of `speed` and `all`): how soon new code
//! serves, and what a swap costs the requests around it.
//!
//! - **A big module goes live**: `examples/go-rules`, a Go reactor of about
//!   7 MB, lands in `functions/big/` ten times, each time as a new label with
//!   a new custom section, so each is new bytes to initialize and compile.
//!   The clock starts at the rename that lands the file. It stops when a
//!   request to `/big` (one every 5 ms) is answered by the new version (its
//!   `x-wedge-version`), and again when the admin API shows that version on
//!   its optimized code.
//! - **Where the floor is**: the same module through the compile child by
//!   itself, no node around it: the whole baseline compile (instrument,
//!   compile, initialize, snapshot, compile the snapshot), and one Winch
//!   compile of the snapshot alone, which nothing that compiles the landed
//!   module before serving it can go below.
//! - **Latency around swaps**: wrk on `/hello` for the run's duration with
//!   nothing else going on, then again while `examples/go-hello`, new bytes
//!   each time, replaces the module of another function every 2 s. The p99
//!   of both.
//! - **Start-up**: 1,000 distinct hello modules, none compiled. The time from
//!   starting wedge to the first request served (`/f0000`, the first in the
//!   compile queue), to every function serving (`/readyz?all=1`), and to
//!   every function on optimized code. Then a restart with all 1,000 cached:
//!   the time until all serve, and the process's RSS and anonymous RSS.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::{Options, Server, free_port, get, start_with_admin, wrk};
use crate::root;

/// Big-module rounds.
const ROUNDS: usize = 10;

/// Functions in the start-up scenario.
const FUNCTIONS: usize = 1000;

/// How long one answer may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one thing may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(600);

/// The status of a response.
fn status(reply: &str) -> Option<u16> {
    reply.get(9..12)?.parse().ok()
}

/// The value of header `name` (lower case) in a response.
fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let head = reply.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.trim().eq_ignore_ascii_case(name)).then(|| v.trim())
    })
}

/// Whether the admin API at `admin` shows `label` of `function` on its
/// optimized code.
fn optimized(admin: &str, function: &str, label: &str) -> bool {
    let Some(body) = get(admin, "/v1/functions", READ_TIMEOUT) else {
        return false;
    };
    body.split("{\"name\":")
        .find(|f| f.starts_with(&format!("\"{function}\"")))
        .and_then(|f| f.split(&format!("{{\"label\":\"{label}\"")).nth(1))
        .and_then(|v| v.split('}').next())
        .is_some_and(|v| v.contains("\"tier\":\"optimized\""))
}

/// Waits for `done`, polling every `every`; how long it took from `since`.
fn wait_for(
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median, min and max in milliseconds.
fn spread(times: &mut [Duration]) -> String {
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
fn land(path: &Path, bytes: &[u8]) -> Result<Instant, String> {
    let tmp = path.with_extension("landing");
    std::fs::write(&tmp, bytes).map_err(|e| e.to_string())?;
    let landed = Instant::now();
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
    Ok(landed)
}

/// The scenario. `modules` is where the examples were built.
pub fn bench(options: &Options, modules: &Path) -> Result<(), String> {
    let wedge = root().join("target/release/wedge");
    let go_rules = std::fs::read(modules.join("go-rules.wasm")).map_err(|e| e.to_string())?;
    let go_hello = std::fs::read(modules.join("go-hello.wasm")).map_err(|e| e.to_string())?;
    let hello = std::fs::read(modules.join("hello.wasm")).map_err(|e| e.to_string())?;

    let floor_line = compile_floor(&wedge, &go_rules)?;
    println!("{floor_line}");

    let (server, port, admin) = start_with_admin(&wedge, "golive", "", "", "", |_| Ok(()))?;
    let (addr, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    // `start_with_admin` returned once every example serves on optimized
    // code: the Go ones' optimized compiles (seconds each) would otherwise
    // compete with the first landing.
    let functions = root().join("target/bench/golive/functions");

    println!(
        "a {:.1} MB Go module (examples/go-rules) landing {ROUNDS} times as a new version:",
        go_rules.len() as f64 / (1 << 20) as f64
    );
    let big = functions.join("big");
    std::fs::create_dir_all(&big).map_err(|e| e.to_string())?;
    let (mut serving, mut optimizing) = (Vec::new(), Vec::new());
    for i in 1..=ROUNDS {
        let label = format!("v{i}");
        if i > 1 {
            let _ = std::fs::remove_file(big.join(format!("v{}.wasm", i - 1)));
        }
        let bytes = wedge_wasmgen::padded(&go_rules, 7000 + i as u32, 16);
        let landed = land(&big.join(format!("{label}.wasm")), &bytes)?;
        // Every 5 ms: each probe is a request the node serves, and probing
        // every 1 ms took about a tenth of the compile child's CPU from it.
        let served = wait_for("serving", landed, Duration::from_millis(5), || {
            get(&addr, "/big/x", READ_TIMEOUT)
                .is_some_and(|r| header(&r, "x-wedge-version") == Some(&label))
        })?;
        let optimized_at = wait_for("optimized code", landed, Duration::from_millis(10), || {
            optimized(&admin, "big", &label)
        })?;
        println!(
            "  {label}: serving after {:.0} ms, on optimized code after {:.0} ms",
            ms(served),
            ms(optimized_at)
        );
        serving.push(served);
        optimizing.push(optimized_at);
    }
    let big_line = format!(
        "file landing to serving: {}\nfile landing to optimized code: {}",
        spread(&mut serving),
        spread(&mut optimizing)
    );
    let _ = std::fs::remove_dir_all(&big);

    println!(
        "p99 of /hello (wrk -t{} -c{} -d{}), quiet and while another function swaps every 2 s:",
        options.threads, options.connections, options.duration
    );
    let url = format!("http://{addr}/hello?name=edge");
    let quiet = wrk(options, &options.threads, &options.connections, &url, None)?;
    let churn = functions.join("churn");
    std::fs::create_dir_all(&churn).map_err(|e| e.to_string())?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, churn, go_hello) = (stop.clone(), churn.clone(), go_hello.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let bytes = wedge_wasmgen::padded(&go_hello, 9000 + swaps, 16);
                if land(&churn.join("v1.wasm"), &bytes).is_ok() {
                    swaps += 1;
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            swaps
        })
    };
    let busy = wrk(options, &options.threads, &options.connections, &url, None)?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().map_err(|_| "the swapping thread panicked")?;
    let p99_line = format!(
        "p99 of /hello: {} quiet ({:.0} req/s), {} with {swaps} swaps of a 5 MB Go module ({:.0} req/s)",
        quiet.p99, quiet.requests_per_sec, busy.p99, busy.requests_per_sec
    );
    drop(server);

    let startup_lines = startup(&wedge, &hello)?;
    println!("{big_line}\n{floor_line}\n{p99_line}");
    for line in startup_lines {
        println!("{line}");
    }
    Ok(())
}

/// Runs `wedge compile-module` over `wasm` by itself, five times each: the
/// whole baseline compile, and one Winch compile of the snapshot it makes.
fn compile_floor(wedge: &Path, wasm: &[u8]) -> Result<String, String> {
    let dir = root().join("target/bench/golive-floor");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (module, snapshot) = (dir.join("module.wasm"), dir.join("snapshot.wasm"));
    std::fs::write(&module, wasm).map_err(|e| e.to_string())?;
    let time = |input: &Path, snapshot_out: Option<&Path>| -> Result<Duration, String> {
        let mut command = Command::new(wedge);
        command.args(["compile-module", "--baseline"]);
        if let Some(out) = snapshot_out {
            command.arg("--snapshot-out").arg(out);
        }
        let input = std::fs::File::open(input).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let status = command
            .stdin(input)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        match status.success() {
            true => Ok(started.elapsed()),
            false => Err(format!("wedge compile-module failed: {status}")),
        }
    };
    let mut whole = Vec::new();
    for _ in 0..5 {
        whole.push(time(&module, Some(&snapshot))?);
    }
    let mut once = Vec::new();
    for _ in 0..5 {
        once.push(time(&snapshot, None)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "the compile child by itself: the whole baseline compile {}; one Winch compile of the snapshot {}",
        spread(&mut whole),
        spread(&mut once)
    ))
}

/// Start-up with [`FUNCTIONS`] functions, first none compiled, then all.
fn startup(wedge: &Path, hello: &[u8]) -> Result<Vec<String>, String> {
    let dir = root().join("target/bench/startup");
    let _ = std::fs::remove_dir_all(&dir);
    let functions = dir.join("functions");
    for i in 0..FUNCTIONS {
        let f = functions.join(format!("f{i:04}"));
        std::fs::create_dir_all(&f).map_err(|e| e.to_string())?;
        std::fs::write(f.join("v1.wasm"), wedge_wasmgen::padded(hello, i as u32, 0))
            .map_err(|e| e.to_string())?;
    }
    let (port, admin) = (free_port()?, free_port()?);
    let config = dir.join("wedge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[functions]\ndir = \"functions\"\n\n[store]\ndir = \"data\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let (addr, admin) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    let start = || -> Result<(Server, Instant), String> {
        let started = Instant::now();
        let child = Command::new(wedge)
            .arg("serve")
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start wedge: {e}"))?;
        Ok((Server(child), started))
    };
    println!("start-up with {FUNCTIONS} distinct functions:");
    let (server, started) = start()?;
    let first = wait_for(
        "the first request",
        started,
        Duration::from_millis(1),
        || get(&addr, "/f0000", READ_TIMEOUT).and_then(|r| status(&r)) == Some(200),
    )?;
    let all = wait_for("every function", started, Duration::from_millis(10), || {
        get(&admin, "/readyz?all=1", READ_TIMEOUT).and_then(|r| status(&r)) == Some(200)
    })?;
    let optimized_all = wait_for(
        "optimized code",
        started,
        Duration::from_millis(200),
        || {
            get(&admin, "/v1/functions", READ_TIMEOUT)
                .is_some_and(|b| b.matches("\"tier\":\"optimized\"").count() == FUNCTIONS)
        },
    )?;
    let uncompiled = format!(
        "{FUNCTIONS} uncompiled: first request served after {:.0} ms, all serving after {:.0} ms, all on optimized code after {:.0} ms",
        ms(first),
        ms(all),
        ms(optimized_all)
    );
    drop(server);

    let (server, started) = start()?;
    let ready = wait_for("every function", started, Duration::from_millis(1), || {
        get(&admin, "/readyz?all=1", READ_TIMEOUT).and_then(|r| status(&r)) == Some(200)
    })?;
    if get(&addr, "/f0999", READ_TIMEOUT).and_then(|r| status(&r)) != Some(200) {
        return Err("f0999 does not serve after the restart".into());
    }
    std::thread::sleep(Duration::from_secs(1));
    let status_file = std::fs::read_to_string(format!("/proc/{}/status", server.0.id()))
        .map_err(|e| e.to_string())?;
    let kib = |field: &str| {
        status_file
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cached = format!(
        "{FUNCTIONS} cached: all serving after {:.0} ms; idle RSS {:.0} MiB, of it anonymous {:.0} MiB",
        ms(ready),
        kib("VmRSS:") as f64 / 1024.0,
        kib("RssAnon:") as f64 / 1024.0
    );
    drop(server);
    Ok(vec![uncompiled, cached])
}
