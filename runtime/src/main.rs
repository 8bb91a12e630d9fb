//! The `wedge` command: `serve` runs the node; `check` validates a module
//! offline; `deploy`, `promote`, `rollback`, `status` and `kv` talk to a node's
//! admin API.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wedge::admin::client::AdminClient;
use wedge::config::Config;
use wedge::control::catalogue::module;
use wedge::guest::engine::{Tier, WasmEngine};
use wedge::telemetry::log::LogFormat;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// wedge: an edge-function runtime for wasm32-wasip1 HTTP handlers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the functions directory over HTTP.
    Serve {
        /// Path to wedge.toml; when the default is missing, every setting takes its default.
        #[arg(short, long, default_value = "wedge.toml", env = "WEDGE_CONFIG")]
        config: PathBuf,
        /// Log as human-readable text or as one JSON object per line.
        #[arg(long, value_enum, default_value = "text", env = "WEDGE_LOG_FORMAT")]
        log_format: LogFormat,
    },
    /// Validate a module against the guest ABI and print its imports, size and hash.
    Check {
        /// The .wasm file.
        module: PathBuf,
    },
    /// Upload a module as a new version and move traffic to it (100 %, or a canary share).
    Deploy {
        /// The function's name.
        name: String,
        /// The .wasm file.
        module: PathBuf,
        /// Version label; default: the next `v<N>`.
        #[arg(long = "version")]
        label: Option<String>,
        /// Take only this share of traffic, as a canary next to the current stable.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        canary: Option<u8>,
        /// Deploy to every node of the fleet: push the module to the registry
        /// and change the fleet's desired state in etcd.
        #[arg(long)]
        fleet: bool,
        /// With --fleet: the function's function.toml (route, limits, sticky
        /// key, rollback and promote policy) for the whole fleet.
        #[arg(long = "config", requires = "fleet")]
        function_toml: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a function's canary its stable version.
    Promote {
        /// The function's name.
        name: String,
        /// On every node of the fleet.
        #[arg(long)]
        fleet: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Give the canary 0 %, or (without one) return to the stable before the last promote.
    Rollback {
        /// The function's name.
        name: String,
        /// On every node of the fleet.
        #[arg(long)]
        fleet: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Take a function out of the fleet: every node stops serving it and
    /// removes its directory. (On a single node, remove functions/<name>.)
    Remove {
        /// The function's name.
        name: String,
        /// From every node of the fleet (required: one node's functions
        /// directory is the operator's own).
        #[arg(long)]
        fleet: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show every function: route, versions, traffic, counts, last error.
    Status {
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The whole fleet: every node, what it serves, its figures, and who lags.
        #[arg(long)]
        fleet: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Read and write the key-value stores (seeding stock, say).
    Kv {
        #[command(subcommand)]
        op: KvOp,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Compiles one module from stdin to stdout; what `serve` runs in a child
    /// process for every compile.
    #[command(name = "compile-module", hide = true)]
    CompileModule {
        /// Winch's quick code instead of Cranelift's optimized code.
        #[arg(long)]
        baseline: bool,
        /// Where to write the pre-initialized snapshot of a reactor, which
        /// the optimized compile then compiles instead of initializing again.
        #[arg(long)]
        snapshot_out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KvOp {
    /// Print a key's value.
    Get { store: String, key: String },
    /// Set a key; `-` reads the value from stdin.
    Set {
        store: String,
        key: String,
        value: String,
    },
    /// Delete a key.
    Del { store: String, key: String },
    /// Give the escrowed units a dead node holds back to the pools. Only for a
    /// node that is gone for good: never one that is partitioned, paused or
    /// restarting (it would sell them too), nor one whose data directory
    /// survives (start it instead: it gives back exactly what it holds).
    Reclaim { node: String },
}

/// Where the admin API is and how to authenticate.
#[derive(clap::Args)]
struct AdminArgs {
    /// The node's admin API.
    #[arg(
        long = "admin",
        env = "WEDGE_ADMIN",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    url: String,
    /// File holding the bearer token (else the WEDGE_ADMIN_TOKEN environment variable).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, log_format } => serve(&config, log_format),
        Command::Check { module } => check(&module),
        Command::Deploy {
            name,
            module,
            label,
            canary,
            fleet,
            function_toml,
            admin,
        } => with_admin(&admin, |c| async move {
            let done = match fleet {
                true => {
                    wedge::admin::client::deploy_fleet(
                        &c,
                        &name,
                        &module,
                        label,
                        canary,
                        function_toml.as_deref(),
                    )
                    .await?
                }
                false => wedge::admin::client::deploy(&c, &name, &module, label, canary).await?,
            };
            println!("{done}");
            Ok(())
        }),
        Command::Promote { name, fleet, admin } => with_admin(&admin, |c| async move {
            print_deployment(&name, &c.action(&name, "promote", fleet).await?);
            Ok(())
        }),
        Command::Rollback { name, fleet, admin } => with_admin(&admin, |c| async move {
            print_deployment(&name, &c.action(&name, "rollback", fleet).await?);
            Ok(())
        }),
        Command::Remove {
            fleet: false, name, ..
        } => Err(anyhow::anyhow!(
            "without --fleet there is nothing to remove remotely: on a single node, delete functions/{name}"
        )),
        Command::Remove { name, admin, .. } => with_admin(&admin, |c| async move {
            let removed = c.fleet_remove(&name).await?;
            println!(
                "removed {name} from the fleet (revision {})",
                removed.revision
            );
            Ok(())
        }),
        Command::Status {
            json,
            fleet: true,
            admin,
        } => with_admin(&admin, |c| async move {
            let state = c.fleet().await?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&state)?),
                false => print!("{}", wedge::admin::client::fleet_table(&state)),
            }
            Ok(())
        }),
        Command::Status { json, admin, .. } => with_admin(&admin, |c| async move {
            let functions = c.functions().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&functions)?);
            } else {
                print!("{}", wedge::admin::client::status_table(&functions));
            }
            Ok(())
        }),
        Command::Kv { op, admin } => with_admin(&admin, |c| async move { kv(&c, op).await }),
        Command::CompileModule {
            baseline,
            snapshot_out,
        } => {
            let tier = match baseline {
                true => Tier::Baseline,
                false => Tier::Optimized,
            };
            return compile_module(tier, snapshot_out.as_deref());
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// mimalloc's option for committing whole arenas up front. Left on, an idle node
/// is resident at 54 MiB instead of 17 MiB. mimalloc reads it from the
/// environment before `main` runs, so `serve` sets it and starts itself again
/// (same process id) unless the operator has chosen a value.
const EAGER_COMMIT: &str = "MIMALLOC_ARENA_EAGER_COMMIT";

fn commit_memory_lazily() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(EAGER_COMMIT).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(EAGER_COMMIT, "0")
        .exec();
    // Only reached when exec failed: serve as we are, with eager commit.
    eprintln!("note: cannot restart with {EAGER_COMMIT}=0 ({err}); continuing");
}

fn serve(config_path: &Path, log_format: LogFormat) -> anyhow::Result<()> {
    commit_memory_lazily();
    let config = if !config_path.exists() && config_path == Path::new("wedge.toml") {
        Config::parse("", config_path, Path::new("."))?
    } else {
        Config::load(config_path)?
    };
    let _log = wedge::telemetry::log::init(log_format, &config.server.region)
        .context("cannot start the log writer")?;
    // Requests are served on the lanes' own threads (see `wedge::edge::lanes`); this
    // runtime accepts connections and runs the admin API, reloads and checks.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("wedge-control")
        .build()
        .context("cannot start the async runtime")?;
    let compiler =
        std::env::current_exe().context("cannot find the wedge binary to compile with")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        wedge::serve(config, listener, compiler, shutdown_signal()).await
    })?;
    tracing::info!(target: "wedge::server", "stopped");
    Ok(())
}

