//! Builds wedge's wasi:http component examples: Rust with cargo for
//! `wasm32-wasip2`, whose linker makes a component of a `cdylib`;
//! JavaScript (`app.js`) with componentize-js from npm; Python (`app.py`)
//! with componentize-py from PyPI. Each against the repository's `wit/`,
//! world `handler`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py release the Python examples build with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The WIT world the JavaScript and Python examples build for.
pub const WORLD: &str = "handler";

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
    let mut cmd = crate::guest_cargo();
    cmd.args(["build", "--locked", "--release", "--target", RUST_TARGET])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    for name in names {
        cmd.args(["-p", name]);
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

/// The JavaScript and Python examples under `root/examples`, by directory
/// name: those with an `app.js` or an `app.py`.
pub fn language_component_names(root: &Path) -> Result<Vec<String>, String> {
    let examples = root.join("examples");
    let entries = std::fs::read_dir(&examples)
        .map_err(|e| format!("cannot read {}: {e}", examples.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("app.js").exists() || e.path().join("app.py").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// Builds every JavaScript and Python example to `out/<name>.wasm`; returns
/// their names. [`ensure_componentizers`] first.
pub fn build_language_components(root: &Path, out: &Path) -> Result<Vec<String>, String> {
    let names = language_component_names(root)?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let wit = root.join("wit");
    for name in &names {
        let dir = root.join("examples").join(name);
        let wasm = out.join(format!("{name}.wasm"));
        if dir.join("app.js").exists() {
            let mut cmd = Command::new("node");
            cmd.arg(root.join("tools/componentize-js/build.mjs"))
                .arg(dir.join("app.js"))
                .arg(&wit)
                .arg(WORLD)
                .arg(&wasm);
            crate::run(cmd, &format!("componentize-js {}", dir.display()))?;
        } else {
            let mut cmd = Command::new(componentize_py());
            cmd.arg("-d")
                .arg(&wit)
                .args(["-w", WORLD, "componentize", "-p"])
                .arg(&dir)
                .arg("app")
                .arg("-o")
                .arg(&wasm);
            crate::run(cmd, &format!("componentize-py {}", dir.display()))?;
        }
    }
    Ok(names)
}

/// Installs componentize-py from PyPI and componentize-js from npm (into
/// `tools/componentize-js`, as its lock file pins) when either is missing.
pub fn ensure_componentizers(root: &Path) -> Result<(), String> {
    let wanted = format!("componentize-py {COMPONENTIZE_PY_VERSION}");
    let py = Command::new(componentize_py())
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == wanted);
    if !py {
        let package = format!("componentize-py=={COMPONENTIZE_PY_VERSION}");
        eprintln!("installing componentize-py: pip install {package}");
        let mut pip = Command::new(crate::python());
        pip.args(["-m", "pip", "install", "--quiet", &package]);
        crate::run(pip, &format!("pip install {package}"))?;
    }
    let js = root.join("tools/componentize-js");
    if !js
        .join("node_modules/@bytecodealliance/componentize-js")
        .exists()
    {
        eprintln!("installing componentize-js: npm ci in {}", js.display());
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(&js);
        crate::run(npm, "npm ci (componentize-js)")?;
    }
    Ok(())
}

/// The `componentize-py` pip installed: beside the Python that has it
/// (its scripts directory need not be on the path), else on the path.
fn componentize_py() -> PathBuf {
    let scripts = Command::new(crate::python())
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("componentize-py"))
        .filter(|p| p.exists());
    scripts.unwrap_or_else(|| "componentize-py".into())
}
