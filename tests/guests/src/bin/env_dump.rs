//! Echoes everything WAGI hands a guest: each environment variable, argv and the body.

use std::io::Read;

fn main() {
    let mut body = String::new();
    std::io::stdin().read_to_string(&mut body).unwrap();
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("Content-Type: text/plain\n");
    for (k, v) in vars {
        println!("ENV {k}={v}");
    }
    for (i, a) in std::env::args().enumerate() {
        println!("ARG {i}={a}");
    }
    print!("BODY {body}");
}
