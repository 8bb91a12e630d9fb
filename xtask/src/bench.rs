//! `cargo xtask bench [hello|inventory|all]`: wrk against wedge and against the
//! raw hyper hello-world, in the same run, with the ratio between them.
//!
//! - `hello`: `GET /<name>?name=edge` from `examples/hello` (Rust SDK),
//!   `examples/c-hello` (C, a reactor) and `examples/go-hello` (the Go SDK,
//!   a reactor).
//! - `inventory`: durable reservations, `POST /inventory/sku-N/reserve?qty=1`
//!   across 1000 SKUs, once with `durability = "sync"` and once `"periodic"`.
//! - `components`: `examples/http-hello`, a wasi:http component, served by
//!   wedge and by `wasmtime serve` (with its defaults, and with its pooling
//!   allocator), the WAGI `examples/hello` beside them; wedge against each
//!   `wasmtime serve` in the same rounds ([`crate::engines`]).
//! - `fifty`: hello with 50 functions loaded, each on its own route.
//! - `fleet`: reservations on one hot SKU, from one node on sled (`sync`)
//!   and from three nodes sharing it through a three-member etcd, without
//!   and with escrow (blocks of 1000), each node loaded by its own wrk.
//! - `origin`: `examples/origin-fallback` in front of the raw hyper server as
//!   its origin: hits served from the store, and misses (a copy that is
//!   always too old) that call the origin and store its answer, on a node
//!   with `durability = "periodic"` (a cache's writes need no fsync).
//! - `golive`: how soon new code serves: a 7 MB Go module landing, the p99
//!   of hello while another function swaps every 2 s, and start-up with
//!   1,000 functions ([`crate::golive`]). `speed` is `hello` and `golive`.
//! - `deploy` (not in `all`): fleet deploys timed to the last node serving,
//!   with and without compiled code shared ([`crate::deploys`]).
//!
//! Every target runs for the whole run; each round measures all of them in
//! turn, hyper first. The machine's speed drifts between minutes (hyper alone
//! has measured 103k–160k req/s here), so a ratio is taken within each round
//! and the table reports the median round.
//!
//! Options: `--duration 10s`, `--connections 32`, `--threads 2`, `--rounds 3`
//! (5 for `components`),
//! and `--baseline <wedge binary>`: a build of an earlier commit, measured on
//! the hello scenario (and on reservations with `sync`) in the same rounds, to compare a change with what it
//! changes (`git worktree add ../base <commit>` and build it there).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cargo, fleet, lay_out_examples, root, run};

/// One wrk run's figures.
pub(crate) struct Figures {
    pub(crate) requests_per_sec: f64,
    pub(crate) p50: String,
    pub(crate) p99: String,
}

