//! Writes the request body to stdout unchanged, so a test can send any CGI output it likes.

use std::io::{Read, Write};

fn main() {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).unwrap();
    std::io::stdout().write_all(&body).unwrap();
}
