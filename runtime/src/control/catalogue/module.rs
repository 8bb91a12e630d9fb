//! Turns the bytes of a `.wasm` file into a handler ready to instantiate: hash,
//! check the imports against the guest ABI (a WAGI module's) or the allowed
//! worlds (a component's), compile, pre-link.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmparser::{Parser, Payload, TypeRef};
use wasmtime::Module;
use wasmtime::component::Component;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::guest::code::{Code, Format};
use crate::guest::engine::{Tier, WasmEngine};
use crate::guest::preinit::{self, Shape};
use crate::guest::segments;
use crate::host::wasi_http::imports::{self as component_imports, Refusal};
use crate::node::function::{Compiled, Handler, Import, WagiCode};

/// Import modules a handler may use.
pub const ALLOWED_IMPORT_MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wedge"];

/// Why a module cannot serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly module.
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    /// The module imports something the sandbox does not provide.
    #[error(
        "forbidden import `{module}::{name}`: handlers may import only from `wasi_snapshot_preview1` and `wedge`"
    )]
    ForbiddenImport {
        /// The import's module name.
        module: String,
        /// The import's field name.
        name: String,
    },
    /// The component imports an interface outside the allowed worlds.
    #[error("{0}")]
    ForbiddenInterface(String),
    /// The component does not export `wasi:http/incoming-handler`.
    #[error("{0}")]
    NoHandler(String),
    /// The module has no entry point wedge can call per request.
    #[error(
        "the module exports neither `_start` nor `wedge_handle`: build it as a WASI command (a `main` function) or as a reactor that exports `wedge_handle`"
    )]
    NoEntry,
    /// A reactor's `_initialize` failed, so there is no snapshot to serve.
    #[error("{0}")]
    Init(String),
    /// The module imports a host function wedge does not have, or with the wrong type.
    #[error("cannot link: {0}")]
    Link(String),
    /// The module is larger than `functions.max_module_size`.
    #[error("the module is {size} bytes, over functions.max_module_size ({max} bytes)")]
    TooLarge {
        /// The module's size in bytes.
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// Compiling took longer than `functions.compile_timeout` and was abandoned.
    #[error("compiling took longer than functions.compile_timeout ({0:?}) and was abandoned")]
    CompileTimeout(std::time::Duration),
    /// The compiler could not run, or died.
    #[error("the compiler failed: {0}")]
    Compiler(String),
    /// No function names the module any more, so its compile was abandoned.
    #[error("no function names the module any more; its compile was abandoned")]
    Superseded,
}

/// The sha256 of a module's bytes, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lists a module's imports and refuses the first one outside the allowed
/// modules, or a module with no entry point. This reads only the sections
/// before the code, so a hostile module is refused before any time is spent
/// compiling it.
pub fn check_imports(bytes: &[u8]) -> Result<Vec<Import>, LoadError> {
    if Format::of(bytes) == Format::Http {
        return check_component(bytes);
    }
    let imports = list_imports(bytes)?;
    if Shape::of(bytes).map_err(|e| LoadError::Invalid(e.to_string()))? == Shape::Neither {
        return Err(LoadError::NoEntry);
    }
    if let Some(bad) = imports
        .iter()
        .find(|i| !ALLOWED_IMPORT_MODULES.contains(&i.module.as_str()))
    {
        return Err(LoadError::ForbiddenImport {
            module: bad.module.clone(),
            name: bad.name.clone(),
        });
    }
    Ok(imports)
}

/// A component's imports, each of an allowed world, and its handler export.
fn check_component(bytes: &[u8]) -> Result<Vec<Import>, LoadError> {
    match component_imports::check(bytes) {
        Ok(imports) => Ok(imports
            .into_iter()
            .map(|i| Import {
                module: String::new(),
                name: i.name,
                kind: i.kind,
            })
            .collect()),
        Err(e @ Refusal::Invalid(_)) => Err(LoadError::Invalid(e.to_string())),
        Err(e @ (Refusal::Forbidden(_) | Refusal::Version(..))) => {
            Err(LoadError::ForbiddenInterface(e.to_string()))
        }
        Err(e @ Refusal::NoHandler) => Err(LoadError::NoHandler(e.to_string())),
    }
}

fn list_imports(bytes: &[u8]) -> Result<Vec<Import>, LoadError> {
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    let import = import.map_err(invalid)?;
                    imports.push(Import {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        kind: match import.ty {
                            TypeRef::Func(_) | TypeRef::FuncExact(_) => "func",
                            TypeRef::Memory(_) => "memory",
                            TypeRef::Table(_) => "table",
                            TypeRef::Global(_) => "global",
                            TypeRef::Tag(_) => "tag",
                        },
                    });
                }
            }
            Payload::CodeSectionStart { .. } => break,
            _ => {}
        }
    }
    Ok(imports)
}

