//! Imports a host function outside the guest ABI; wedge must refuse to load it.

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn launch_missiles(count: i32) -> i32;
}

fn main() {
    // SAFETY: never runs: wedge refuses the module when it loads.
    let n = unsafe { launch_missiles(1) };
    println!("Content-Type: text/plain\n\n{n}");
}
