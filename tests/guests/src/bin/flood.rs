//! Writes a valid header block, then an endless body.

use std::io::Write;

fn main() {
    let mut out = std::io::stdout();
    out.write_all(b"Content-Type: text/plain\n\n").unwrap();
    let chunk = vec![b'x'; 64 << 10];
    loop {
        out.write_all(&chunk).unwrap();
    }
}
