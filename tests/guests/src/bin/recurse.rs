//! Recurses without bound.

fn depth(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    std::hint::black_box(depth(std::hint::black_box(n - 1))) + 1
}

fn main() {
    let d = depth(u64::MAX);
    println!("Content-Type: text/plain\n\n{d}");
}
