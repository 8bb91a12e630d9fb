//! The worlds a component may import from, checked on the component's own
//! import and export sections before anything is compiled, so a component
//! reaching for something wedge does not give is refused at once, by name.

use wasmparser::{ComponentTypeRef, Parser, Payload};

/// The interfaces a component may import, as `package/interface` (any
/// version). These are the `wasi:http/proxy` world, the key-value stores
/// (`wasi:keyvalue` and `wedge:keyvalue`) and the `wasi:cli`
/// imports language runtimes bring along (componentize-py's libc imports
/// sockets and a filesystem): sockets refuse every address and the
/// filesystem has nothing opened, so the way out stays `wasi:http`.
pub const ALLOWED: [&str; 32] = [
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/ip-name-lookup",
    "wasi:http/types",
    "wasi:http/outgoing-handler",
    // Served by the node's key-value stores.
    "wasi:keyvalue/store",
    "wasi:keyvalue/atomics",
    "wedge:keyvalue/bounded",
];

/// The export through which a component takes requests.
pub const INCOMING_HANDLER: &str = "wasi:http/incoming-handler";

/// One top-level import of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentImport {
    /// The full name, version included (`wasi:http/types@0.2.6`).
    pub name: String,
    /// `instance`, `func`, `type`, `module`, `component` or `value`.
    pub kind: &'static str,
}

/// Why a component cannot serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// The bytes are not a valid component.
    #[error("{0}")]
    Invalid(String),
    /// An import outside the allowed worlds.
    #[error(
        "forbidden import `{0}`: a component may import only the wasi:http/proxy world, the wasi:cli imports, wasi:keyvalue (store, atomics) and wedge:keyvalue"
    )]
    Forbidden(String),
    /// An allowed interface at a version wedge does not serve.
    #[error("import `{0}`: wedge serves {1}")]
    Version(String, &'static str),
    /// No `wasi:http/incoming-handler` export.
    #[error(
        "the component does not export `wasi:http/incoming-handler`: build it for the wasi:http/proxy world"
    )]
    NoHandler,
}

/// The component's top-level imports, when every one is allowed and it
/// exports `wasi:http/incoming-handler`.
pub fn check(bytes: &[u8]) -> Result<Vec<ComponentImport>, Refusal> {
    let invalid = |e: wasmparser::BinaryReaderError| Refusal::Invalid(e.to_string());
    let mut imports = Vec::new();
    let mut handler = false;
    // Nested modules and components report their own sections; only the
    // outermost component's (depth 1) are the host's business.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 1 => {
                for import in section {
                    let import = import.map_err(invalid)?;
                    imports.push(ComponentImport {
                        name: import.name.name.to_string(),
                        kind: kind(import.ty),
                    });
                }
            }
            Payload::ComponentExportSection(section) if depth == 1 => {
                for export in section {
                    let export = export.map_err(invalid)?;
                    handler |= unversioned(export.name.name) == INCOMING_HANDLER;
                }
            }
            _ => {}
        }
    }
    if let Some(bad) = imports
        .iter()
        .find(|i| i.kind != "instance" || !ALLOWED.contains(&unversioned(&i.name)))
    {
        return Err(Refusal::Forbidden(bad.name.clone()));
    }
    for import in &imports {
        let (wanted, served) = served_version(&import.name);
        if !version_of(&import.name).is_some_and(wanted) {
            return Err(Refusal::Version(import.name.clone(), served));
        }
    }
    if !handler {
        return Err(Refusal::NoHandler);
    }
    Ok(imports)
}

/// Which versions of `name`'s package wedge links, and how to say so.
fn served_version(name: &str) -> (fn(&str) -> bool, &'static str) {
    if name.starts_with("wasi:keyvalue/") {
        (|v| v == "0.2.0-draft2", "wasi:keyvalue at 0.2.0-draft2")
    } else if name.starts_with("wedge:keyvalue/") {
        (|v| v.starts_with("0.1."), "wedge:keyvalue at 0.1.x")
    } else {
        (
            |v| v.starts_with("0.2.") && !v.contains('-'),
            "WASI 0.2.x interfaces (0.2.0 to 0.2.12)",
        )
    }
}

/// The version after `@`, if the name has one.
fn version_of(name: &str) -> Option<&str> {
    name.split_once('@').map(|(_, v)| v)
}

/// `wasi:http/types@0.2.6` without its `@0.2.6`.
fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(n, _)| n)
}

fn kind(ty: ComponentTypeRef) -> &'static str {
    match ty {
        ComponentTypeRef::Module(_) => "module",
        ComponentTypeRef::Func(_) => "func",
        ComponentTypeRef::Value(_) => "value",
        ComponentTypeRef::Type(_) => "type",
        ComponentTypeRef::Instance(_) => "instance",
        ComponentTypeRef::Component(_) => "component",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_do_not_matter_but_names_do() {
        assert_eq!(unversioned("wasi:http/types@0.2.12"), "wasi:http/types");
        assert_eq!(unversioned("wasi:keyvalue/store"), "wasi:keyvalue/store");
    }
}