/// Checks imports, pre-initializes a reactor (on Winch, whose compile of
/// the instrumented module is the quick one), compiles to `tier` in this
/// process and links: for `wedge check` and the benchmarks. A node compiles in a child process instead (see
/// [`super::compiler`]). CPU-heavy: call it off the request path.
pub fn compile(engine: &WasmEngine, bytes: &[u8], tier: Tier) -> Result<Compiled, LoadError> {
    let imports = check_imports(bytes)?;
    let prepared = prepare(
        &[engine.engine_for(Tier::Baseline), engine.engine_for(tier)],
        bytes,
    )?;
    let code = Code::compile(engine.engine_for(tier), &prepared)
        .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
    link(engine, &code, imports, tier)
}

/// The module that serves: `bytes` itself for a command or a reactor with
/// nothing to initialize, else the snapshot after its `_initialize` ran on
/// the first of `engines` that compiles it ([`preinit`]); either with its
/// data segments compacted ([`segments`]). Refuses a module
/// with no entry point before running anything. A component is compiled as
/// it is. Runs guest code: call it off the request path.
pub fn prepare<'a>(
    engines: &[&wasmtime::Engine],
    bytes: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, LoadError> {
    if Format::of(bytes) == Format::Http {
        return Ok(bytes.into());
    }
    let shape = Shape::of(bytes).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let prepared: std::borrow::Cow<'a, [u8]> = match shape {
        Shape::Command | Shape::Reactor { initialize: false } => bytes.into(),
        Shape::Neither => return Err(LoadError::NoEntry),
        Shape::Reactor { initialize: true } => preinit::snapshot(engines, bytes)
            .map_err(|e| LoadError::Init(e.to_string()))?
            .into(),
    };
    match segments::compact(&prepared) {
        Ok(Some(compacted)) => Ok(compacted.into()),
        Ok(None) => Ok(prepared),
        Err(e) => Err(LoadError::Invalid(e.to_string())),
    }
}

/// Resolves the exports a request needs and pre-links `code`, of `tier`,
/// against the host.
pub fn link(
    engine: &WasmEngine,
    code: &Code,
    imports: Vec<Import>,
    tier: Tier,
) -> Result<Compiled, LoadError> {
    let handler = match code {
        Code::Module(module) => Handler::Wagi(link_module(engine, module, tier)?),
        Code::Component(component) => Handler::Http(link_component(engine, component, tier)?),
    };
    Ok(Compiled {
        handler,
        imports,
        tier,
    })
}

/// Pre-links a component against the interfaces of the allowed worlds, and
/// finds its `wasi:http/incoming-handler`.
fn link_component(
    engine: &WasmEngine,
    component: &Component,
    tier: Tier,
) -> Result<Arc<ProxyPre<crate::host::wasi_http::ProxyHost>>, LoadError> {
    let pre = engine
        .component_linker(tier)
        .and_then(|linker| linker.instantiate_pre(component))
        .map_err(|e| LoadError::Link(format!("{e:#}")))?;
    let proxy = ProxyPre::new(pre).map_err(|e| LoadError::NoHandler(format!("{e:#}")))?;
    Ok(Arc::new(proxy))
}

/// Resolves a WAGI module's entry point and memory, and pre-links it.
fn link_module(engine: &WasmEngine, module: &Module, tier: Tier) -> Result<WagiCode, LoadError> {
    // A snapshot no longer exports `_initialize`; a module that still does
    // was never initialized and must not serve.
    if module.get_export_index(preinit::INITIALIZE).is_some()
        && module.get_export_index(preinit::START).is_none()
    {
        return Err(LoadError::Init(
            "the reactor was not pre-initialized: it still exports `_initialize`".into(),
        ));
    }
    let name = match module.get_export_index(preinit::START) {
        Some(_) => preinit::START,
        None => preinit::HANDLER,
    };
    let entry = module.get_export_index(name).ok_or(LoadError::NoEntry)?;
    // Checked here, once, rather than failing every request.
    match module.get_export(name) {
        Some(wasmtime::ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
        _ => {
            return Err(LoadError::Link(format!(
                "`{name}` must be a function that takes and returns nothing"
            )));
        }
    }
    let memory = module.get_export_index("memory");
    let pre = engine
        .linker(tier)
        .instantiate_pre(module)
        .map_err(|e| LoadError::Link(format!("{e:#}")))?;
    Ok(WagiCode {
        pre: Arc::new(pre),
        entry,
        memory,
    })
}
