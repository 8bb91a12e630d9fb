//! `plain`: any wasm32-wasip1 program is a wedge handler. This one uses no SDK:
//! it reads the request from the environment and stdin and prints a CGI response.

use std::io::Read;

fn main() {
    let method = std::env::var("REQUEST_METHOD").unwrap_or_default();
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .expect("stdin is the request body");

    println!("Content-Type: text/plain");
    println!();
    println!("{method} {path:?} with a {} byte body", body.len());
    for arg in std::env::args().skip(1) {
        println!("query item: {arg}");
    }
}