pub(crate) struct Options {
    scenario: String,
    pub(crate) duration: String,
    pub(crate) connections: String,
    pub(crate) threads: String,
    rounds: usize,
    baseline: Option<std::path::PathBuf>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        scenario: "hello".into(),
        duration: "10s".into(),
        connections: "32".into(),
        threads: "2".into(),
        rounds: 3,
        baseline: None,
    };
    let mut it = args.iter().peekable();
    if let Some(first) = it.peek()
        && !first.starts_with("--")
    {
        o.scenario = it.next().unwrap().clone();
    }
    // Deploys are timed one by one, not by wrk: twenty of them by default.
    // `components` judges wedge against another server, whose rounds swing
    // as much as the node's: five rounds give its median room.
    match o.scenario.as_str() {
        "deploy" => o.rounds = 20,
        "components" => o.rounds = 5,
        _ => {}
    }
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        match flag.as_str() {
            "--duration" => o.duration = value,
            "--connections" => o.connections = value,
            "--threads" => o.threads = value,
            "--baseline" => {
                let path = std::path::PathBuf::from(&value);
                if !path.is_file() {
                    return Err(format!("--baseline {value}: no such wedge binary"));
                }
                o.baseline = Some(path);
            }
            "--rounds" => {
                o.rounds = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--rounds needs a positive count, not {value}"))?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    if options.scenario == "deploy" {
        run(cargo().args(["build", "--locked", "--release", "--package", "wedge"]))?;
        return crate::deploys::bench(options.rounds);
    }
    let scenarios: &[&str] = match options.scenario.as_str() {
        "hello" => &["hello"],
        "inventory" => &["inventory"],
        "fifty" => &["fifty"],
        "components" => &["components"],
        "fleet" => &["fleet"],
        "origin" => &["origin"],
        "golive" => &["golive"],
        "speed" => &["hello", "golive"],
        "all" => &[
            "hello",
            "components",
            "inventory",
            "fifty",
            "fleet",
            "origin",
            "golive",
        ],
        other => {
            return Err(format!(
                "unknown scenario {other} (hello, components, inventory, fifty, fleet, origin, golive, speed, all, deploy)"
            ));
        }
    };
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk is not installed (apt-get install wrk)".into());
    }
    run(cargo().args([
        "build",
        "--locked",
        "--release",
        "--package",
        "wedge",
        "--package",
        "hyper-hello",
    ]))?;
    let release = root().join("target/release");

    let hyper_port = free_port()?;
    let mut servers = vec![Server(
        Command::new(release.join("hyper-hello"))
            .arg(format!("127.0.0.1:{hyper_port}"))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start hyper-hello: {e}"))?,
    )];
    let hyper_url = format!("http://127.0.0.1:{hyper_port}/");
    wait_ready(&hyper_url)?;
    let mut targets = vec![Target::new("raw hyper hello", hyper_url, None)];
    // Pairs of targets compared with each other as well as with hyper: each
    // fleet against the single sled node.
    let mut versus: Vec<(usize, usize)> = Vec::new();

    // Every server is started (and the inventory seeded) before the first
    // round, so the rounds only measure.
    for scenario in scenarios {
        match *scenario {
            // Not wrk rounds: measured after them, below.
            "golive" => {}
            "hello" => {
                let (server, port) = start_wedge("hello", "sync")?;
                servers.push(server);
                for (name, path) in [
                    ("wedge examples/hello (Rust SDK)", "hello"),
                    ("wedge examples/c-hello (C reactor)", "c-hello"),
                    ("wedge examples/go-hello (Go SDK reactor)", "go-hello"),
                ] {
                    let url = format!("http://127.0.0.1:{port}/{path}?name=edge");
                    wait_ready(&url)?;
                    targets.push(Target::new(name, url, None));
                }
                if let Some(baseline) = &options.baseline {
                    let (server, port) =
                        start_binary(baseline, "hello-baseline", "sync", |_| Ok(()))?;
                    servers.push(server);
                    let url = format!("http://127.0.0.1:{port}/hello");
                    wait_ready(&url)?;
                    targets.push(Target::new("baseline wedge, hello", url, None));
                }
            }
            "components" => {
                let wasmtime = crate::engines::wasmtime_cli()?;
                let (server, port) = start_wedge("components", "sync")?;
                servers.push(server);
                let component = targets.len();
                for (name, path) in [
                    ("wedge examples/http-hello (wasi:http)", "http-hello"),
                    ("wedge examples/hello (WAGI)", "hello"),
                ] {
                    let url = format!("http://127.0.0.1:{port}/{path}?name=edge");
                    wait_ready(&url)?;
                    targets.push(Target::new(name, url, None));
                }
                let module = root()
                    .join(crate::WASM_TARGET_DIR)
                    .join("wasm32-wasip1/release/http-hello.wasm");
                for (name, pooling) in [
                    ("wasmtime serve, defaults", false),
                    ("wasmtime serve, pooling", true),
                ] {
                    let (server, url) =
                        crate::engines::wasmtime_serve(&wasmtime, &module, pooling)?;
                    servers.push(server);
                    wait_ready(&url)?;
                    versus.push((component, targets.len()));
                    targets.push(Target::new(name, url, None));
                }
            }
            "origin" => {
                let toml = |max_age: u32| {
                    format!(
                        "route = \"/{{}}\"\noutbound = [\"http://127.0.0.1:{hyper_port}\"]\nenv = {{ ORIGIN = \"http://127.0.0.1:{hyper_port}\", MAX_AGE_SECS = \"{max_age}\" }}\n"
                    )
                };
                let (server, port) = start_configured(
                    &release.join("wedge"),
                    "origin",
                    "",
                    "durability = \"periodic\"\n",
                    "",
                    |functions| {
                        let hit = functions.join("origin-fallback");
                        let miss = functions.join("origin-miss");
                        std::fs::create_dir_all(&miss).map_err(|e| e.to_string())?;
                        std::fs::copy(hit.join("v1.wasm"), miss.join("v1.wasm"))
                            .map_err(|e| e.to_string())?;
                        let write = |dir: &std::path::Path, route: &str, max_age| {
                            std::fs::write(
                                dir.join("function.toml"),
                                toml(max_age).replace("{}", route),
                            )
                            .map_err(|e| e.to_string())
                        };
                        write(&hit, "origin-fallback", 3600)?;
                        // A copy is never fresh: every request calls the origin.
                        write(&miss, "origin-miss", 0)
                    },
                )?;
                servers.push(server);
                for (name, path) in [
                    ("origin-fallback, hit", "origin-fallback/item"),
                    ("origin-fallback, miss", "origin-miss/item"),
                ] {
                    let url = format!("http://127.0.0.1:{port}/{path}");
                    wait_ready(&url)?;
                    targets.push(Target::new(name, url, None));
                }
            }
            "fifty" => {
                let (server, port) = start_wedge_with("fifty", "sync", |functions| {
                    let hello = functions.join("hello/v1.wasm");
                    for i in 1..=45 {
                        let dir = functions.join(format!("hello{i:02}"));
                        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                        std::fs::copy(&hello, dir.join("v1.wasm")).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })?;
                servers.push(server);
                let url = format!("http://127.0.0.1:{port}/hello45");
                wait_ready(&url)?;
                targets.push(Target::new("wedge hello, 50 functions", url, None));
            }
            "fleet" => {
                let script = fleet::hot_script()?;
                let (server, port) = start_wedge("hot-sled", "sync")?;
                servers.push(server);
                fleet::seed_hot(port)?;
                targets.push(Target::new(
                    "1 node, sled sync, hot SKU",
                    format!("http://127.0.0.1:{port}"),
                    Some(script.clone()),
                ));
                let single = targets.len() - 1;
                let (members, endpoints) = fleet::start_etcd()?;
                servers.extend(members);
                for (escrow, name) in [
                    (false, "3 nodes on etcd, hot SKU"),
                    (true, "3 nodes, etcd + escrow"),
                ] {
                    let mut urls = Vec::new();
                    for node in ["n0", "n1", "n2"] {
                        let (server, port) = fleet::start_node(node, &endpoints, escrow)?;
                        servers.push(server);
                        urls.push(format!("http://127.0.0.1:{port}"));
                    }
                    let first: u16 = urls[0]
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    fleet::seed_hot(first)?;
                    for url in &urls {
                        wait_ready(&format!("{url}{}", fleet::HOT_SKU))?;
                    }
                    versus.push((targets.len(), single));
                    targets.push(Target::fleet(name, urls, Some(script.clone())));
                }
            }
            _ => {
                let script = root().join("target/bench/reserve.lua");
                std::fs::write(&script, RESERVE_LUA).map_err(|e| e.to_string())?;
                for durability in ["sync", "periodic"] {
                    let (server, port) =
                        start_wedge(&format!("inventory-{durability}"), durability)?;
                    servers.push(server);
                    seed_inventory(port)?;
                    targets.push(Target::new(
                        &format!("wedge reserve ({durability})"),
                        format!("http://127.0.0.1:{port}"),
                        Some(script.clone()),
                    ));
                }
                if let Some(baseline) = &options.baseline {
                    let (server, port) =
                        start_binary(baseline, "inventory-baseline", "sync", |_| Ok(()))?;
                    servers.push(server);
                    seed_inventory(port)?;
                    targets.push(Target::new(
                        "baseline wedge, reserve (sync)",
                        format!("http://127.0.0.1:{port}"),
                        Some(script.clone()),
                    ));
                }
            }
        }
    }

    println!(
        "wrk -t{} -c{} -d{}, {} rounds, each measuring every target in turn \
         (same run, same machine: {} cores)",
        options.threads,
        options.connections,
        options.duration,
        options.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for round in 1..=options.rounds {
        let mut line = format!("round {round}:");
        for target in &mut targets {
            let figures = wrk_all(&options, &target.urls, target.script.as_deref())?;
            line.push_str(&format!(" {:.0}", figures.requests_per_sec));
            target.rounds.push(figures);
        }
        println!("{line}");
    }

    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>12} {:>10} {:>7}  ratio per round",
        "target (median-ratio round)", "req/s", "p50", "p99", "hyper req/s", "hyper p99", "ratio"
    );
    let hyper: Vec<f64> = targets[0]
        .rounds
        .iter()
        .map(|f| f.requests_per_sec)
        .collect();
    for (i, target) in targets.iter().enumerate() {
        let ratios: Vec<f64> = target
            .rounds
            .iter()
            .zip(&hyper)
            .map(|(f, h)| f.requests_per_sec / h)
            .collect();
        // The round whose ratio is the median, with hyper's figures from that
        // round (p99 to compare latency against); for hyper itself, its median
        // round.
        let round = median_index(if i == 0 { &hyper } else { &ratios });
        let figures = &target.rounds[round];
        println!(
            "{:<28} {:>10.0} {:>10} {:>10} {:>12.0} {:>10} {:>7.3}  {}",
            target.name,
            figures.requests_per_sec,
            figures.p50,
            figures.p99,
            hyper[round],
            targets[0].rounds[round].p99,
            ratios[round],
            ratios
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    for (a, b) in versus {
        let ratios: Vec<f64> = targets[a]
            .rounds
            .iter()
            .zip(&targets[b].rounds)
            .map(|(x, y)| x.requests_per_sec / y.requests_per_sec)
            .collect();
        println!(
            "{} against {}: {:.2}x (median round; per round {})",
            targets[a].name,
            targets[b].name,
            ratios[median_index(&ratios)],
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    drop(servers);
    if scenarios.contains(&"golive") {
        let modules = root()
            .join(crate::WASM_TARGET_DIR)
            .join("wasm32-wasip1/release");
        crate::golive::bench(&options, &modules)?;
    }
    Ok(())
}

/// One thing wrk measures, and its figures from each round. A target of
/// several nodes is measured by one wrk per node at once, the connections
/// split between them, and its figures added up.
struct Target {
    name: String,
    urls: Vec<String>,
    script: Option<std::path::PathBuf>,
    rounds: Vec<Figures>,
}

impl Target {
    fn new(name: &str, url: String, script: Option<std::path::PathBuf>) -> Self {
        Self::fleet(name, vec![url], script)
    }

    fn fleet(name: &str, urls: Vec<String>, script: Option<std::path::PathBuf>) -> Self {
        Self {
            name: name.into(),
            urls,
            script,
            rounds: Vec::new(),
        }
    }
}

/// Where the median of `values` sits (the upper of the middle two for an even
/// count).
fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[order.len() / 2]
}

/// wrk's request generator for reservations across 1000 SKUs.
const RESERVE_LUA: &str = r#"
wrk.method = "POST"
request = function()
  return wrk.format(nil, "/inventory/sku-" .. math.random(1, 1000) .. "/reserve?qty=1")
end
"#;

/// Starts a release wedge over the examples with `durability`; returns it and its port.
fn start_wedge(name: &str, durability: &str) -> Result<(Server, u16), String> {
    start_wedge_with(name, durability, |_| Ok(()))
}

/// Like [`start_wedge`], with `extra` adding to the functions directory first.
fn start_wedge_with(
    name: &str,
    durability: &str,
    extra: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> Result<(Server, u16), String> {
    start_binary(
        &root().join("target/release/wedge"),
        name,
        durability,
        extra,
    )
}

/// Starts `binary` as a wedge over the examples, as [`start_wedge_with`] does.
fn start_binary(
    binary: &std::path::Path,
    name: &str,
    durability: &str,
    extra: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> Result<(Server, u16), String> {
    start_configured(
        binary,
        name,
        "",
        &format!("durability = \"{durability}\"\n"),
        "",
        extra,
    )
}

/// Starts `binary` over the examples with `server` and `store` lines added to
/// `[server]` and `[store]`, and `tables` appended to `wedge.toml`.
pub(crate) fn start_configured(
    binary: &std::path::Path,
    name: &str,
    server: &str,
    store: &str,
    tables: &str,
    extra: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> Result<(Server, u16), String> {
    start_with_admin(binary, name, server, store, tables, extra).map(|(s, port, _)| (s, port))
}

/// Like [`start_configured`]; also returns the admin API's port.
pub(crate) fn start_with_admin(
    binary: &std::path::Path,
    name: &str,
    server: &str,
    store: &str,
    tables: &str,
    extra: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> Result<(Server, u16, u16), String> {
    let port = free_port()?;
    let dir = root().join("target/bench").join(name);
    let _ = std::fs::remove_dir_all(dir.join("data"));
    let config = lay_out_examples(&dir, &format!("127.0.0.1:{port}"))?;
    let admin = free_port()?;
    extra(&dir.join("functions"))?;
    let mut text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    text = text.replace("[store]\n", &format!("[store]\n{store}"));
    text = text.replace("[server]\n", &format!("[server]\n{server}"));
    // Each wedge of the run has its own admin port.
    text.push_str(&format!("\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"));
    text.push_str(tables);
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let server = Server(
        Command::new(binary)
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
    wait_optimized(&format!("127.0.0.1:{admin}"))?;
    Ok((server, port, admin))
}

/// Waits until every function of the node whose admin API is at `admin`
/// serves, on optimized code: the module cache starts empty, and a round
/// measured on Winch's baseline code (or beside a compile) measures that.
fn wait_optimized(admin: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let timeout = Duration::from_secs(5);
    while Instant::now() < deadline {
        let ready =
            get(admin, "/readyz?all=1", timeout).is_some_and(|r| r.contains("\npending: 0\n"));
        let optimized = ready
            && get(admin, "/v1/functions", timeout)
                .is_some_and(|body| !body.contains("\"tier\":\"baseline\""));
        if optimized {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "the node at {admin} was not all on optimized code within 600 s"
    ))
}

/// Seeds sku-1..=sku-1000 with more stock than any run can take.
fn seed_inventory(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    for sku in 1..=1000 {
        loop {
            match put(port, &format!("/inventory/sku-{sku}"), "1000000000000") {
                Ok(200) => break,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                other => return Err(format!("seeding sku-{sku} failed: {other:?}")),
            }
        }
    }
    Ok(())
}

/// A GET over HTTP/1.1 to `addr`, answered within `timeout`: the whole
/// response, head and body.
pub(crate) fn get(addr: &str, path: &str, timeout: Duration) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply)
}

pub(crate) fn put(port: u16, path: &str, body: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    reply
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad reply: {reply}"))
}

/// Kills the server when dropped.
pub(crate) struct Server(pub(crate) Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

pub(crate) fn wait_ready(url: &str) -> Result<(), String> {
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
fn wrk_all(
    options: &Options,
    urls: &[String],
    script: Option<&std::path::Path>,
) -> Result<Figures, String> {
    if let [url] = urls {
        let (threads, connections) = (options.threads.clone(), options.connections.clone());
        return wrk(options, &threads, &connections, url, script);
    }
    let total: usize = options
        .connections
        .parse()
        .map_err(|_| "--connections needs a count")?;
    let share = (total / urls.len()).max(1).to_string();
    let runs: Vec<_> = urls
        .iter()
        .map(|url| {
            let (share, url) = (share.clone(), url.clone());
            let script = script.map(|s| s.to_path_buf());
            let options = Options {
                scenario: options.scenario.clone(),
                duration: options.duration.clone(),
                connections: share.clone(),
                threads: "1".into(),
                rounds: 1,
                baseline: None,
            };
            std::thread::spawn(move || wrk(&options, "1", &share, &url, script.as_deref()))
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

pub(crate) fn wrk(
    options: &Options,
    threads: &str,
    connections: &str,
    url: &str,
    script: Option<&std::path::Path>,
) -> Result<Figures, String> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}", options.duration))
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