/// Runs a client command against the admin API on a small runtime.
fn with_admin<F, Fut>(args: &AdminArgs, f: F) -> anyhow::Result<()>
where
    F: FnOnce(AdminClient) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let client = AdminClient::new(&args.url, args.token_file.as_deref())?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f(client))
}

fn print_deployment(name: &str, d: &wedge::config::Deployment) {
    match &d.canary {
        Some(c) => println!(
            "{name}: stable {} and canary {c} at {}%",
            d.stable, d.canary_percent
        ),
        None => println!("{name}: stable {} at 100%", d.stable),
    }
}

async fn kv(client: &AdminClient, op: KvOp) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    match op {
        KvOp::Get { store, key } => match client.kv_get(&store, &key).await? {
            Some(v) => {
                std::io::stdout().write_all(&v)?;
                if !v.ends_with(b"\n") {
                    println!();
                }
                Ok(())
            }
            None => anyhow::bail!("no key `{key}` in store `{store}`"),
        },
        KvOp::Set { store, key, value } => {
            let value = if value == "-" {
                let mut buf = Vec::new();
                std::io::stdin().read_to_end(&mut buf)?;
                buf
            } else {
                value.into_bytes()
            };
            client.kv_set(&store, &key, value.into()).await
        }
        KvOp::Del { store, key } => match client.kv_del(&store, &key).await? {
            true => Ok(()),
            false => anyhow::bail!("no key `{key}` in store `{store}`"),
        },
        KvOp::Reclaim { node } => {
            let done = client.kv_reclaim(&node).await?;
            let counters = done.reclaimed;
            for c in &counters {
                println!("{}/{}: {} units back in the pool", c.store, c.key, c.units);
            }
            println!("{node}: {} counters reclaimed", counters.len());
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(target: "wedge::server", "SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!(target: "wedge::server", "SIGINT received"),
    }
}

/// `wedge compile-module`: the wasm on stdin, wasmtime's compiled code of
/// `tier` on stdout (of the snapshot, for a reactor with an `_initialize`,
/// which is also written to `snapshot_out` when given), an invalid module's
/// error on stderr with exit status 2, a failed initialization's with 3. An
/// optimized compile runs only when a core is idle, a baseline one beside the
/// serving threads ([`share_the_cpu`]).
fn compile_module(tier: Tier, snapshot_out: Option<&Path>) -> ExitCode {
    use std::io::{Read, Write};
    // A compile outlives no node: it dies with the process that started it.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() == 1) {
        return ExitCode::FAILURE;
    }
    share_the_cpu(tier);
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("cannot read the module: {e}");
        return ExitCode::FAILURE;
    }
    let engine = match wedge::guest::engine::compiling_engine(tier) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("cannot set up the compiler: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // A reactor's `_initialize` runs here, in the child, where the compile
    // timeout can stop it; its snapshot is what gets compiled. An optimized
    // compile initializes with Winch's code, quick to make, unless it was
    // handed a snapshot already.
    let initializes = matches!(
        wedge::guest::preinit::Shape::of(&wasm),
        Ok(wedge::guest::preinit::Shape::Reactor { initialize: true })
    );
    let winch = match tier {
        Tier::Optimized if initializes => {
            wedge::guest::engine::compiling_engine(Tier::Baseline).ok()
        }
        _ => None,
    };
    let engines: Vec<&wasmtime::Engine> = winch.iter().chain([&engine]).collect();
    let wasm = match module::prepare(&engines, &wasm) {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("{}", e.to_string().replace('\n', " "));
            let status = match e {
                module::LoadError::Init(_) => wedge::control::catalogue::compiler::EXIT_INIT,
                _ => wedge::control::catalogue::compiler::EXIT_INVALID,
            };
            return ExitCode::from(status as u8);
        }
    };
    if let (Some(path), std::borrow::Cow::Owned(snapshot)) = (snapshot_out, &wasm)
        && let Err(e) = std::fs::write(path, snapshot)
    {
        eprintln!("cannot write the snapshot: {e}");
        return ExitCode::FAILURE;
    }
    let compiled = match wedge::guest::code::Format::of(&wasm) {
        wedge::guest::code::Format::Http => engine.precompile_component(&wasm),
        wedge::guest::code::Format::Wagi => engine.precompile_module(&wasm),
    };
    match compiled {
        Ok(compiled) => match std::io::stdout().lock().write_all(&compiled) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the compiled module: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(wedge::control::catalogue::compiler::EXIT_INVALID as u8)
        }
    }
}

