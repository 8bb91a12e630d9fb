//! Builds wedge's wasi:http component examples: Rust with cargo for
//! `wasm32-wasip2`, whose linker makes a component of a `cdylib`.

use std::path::Path;
use std::process::Command;

/// The target a Rust component builds for.
pub const RUST_TARGET: &str = "wasm32-wasip2";

/// Builds every Rust example under `root/examples` that is a component (its
/// `Cargo.toml` asks for a `cdylib`) with cargo, in `target_dir`, and copies
/// each to `out/<name>.wasm`; returns their names.
pub fn build_rust_components(
    root: &Path,
    target_dir: &Path,
    out: &Path,
) -> Result<Vec<String>, String> {
    let names = rust_component_names(&root.join("examples"))?;
    cargo_components(&root.join("examples/Cargo.toml"), &names, target_dir, out)?;
    Ok(names)
}

/// Builds packages `names` of the workspace at `manifest` for
/// [`RUST_TARGET`] in `target_dir`, and copies each to `out/<name>.wasm`.
pub fn cargo_components(
    manifest: &Path,
    names: &[String],
    target_dir: &Path,
    out: &Path,
) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--locked", "--release", "--target", RUST_TARGET])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for name in names {
        cmd.args(["-p", name]);
    }
    // The host build's flags and wrappers are not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    crate::run(
        cmd,
        &format!(
            "cargo build --target {RUST_TARGET} (is the target installed? rustup target add {RUST_TARGET})"
        ),
    )?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    for name in names {
        let built = target_dir
            .join(RUST_TARGET)
            .join("release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        let to = out.join(format!("{name}.wasm"));
        std::fs::copy(&built, &to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", built.display(), to.display()))?;
    }
    Ok(())
}

/// The Rust examples that are components, by directory name.
pub fn rust_component_names(examples: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(examples)
        .map_err(|e| format!("cannot read {}: {e}", examples.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("Cargo.toml"))
                .is_ok_and(|t| t.contains("crate-type = [\"cdylib\"]"))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}
