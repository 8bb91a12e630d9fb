//! Panics, which on wasm32-wasip1 prints to stderr and then traps.

fn main() {
    eprintln!("about to fail");
    panic!("the handler gave up");
}
