//! Build A of the live-swap function: answers "A", after sleeping `?ms=N`.

fn main() {
    wedge_sdk::serve(|req| {
        if let Some(ms) = req.query_param("ms").and_then(|v| v.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        wedge_sdk::Response::text(200, "A")
    });
}
