//! `ticker`: server-sent events, one a second, each with the node's time and
//! a counter kept in the store (so every client and every node on the same
//! store counts on from where the last left off). Try
//! `curl -N http://127.0.0.1:8080/ticker` and `/ticker?n=3` (default 10
//! events, at most 60).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wedge_sdk::kv::Store;
use wedge_sdk::{Request, Response};

fn main() {
    wedge_sdk::serve_stream(|req: Request| {
        let n: u32 = req
            .query_param("n")
            .and_then(|v| v.parse().ok())
            .unwrap_or(10)
            .min(60);
        let store = Store::open("ticker").map_err(std::io::Error::other)?;
        let mut body = Response::new(200)
            .with_header("Content-Type", "text/event-stream")
            .with_header("Cache-Control", "no-cache")
            .stream()?;
        for i in 0..n {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            let tick = store
                .add("ticks", 1, 0, i64::MAX)
                .map_err(std::io::Error::other)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            write!(
                body,
                "id: {tick}\ndata: {{\"tick\":{tick},\"unix_ms\":{}}}\n\n",
                now.as_millis()
            )?;
        }
        Ok(())
    });
}
