//! Sleeps for `?ms=N` milliseconds (default 500), then answers. Sleeping waits in
//! the host, so this holds a request open without using CPU.

fn main() {
    wedge_sdk::serve(|req| {
        let ms: u64 = req
            .query_param("ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        wedge_sdk::Response::text(200, format!("slept {ms}ms\n"))
    });
}
