//! A function's desired state, made real in the node's functions directory:
//! each version's module (pulled by digest when the directory does not have
//! it), `function.toml`, `deployment.toml`, and `fleet.json`, which marks the
//! function as the fleet's and records the revision applied. Modules go first
//! and the deployment last, so a reload between two writes never names a
//! version that is not there. The directory is the node's copy of the desired
//! state: a restart with etcd and the registry down serves from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::desired::Desired;
use super::oci::{OciError, Registry, digest_of};
use crate::control::catalogue::write_deployment;
use crate::util::fs::write_atomically;

pub use crate::control::catalogue::FLEET_MARKER as MARKER;

/// What `fleet.json` records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The etcd revision of the desired state applied.
    pub revision: i64,
    /// Each version's digest, by label, as written.
    pub versions: BTreeMap<String, String>,
}

/// Why a desired state could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A module could not be pulled.
    #[error(transparent)]
    Pull(#[from] OciError),
    /// The functions directory could not be written.
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    /// A function of the same name exists in the functions directory and is
    /// not the fleet's.
    #[error(
        "functions/{0} exists and is not managed by the fleet: remove it or rename the fleet function"
    )]
    NotOurs(String),
}

/// The marker of the function in `dir`, if it is the fleet's.
pub fn marker(dir: &Path) -> Option<Marker> {
    let text = std::fs::read(dir.join(MARKER)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Makes `functions/<name>` hold `desired` at `revision`.
pub async fn apply(
    functions: &Path,
    registry: &Registry,
    name: &str,
    desired: &Desired,
    revision: i64,
) -> Result<(), ApplyError> {
    let dir = functions.join(name);
    let had = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || (dir.exists(), marker(&dir)))
            .await
            .unwrap_or((true, None))
    };
    let previous = match had {
        (true, None) => return Err(ApplyError::NotOurs(name.into())),
        (_, marker) => marker,
    };
    let fresh = previous.is_none();
    let previous = previous.unwrap_or_default();
    // Modules first: whatever the directory lacks, pulled and checked.
    let mut modules = Vec::new();
    for (label, module) in &desired.versions {
        if previous.versions.get(label) == Some(&module.digest) {
            continue;
        }
        let path = dir.join(format!("{label}.wasm"));
        let have = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(path).ok().map(|b| digest_of(&b)))
                .await
                .ok()
                .flatten()
        };
        if have.as_deref() != Some(module.digest.as_str()) {
            let bytes = registry.pull(&module.digest, Some(module.size)).await?;
            modules.push((path, bytes));
        }
    }
    let desired = desired.clone();
    let marker = Marker {
        revision,
        versions: desired
            .versions
            .iter()
            .map(|(l, m)| (l.clone(), m.digest.clone()))
            .collect(),
    };
    tokio::task::spawn_blocking(move || write_all(&dir, fresh, modules, &desired, &marker))
        .await
        .map_err(|e| ApplyError::Write(PathBuf::new(), std::io::Error::other(e)))?
}

fn write_all(
    dir: &Path,
    fresh: bool,
    modules: Vec<(PathBuf, Vec<u8>)>,
    desired: &Desired,
    marker: &Marker,
) -> Result<(), ApplyError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |e| ApplyError::Write(path, e)
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    // A new directory is marked first: from now on it is the fleet's, even if
    // this stops half-way. An empty marker records nothing as written, and an
    // old one records only what is still true until the new one replaces it
    // (a module whose digest changes is replaced whole), so an apply cut
    // short is checked file by file the next time.
    let marker_path = dir.join(MARKER);
    if fresh {
        write_json(&marker_path, &Marker::default()).map_err(failed(&marker_path))?;
    }
    for (path, bytes) in modules {
        write_atomically(&path, &bytes).map_err(failed(&path))?;
    }
    let toml = dir.join("function.toml");
    match desired.function_toml.is_empty() {
        true => match std::fs::remove_file(&toml) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(&toml)(e)),
            _ => {}
        },
        false => {
            let same = std::fs::read(&toml).is_ok_and(|t| t == desired.function_toml.as_bytes());
            if !same {
                write_atomically(&toml, desired.function_toml.as_bytes()).map_err(failed(&toml))?;
            }
        }
    }
    write_deployment(dir, &desired.deployment).map_err(failed(&dir.join("deployment.toml")))?;
    write_json(&marker_path, marker).map_err(failed(&marker_path))?;
    // Versions the desired state dropped; one left behind by a stop here is
    // removed by the next apply.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let label = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".wasm"));
            if label.is_some_and(|l| !desired.versions.contains_key(l)) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(())
}

fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomically(path, &text)
}

/// Removes the fleet function `name` whose desired state was deleted; a
/// function that is not the fleet's is left alone.
pub async fn remove(functions: &Path, name: &str) -> std::io::Result<bool> {
    let dir = functions.join(name);
    tokio::task::spawn_blocking(move || {
        if marker(&dir).is_none() {
            return Ok(false);
        }
        std::fs::remove_dir_all(&dir).map(|()| true)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The fleet functions in `functions`, with their markers.
pub fn fleet_functions(functions: &Path) -> BTreeMap<String, Marker> {
    let Ok(entries) = std::fs::read_dir(functions) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((name, marker(&e.path())?))
        })
        .collect()
}
