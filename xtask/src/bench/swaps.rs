//! The `swaps` scenario (not in `all`): what going live costs the requests
//! of a saturated node. wrk on `/hello` with nothing else going on, then
//! while `examples/go-hello`, new bytes each time, replaces another
//! function's module every 2 s ([`golive::swaps`]), for this build
//! and for `--baseline` in turn, each round.

use std::path::Path;

use super::golive;
use super::node::{start_with_admin, wedge_binary};
use super::wrk::Load;
use crate::root;

/// Measures this build, and `baseline` when given, `rounds` times each.
pub fn bench(
    load: &Load,
    rounds: usize,
    baseline: Option<&Path>,
    modules: &Path,
) -> Result<(), String> {
    let wedge = wedge_binary();
    let mut builds = vec![("this build", wedge.as_path())];
    if let Some(baseline) = baseline {
        builds.push(("baseline", baseline));
    }
    for round in 1..=rounds {
        for (name, binary) in &builds {
            let dir = format!("swaps-{}", name.replace(' ', "-"));
            let (server, port, _) = start_with_admin(binary, &dir, "", "", "", |_| Ok(()))?;
            let functions = root().join("target/bench").join(&dir).join("functions");
            // Built by the node's start, with the other examples.
            let go_hello =
                std::fs::read(modules.join("go-hello.wasm")).map_err(|e| e.to_string())?;
            let line =
                golive::swaps::measure(load, &format!("127.0.0.1:{port}"), &functions, &go_hello)?;
            drop(server);
            println!("round {round}, {name}: {line}");
        }
    }
    Ok(())
}
