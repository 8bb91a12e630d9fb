//! The uses among the modules of one folder as a graph, and its cycles.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Which module names which, each with the first file (relative to the
/// crate's `src`) where it does. Every module of the folder has an entry.
pub type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// Each strongly connected component of more than one module, with a closed
/// path through it (`a → b → a`).
pub fn cycles(edges: &Edges) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    for m in edges.keys() {
        if seen.contains(m) {
            continue;
        }
        let component: BTreeSet<String> = reachable(m, edges)
            .into_iter()
            .filter(|n| reachable(n, edges).contains(m))
            .collect();
        seen.extend(component.iter().cloned());
        if component.len() > 1 {
            let path = closed_path(m, &component, edges);
            found.push((component.into_iter().collect(), path));
        }
    }
    found
}

/// The modules `from` reaches through one use or more.
fn reachable(from: &str, edges: &Edges) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(n) = stack.pop() {
        for next in edges.get(&n).into_iter().flat_map(|e| e.keys()) {
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    seen
}

/// A shortest path from `start` back to itself inside `component`.
fn closed_path(start: &str, component: &BTreeSet<String>, edges: &Edges) -> Vec<String> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([start.to_string()]);
    while let Some(n) = queue.pop_front() {
        let nexts = edges.get(&n).into_iter().flat_map(|e| e.keys());
        for next in nexts.filter(|k| component.contains(*k)) {
            if next == start {
                let mut path = vec![start.to_string(), n.clone()];
                while let Some(p) = path.last().and_then(|last| parent.get(last)) {
                    path.push(p.clone());
                }
                path.reverse();
                path.push(start.to_string());
                path.dedup();
                return path;
            }
            if !parent.contains_key(next) {
                parent.insert(next.clone(), n.clone());
                queue.push_back(next.clone());
            }
        }
    }
    vec![start.to_string()]
}