/// How many nice levels a baseline compile runs below the node (see
/// [`share_the_cpu`]).
const BASELINE_NICE: i32 = 5;

/// How this compile shares the CPU with the serving threads.
///
/// The optimized compile runs under `SCHED_IDLE`: only on a core no serving
/// thread wants, and a request that arrives takes the core back at once (a
/// niced compile still runs out its time slice first). Under `wrk -t2 -c32`
/// on two cores, with a 5 MB Go module deployed every 2 s, the p99 of hello
/// went from 2.0 ms to 6.8 ms with compiles at nice 10 (baseline) and 19
/// (optimized), to 5.4 ms with both at nice 19, and to 3.0 ms under
/// `SCHED_IDLE`. Where `SCHED_IDLE` is refused, nice 19.
///
/// The baseline compile is what a new version waits for, so it keeps the
/// ordinary policy, five nice levels below the node: a guaranteed share of
/// the CPU beside the serving threads, about a third of one serving
/// thread's. Under `SCHED_IDLE` too, a node whose cores were saturated took
/// a new version only when they were not: baseline compiles of 3–21 s for
/// modules that compile in 70–500 ms on a quiet node. On a quiet node the
/// nice level changes nothing. Measured on two cores (docs/performance.md):
/// the p99 of hello, quiet and while a 5 MB Go module lands every 2 s, went
/// from 1.3x under `SCHED_IDLE` to 1.6–1.9x at nice 10, 2.0–2.2x at nice 5
/// and 2.0–2.3x at nice 0; swapping a small module under a CPU-bound load,
/// the slowest swap served after 127 ms at nice 0, 185 ms at nice 5,
/// 288 ms at nice 10 and 2.1 s under `SCHED_IDLE`.
fn share_the_cpu(tier: Tier) {
    if tier == Tier::Baseline {
        let node = rustix::process::getpriority_process(None).unwrap_or(0);
        let _ = rustix::process::setpriority_process(None, (node + BASELINE_NICE).min(19));
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on this process (0) with a valid parameter
    // block; it changes only how this process is scheduled.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    // What is left where `SCHED_IDLE` is refused; under it, nice is moot.
    let _ = rustix::process::setpriority_process(None, 19);
}

fn check(module: &Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let sha256 = module::sha256_hex(&bytes);
    let engine = WasmEngine::new(1)?;
    let compiled = module::compile(&engine, &bytes, Tier::Optimized)
        .map_err(|e| anyhow::anyhow!("{}: {e}", module.display()))?;
    println!("module: {}", module.display());
    println!("size:   {} bytes", bytes.len());
    println!("sha256: {sha256}");
    let format = compiled.handler.format();
    match format {
        wedge::guest::code::Format::Http => {
            println!(
                "format: {} (a component exporting wasi:http/incoming-handler)",
                format.as_str()
            );
        }
        wedge::guest::code::Format::Wagi => {
            println!(
                "format: {} (a wasm32-wasip1 module spoken to in CGI over WASI)",
                format.as_str()
            );
            if let Ok(shape) = wedge::guest::preinit::Shape::of(&bytes) {
                println!("shape:  {}", shape.describe());
            }
        }
    }
    println!("imports ({}):", compiled.imports.len());
    for import in &compiled.imports {
        match format {
            wedge::guest::code::Format::Http => println!("  {} ({})", import.name, import.kind),
            wedge::guest::code::Format::Wagi => {
                println!("  {}::{} ({})", import.module, import.name, import.kind);
            }
        }
    }
    println!("ok: valid wedge handler");
    Ok(())
}
