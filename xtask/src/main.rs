//! wedge's developer commands, run as `cargo xtask <command>`:
//!
//! - `serve`: build the examples and serve them on 127.0.0.1:8080.
//! - `test`: run every test (unit, SDK, end-to-end).
//! - `lint`: `cargo fmt --check` and `cargo clippy -D warnings` on every
//!   workspace, and `layout`.
//! - `layout`: the runtime's and xtask's modules are layered as their root
//!   file's Layout section declares, with no use of a higher layer, no cycle
//!   among the top-level modules nor among the modules of any folder, and no
//!   Layout link to a module that does not exist ([`layout`]).
//! - `bench`: the wrk load benchmark, wedge against a raw hyper hello-world
//!   ([`bench`]).
//!
//! # Layout
//!
//! - [`bench`]: `cargo xtask bench`: its options and one file per scenario
//!   (`bench/hello.rs`, `bench/fleet.rs`, `bench/golive/`, …), over the
//!   parts they share (`bench/node.rs`, `bench/wrk.rs`, `bench/report.rs`).
//! - [`layout`]: `cargo xtask layout`: the check of a crate's modules.

mod bench;
mod layout;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Where example modules and test guests are built.
const WASM_TARGET_DIR: &str = "target/wasm-guests";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("lint") => lint(),
        Some("layout") => layout::check_all(),
        Some("bench") => bench::bench(&args[1..]),
        _ => Err("usage: cargo xtask <serve|test|lint|layout|bench> [args...]".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command in the repository root; fails with its name if it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// `cargo`, with `PROTOC` pointing at a vendored protoc unless the caller set
/// one: the etcd client's build compiles etcd's protobuf definitions, and a
/// fresh machine has no protoc.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    if std::env::var_os("PROTOC").is_none()
        && let Ok(protoc) = protoc_bin_vendored::protoc_bin_path()
    {
        cmd.env("PROTOC", protoc);
    }
    cmd
}

/// Installs the wasm32-wasip1 target (WAGI handlers) and the wasm32-wasip2
/// one (wasi:http components) through rustup when either is missing.
fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for target in ["wasm32-wasip1", "wasm32-wasip2"] {
        if !installed.lines().any(|l| l.trim() == target) {
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    Ok(())
}

/// Installs etcd from Debian when it is missing: the tests of the etcd store
/// start their own members.
fn ensure_etcd() -> Result<(), String> {
    ensure_debian_tool("etcd", "--version", "etcd-server", "the etcd store's tests")
}

/// Installs Distribution, an OCI registry, from Debian when it is missing:
/// the fleet tests push modules to a real registry.
fn ensure_registry() -> Result<(), String> {
    ensure_debian_tool(
        "docker-registry",
        "--version",
        "docker-registry",
        "the fleet tests",
    )
}

/// Installs Debian package `package` when `program` does not run with
/// `version_arg`; only as root, else says what to install.
fn ensure_debian_tool(
    program: &str,
    version_arg: &str,
    package: &str,
    needed_by: &str,
) -> Result<(), String> {
    let present = Command::new(program)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return Err(format!(
            "{needed_by} need {program}: install it (Debian: apt-get install {package})"
        ));
    }
    eprintln!("xtask: installing {package} from Debian for {needed_by}");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Builds `examples/` to wasm and returns each example's module.
fn build_examples() -> Result<Vec<(String, PathBuf)>, String> {
    ensure_wasm_target()?;
    run(cargo().args([
        "build",
        "--locked",
        "--release",
        "--target",
        "wasm32-wasip1",
        "--manifest-path",
        "examples/Cargo.toml",
        "--target-dir",
        WASM_TARGET_DIR,
    ]))?;
    let out = root().join(WASM_TARGET_DIR).join("wasm32-wasip1/release");
    wedge_toolchains::components::build_rust_components(
        &root(),
        &root().join(WASM_TARGET_DIR),
        &out,
    )?;
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(root().join("examples")).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.path().join("Cargo.toml").exists() {
            let name = entry.file_name().to_string_lossy().into_owned();
            modules.push((name.clone(), out.join(format!("{name}.wasm"))));
        }
    }
    wedge_toolchains::ensure()?;
    for name in wedge_toolchains::build_go_and_c_examples(&root(), &out)? {
        modules.push((name.clone(), out.join(format!("{name}.wasm"))));
    }
    wedge_toolchains::components::ensure_componentizers(&root())?;
    for name in wedge_toolchains::components::build_language_components(&root(), &out)? {
        modules.push((name.clone(), out.join(format!("{name}.wasm"))));
    }
    modules.sort();
    Ok(modules)
}

/// Lays the examples out as a functions directory under `dir` with a wedge.toml
/// listening on `listen`; returns the config path.
fn lay_out_examples(dir: &Path, listen: &str) -> Result<PathBuf, String> {
    let functions = dir.join("functions");
    for (name, module) in build_examples()? {
        let fdir = functions.join(&name);
        std::fs::create_dir_all(&fdir).map_err(|e| e.to_string())?;
        std::fs::copy(&module, fdir.join("v1.wasm"))
            .map_err(|e| format!("cannot copy {}: {e}", module.display()))?;
        let toml = root().join("examples").join(&name).join("function.toml");
        if let Ok(text) = std::fs::read_to_string(&toml) {
            // Examples that call this node (origin-fallback's origin is the
            // hello example) name the default address.
            let text = text.replace("127.0.0.1:8080", listen);
            std::fs::write(fdir.join("function.toml"), text).map_err(|e| e.to_string())?;
        }
    }
    let config = dir.join("wedge.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"{listen}\"\n\n[functions]\ndir = \"functions\"\n\n[store]\ndir = \"data\"\n"),
    )
    .map_err(|e| e.to_string())?;
    Ok(config)
}

