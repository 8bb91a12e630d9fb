//! Exits with status 3 before writing a response.

fn main() {
    std::process::exit(3);
}
