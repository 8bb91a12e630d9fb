//! The WASI 0.2 interfaces a component may import, linked so that `wasi:io`
//! reaches the request's resource table directly.
//!
//! `wasmtime_wasi::p2::add_to_linker_async` links `wasi:io` through
//! `WasiView::ctx`, which wedge builds lazily (see [`ProxyHost`]): every
//! handler writes its response body through `wasi:io/streams`, so every
//! request then built a WASI context it never used, with its environment,
//! stdio pipes and random-number state. Linked here, `wasi:io` takes the
//! table alone, and the context is built only for what needs it (clocks,
//! random, environment, stdio). The rest is linked as wasmtime-wasi links
//! it, interface by interface.
//!
//! Measured on `examples/http-hello`, `cargo bench -p wedge --bench
//! request_path`: see `docs/performance.md`.

use wasmtime::component::Linker;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use super::ProxyHost;

/// Adds the WASI 0.2 command imports: `wasi:io`, clocks, random, the CLI
/// interfaces, a filesystem (wedge opens nothing in it) and sockets (wedge
/// refuses every address).
pub fn add_wasi(l: &mut Linker<ProxyHost>) -> wasmtime::Result<()> {
    wasmtime_wasi_io::add_to_linker_async(l)?;

    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, ProxyHost::clocks)?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, ProxyHost::clocks)?;
    random::random::add_to_linker::<_, WasiRandom>(l, ProxyHost::random)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, ProxyHost::random)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, ProxyHost::random)?;

    cli::exit::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, ProxyHost::cli)?;

    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, ProxyHost::filesystem)?;
    filesystem::types::add_to_linker::<_, WasiFilesystem>(l, ProxyHost::filesystem)?;

    sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, ProxyHost::sockets)?;
    sockets::instance_network::add_to_linker::<_, WasiSockets>(l, ProxyHost::sockets)?;
    sockets::network::add_to_linker::<_, WasiSockets>(l, &Default::default(), ProxyHost::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, ProxyHost::sockets)?;
    sockets::tcp::add_to_linker::<_, WasiSockets>(l, ProxyHost::sockets)?;
    sockets::udp::add_to_linker::<_, WasiSockets>(l, ProxyHost::sockets)?;
    sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, ProxyHost::sockets)?;
    Ok(())
}
