//! The `wedge` command: `serve` runs the node; `check` validates a module offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use wedge::config::Config;
use wedge::engine::WasmEngine;
use wedge::log::LogFormat;
use wedge::registry::loader;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, log_format } => serve(&config, log_format),
        Command::Check { module } => check(&module),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_path: &Path, log_format: LogFormat) -> anyhow::Result<()> {
    let config = if !config_path.exists() && config_path == Path::new("wedge.toml") {
        Config::parse("", config_path, Path::new("."))?
    } else {
        Config::load(config_path)?
    };
    let _log = wedge::log::init(log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wedge-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        wedge::serve(config, listener, shutdown_signal()).await
    })?;
    tracing::info!(target: "wedge::server", "stopped");
    Ok(())
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

fn check(module: &Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let sha256 = loader::sha256_hex(&bytes);
    let engine = WasmEngine::new(1)?;
    let (compiled, _) = loader::compile(&engine, None, &bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", module.display()))?;
    println!("module: {}", module.display());
    println!("size:   {} bytes", bytes.len());
    println!("sha256: {sha256}");
    println!("imports ({}):", compiled.imports.len());
    for import in &compiled.imports {
        println!("  {}::{} ({})", import.module, import.name, import.kind);
    }
    println!("ok: valid wedge handler");
    Ok(())
}