fn serve(args: &[String]) -> Result<(), String> {
    let listen = args.first().map(String::as_str).unwrap_or("127.0.0.1:8080");
    let dir = root().join("target/demo");
    let config = lay_out_examples(&dir, listen)?;
    eprintln!("serving examples/ on http://{listen}/ (try: curl http://{listen}/hello)");
    run(cargo()
        .args([
            "run",
            "--locked",
            "--release",
            "--package",
            "wedge",
            "--",
            "serve",
            "-c",
        ])
        .arg(config))
}

/// Runs every test: the workspace's (unit, SDK, end-to-end), then the examples'
/// own unit tests on the host (the rule evaluator's, for one). Ends with one
/// line of totals across all of them.
fn test(args: &[String]) -> Result<(), String> {
    ensure_wasm_target()?;
    ensure_etcd()?;
    ensure_registry()?;
    // The Go and C test guests build with the Go toolchain and zig, the
    // JavaScript and Python examples with componentize-js and -py.
    wedge_toolchains::ensure()?;
    wedge_toolchains::components::ensure_componentizers(&root())?;
    let mut totals = Totals::default();
    let workspace = run_counted(
        cargo().args(["test", "--locked", "--workspace"]).args(args),
        &mut totals,
    );
    let examples = run_counted(
        cargo().args([
            "test",
            "--locked",
            "--manifest-path",
            "examples/Cargo.toml",
            "--workspace",
            "--lib",
        ]),
        &mut totals,
    );
    // The Go SDK's and the Go examples' own tests, on the build machine.
    let mut go = Ok(());
    for dir in go_modules()? {
        go = go.and(wedge_toolchains::go_tool(&dir, &["test", "./..."], false));
    }
    println!("{} passed, {} failed", totals.passed, totals.failed);
    workspace.and(examples).and(go)
}

/// Tests counted from cargo's `test result:` lines.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

/// Runs a `cargo test`, passing its output through and adding up its results.
fn run_counted(cmd: &mut Command, totals: &mut Totals) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            let count = |what: &str| {
                result
                    .split([';', '.'])
                    .find_map(|part| part.trim().strip_suffix(what))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            totals.passed += count(" passed");
            totals.failed += count(" failed");
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// Every Go module in the repository: the SDK, the Go test guests and the Go
/// examples.
fn go_modules() -> Result<Vec<PathBuf>, String> {
    let mut dirs = vec![root().join("guest-sdk/go")];
    for parent in ["tests/guests-go", "examples"] {
        let entries = std::fs::read_dir(root().join(parent)).map_err(|e| e.to_string())?;
        for entry in entries.filter_map(Result::ok) {
            if entry.path().join("go.mod").exists() {
                dirs.push(entry.path());
            }
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn lint() -> Result<(), String> {
    ensure_wasm_target()?;
    // The harness's build script builds the Go and C test guests, and the
    // JavaScript and Python examples.
    wedge_toolchains::ensure()?;
    wedge_toolchains::components::ensure_componentizers(&root())?;
    layout::check_all()?;
    for dir in go_modules()? {
        wedge_toolchains::go_tool(&dir, &["vet", "./..."], false)?;
        wedge_toolchains::go_tool(&dir, &["vet", "./..."], true)?;
        wedge_toolchains::gofmt_check(&dir)?;
    }
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    for manifest in ["examples/Cargo.toml", "tests/guests/Cargo.toml"] {
        run(cargo().args(["fmt", "--all", "--check", "--manifest-path", manifest]))?;
        run(cargo()
            .args([
                "clippy",
                "--locked",
                "--target",
                "wasm32-wasip1",
                "--target-dir",
                WASM_TARGET_DIR,
            ])
            .args(["--manifest-path", manifest, "--", "-D", "warnings"]))?;
    }
    // The wasi:http components build for wasm32-wasip2.
    let mut components: Vec<(&str, String)> =
        wedge_toolchains::components::rust_component_names(&root().join("examples"))?
            .into_iter()
            .map(|name| ("examples/Cargo.toml", name))
            .collect();
    components.push(("tests/guests-http/Cargo.toml", "http_probe".into()));
    components.push((
        "bench/plain-http-hello/Cargo.toml",
        "plain_http_hello".into(),
    ));
    for manifest in [
        "tests/guests-http/Cargo.toml",
        "bench/plain-http-hello/Cargo.toml",
    ] {
        run(cargo().args(["fmt", "--all", "--check", "--manifest-path", manifest]))?;
    }
    for (manifest, name) in &components {
        run(cargo().args([
            "clippy",
            "--locked",
            "--target",
            wedge_toolchains::components::RUST_TARGET,
            "--target-dir",
            WASM_TARGET_DIR,
            "--manifest-path",
            manifest,
            "-p",
            name,
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    Ok(())
}
