//! Writes lines to stderr, then answers.

fn main() {
    eprintln!("first line from the guest");
    eprintln!("second line from the guest");
    eprint!("an unterminated last line");
    println!("Content-Type: text/plain\n\nlogged three lines");
}
