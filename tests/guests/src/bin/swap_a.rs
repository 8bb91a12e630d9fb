//! Build A of the live-swap function: answers "A", after sleeping `?ms=N`
//! or after keeping its core busy for `?spin=N` milliseconds.

fn main() {
    wedge_sdk::serve(|req| {
        if let Some(ms) = req.query_param("ms").and_then(|v| v.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        if let Some(ms) = req.query_param("spin").and_then(|v| v.parse().ok()) {
            wedge_test_guests::spin(std::time::Duration::from_millis(ms));
        }
        wedge_sdk::Response::text(200, "A")
    });
}
