//! Where the floor is: the compile child by itself, no node around it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::timing::spread;
use crate::root;

/// Runs `wedge compile-module` over `wasm` by itself, five times each: the
/// whole baseline compile, and one Winch compile of the snapshot it makes.
pub fn measure(wedge: &Path, wasm: &[u8]) -> Result<String, String> {
    let dir = root().join("target/bench/golive-floor");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (module, snapshot) = (dir.join("module.wasm"), dir.join("snapshot.wasm"));
    std::fs::write(&module, wasm).map_err(|e| e.to_string())?;
    let mut whole = Vec::new();
    for _ in 0..5 {
        whole.push(compile(wedge, &module, Some(&snapshot))?);
    }
    let mut once = Vec::new();
    for _ in 0..5 {
        once.push(compile(wedge, &snapshot, None)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "the compile child by itself: the whole baseline compile {}; one Winch compile of the snapshot {}",
        spread(&mut whole),
        spread(&mut once)
    ))
}

/// How long one `wedge compile-module --baseline` of `input` takes, writing
/// its snapshot to `snapshot_out` when given.
fn compile(wedge: &Path, input: &Path, snapshot_out: Option<&Path>) -> Result<Duration, String> {
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
}
