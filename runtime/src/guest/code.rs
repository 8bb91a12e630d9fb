//! The two handler formats wedge serves, told apart by their bytes, and
//! their compiled code: a WAGI core module, or a component that exports
//! `wasi:http/incoming-handler`.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

/// What kind of handler a `.wasm` file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A `wasm32-wasip1` core module spoken to in WAGI (CGI over WASI).
    Wagi,
    /// A component exporting `wasi:http/incoming-handler` (WASI 0.2).
    Http,
}

impl Format {
    /// The format of `bytes`, read from the header alone.
    pub fn of(bytes: &[u8]) -> Self {
        if wasmparser::Parser::is_component(bytes) {
            Self::Http
        } else {
            Self::Wagi
        }
    }

    /// The name `wedge check`, `wedge status` and the logs give it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wagi => "wagi",
            Self::Http => "wasi-http",
        }
    }
}

/// Compiled code of either format.
#[derive(Clone)]
pub enum Code {
    /// A core module.
    Module(Module),
    /// A component.
    Component(Component),
}

impl Code {
    /// Compiles `bytes` in this process, as a component or a core module as
    /// their header says.
    pub fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        match Format::of(bytes) {
            Format::Http => Component::new(engine, bytes).map(Self::Component),
            Format::Wagi => Module::new(engine, bytes).map(Self::Module),
        }
    }

    /// Loads code that `wedge compile-module` wrote to `path`, a component's
    /// or a module's as the file's header says.
    ///
    /// # Safety
    ///
    /// As for [`Module::deserialize_file`]: the file must be wasmtime's own
    /// output for this engine's settings, written by wedge and not changed since.
    #[allow(unsafe_code)]
    pub unsafe fn deserialize_file(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        match Engine::detect_precompiled_file(path)? {
            // SAFETY: the caller vouches for the file.
            Some(Precompiled::Component) => {
                unsafe { Component::deserialize_file(engine, path) }.map(Self::Component)
            }
            // SAFETY: the caller vouches for the file.
            _ => unsafe { Module::deserialize_file(engine, path) }.map(Self::Module),
        }
    }

    /// The format the code is of.
    pub fn format(&self) -> Format {
        match self {
            Self::Module(_) => Format::Wagi,
            Self::Component(_) => Format::Http,
        }
    }
}
