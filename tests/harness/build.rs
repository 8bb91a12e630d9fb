//! Builds wedge's example handlers and test guests to wasm32-wasip1 (the
//! wasi:http examples to wasm32-wasip2) and emits a
//! path constant for each, plus `foreach_guest!`, which the end-to-end tests use
//! to prove every guest program has a test.
//!
//! Rust guests build with cargo; Go guests (`tests/guests-go/<name>`) with the
//! Go toolchain as `go_<name>`; C guests (`tests/guests-c/<name>.c`) with
//! `zig cc` as `c_<name>`; the wasi:http probe (`tests/guests-http`) with
//! cargo for wasm32-wasip2 as `http_probe`. `cargo xtask test` installs Go
//! and zig.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..").canonicalize().unwrap();
    let target_dir = root.join("target/wasm-guests");
    for dir in [
        "examples",
        "tests/guests",
        "tests/guests-go",
        "tests/guests-c",
        "tests/guests-http",
        "wit",
        "tools/componentize-js/build.mjs",
        "guest-sdk/src",
        "guest-sdk/go",
        "guest-sdk/c",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    build_workspace(&root.join("examples/Cargo.toml"), &target_dir);
    build_workspace(&root.join("tests/guests/Cargo.toml"), &target_dir);
    let out = target_dir.join("wasm32-wasip1/release");
    // The wasi:http examples build for wasm32-wasip2 and land beside the rest.
    wedge_toolchains::components::build_rust_components(&root, &target_dir, &out)
        .unwrap_or_else(|e| panic!("{e}"));

    let mut examples = example_names(&root.join("examples"));
    // The JavaScript and Python examples, built by the ecosystem's own tools.
    wedge_toolchains::components::ensure_componentizers(&root).unwrap_or_else(|e| panic!("{e}"));
    examples.extend(
        wedge_toolchains::components::build_language_components(&root, &out)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    examples.extend(
        wedge_toolchains::build_go_and_c_examples(&root, &out).unwrap_or_else(|e| panic!("{e}")),
    );
    examples.sort();
    let mut guests = guest_names(&root.join("tests/guests/src/bin"));
    for (name, dir) in go_guests(&root.join("tests/guests-go")) {
        let wasm = out.join(format!("{name}.wasm"));
        wedge_toolchains::go_build(&dir, &wasm).unwrap_or_else(|e| panic!("{e}"));
        guests.push(name);
    }
    for (name, source) in c_guests(&root.join("tests/guests-c")) {
        let wasm = out.join(format!("{name}.wasm"));
        wedge_toolchains::zig_cc(&source, &root.join("guest-sdk/c"), &wasm)
            .unwrap_or_else(|e| panic!("{e}"));
        guests.push(name);
    }
    // The wasi:http probe, a component built for wasm32-wasip2.
    let probe = "http_probe".to_string();
    wedge_toolchains::components::cargo_components(
        &root.join("tests/guests-http/Cargo.toml"),
        std::slice::from_ref(&probe),
        &target_dir,
        &out,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    guests.push(probe);
    guests.sort();
    let mut code =
        String::from("/// Example handlers from `examples/`, built to wasm.\npub mod examples {\n");
    for name in &examples {
        code += &constant(name, &out);
    }
    code +=
        "    /// Every example: its name and module.\n    pub const ALL: &[(&str, &str)] = &[\n";
    for name in &examples {
        code += &format!("        ({name:?}, {}),\n", ident(name));
    }
    code += "    ];\n";
    code += "}\n\n/// Test guests from `tests/guests/src/bin`, built to wasm.\npub mod guests {\n";
    for name in &guests {
        code += &constant(name, &out);
    }
    code += "}\n\n/// Calls `$mac!(name)` for every test guest.\n#[macro_export]\nmacro_rules! foreach_guest {\n    ($mac:ident) => {\n";
    for name in &guests {
        code += &format!("        $mac!({name});\n");
    }
    code += "    };\n}\n";
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("wasm.rs");
    std::fs::write(dest, code).unwrap();
}

fn constant(name: &str, out: &Path) -> String {
    let path = out.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    format!(
        "    /// `{name}.wasm`\n    pub const {}: &str = {:?};\n",
        ident(name),
        path.display().to_string()
    )
}

/// `origin-fallback` as a constant's name: `ORIGIN_FALLBACK`.
fn ident(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

fn build_workspace(manifest: &Path, target_dir: &Path) {
    let status = wedge_toolchains::guest_cargo()
        .args([
            "build",
            "--locked",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("cannot run cargo");
    assert!(
        status.success(),
        "building {} for wasm32-wasip1 failed; is the target installed? (rustup target add wasm32-wasip1)",
        manifest.display()
    );
}

fn example_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn guest_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".rs").map(str::to_string))
        .collect();
    names.sort();
    names
}

/// Go guests: each directory under `dir`, named `go_<directory>`.
fn go_guests(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("go.mod").exists())
        .map(|e| (format!("go_{}", e.file_name().to_string_lossy()), e.path()))
        .collect();
    found.sort();
    found
}

/// C guests: each `.c` file in `dir`, named `c_<stem>`.
fn c_guests(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".c")?;
            Some((format!("c_{stem}"), e.path()))
        })
        .collect();
    found.sort();
    found
}
