//! `hello`: greets the caller. Try `/hello` and `/hello?name=edge`.

use wedge_sdk::{Request, Response};

fn main() {
    wedge_sdk::serve(|req: Request| match req.query_param("name") {
        Some(name) => Response::text(200, format!("Hello, {name}!\n")),
        None => Response::text(200, "Hello from wedge!\n"),
    });
}
