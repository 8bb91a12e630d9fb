//! `inventory`: stock counts that never oversell, even under contention and
//! across a crash.
//!
//! - `PUT /inventory/<sku>` with an integer body seeds the stock.
//! - `GET /inventory/<sku>`: `{"sku":..,"stock":N}`, or 404.
//! - `POST /inventory/<sku>/reserve?qty=N`: `{"sku":..,"remaining":N}`, or 409
//!   with `{"error":"insufficient","remaining":N}`.
//!
//! Stock lives in the `inventory` store under the SKU itself, as ASCII decimal,
//! so operators can read and seed it directly.

use wedge_sdk::kv::{Error, Store};
use wedge_sdk::{Request, Response};

fn main() {
    wedge_sdk::serve(handle);
}

fn handle(req: Request) -> Response {
    let store = match Store::open("inventory") {
        Ok(s) => s,
        Err(e) => return failure(e),
    };
    let path = req.path().trim_matches('/');
    let parts: Vec<&str> = path.split('/').collect();
    match (req.method(), parts.as_slice()) {
        ("PUT", [sku]) if valid_sku(sku) => seed(&store, sku, &req),
        ("GET", [sku]) if valid_sku(sku) => match store.get_counter(sku) {
            Ok(Some(stock)) => json(200, &format!(r#"{{"sku":"{sku}","stock":{stock}}}"#)),
            Ok(None) => json(404, r#"{"error":"unknown sku"}"#),
            Err(e) => failure(e),
        },
        ("POST", [sku, "reserve"]) if valid_sku(sku) => reserve(&store, sku, &req),
        (_, [sku, ..]) if !valid_sku(sku) => {
            json(400, r#"{"error":"a sku is 1-128 of A-Z a-z 0-9 - _ ."}"#)
        }
        _ => json(404, r#"{"error":"no such endpoint"}"#),
    }
}

fn seed(store: &Store, sku: &str, req: &Request) -> Response {
    let stock = match req
        .body_text()
        .ok()
        .and_then(|b| b.trim().parse::<i64>().ok())
    {
        Some(n) if n >= 0 => n,
        _ => {
            return json(
                400,
                r#"{"error":"the body must be a stock count, 0 or more"}"#,
            );
        }
    };
    match store.set(sku, stock.to_string()) {
        Ok(()) => json(200, &format!(r#"{{"sku":"{sku}","stock":{stock}}}"#)),
        Err(e) => failure(e),
    }
}

fn reserve(store: &Store, sku: &str, req: &Request) -> Response {
    let qty = match req.query_param("qty").map(|q| q.parse::<i64>()) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return json(400, r#"{"error":"qty must be a whole number, 1 or more"}"#),
    };
    // The decrement and the check are one atomic step: stock never goes below zero.
    match store.add(sku, -qty, 0, i64::MAX) {
        Ok(remaining) => json(
            200,
            &format!(r#"{{"sku":"{sku}","remaining":{remaining}}}"#),
        ),
        Err(Error::OutOfRange { current }) => match store.exists(sku) {
            Ok(true) => json(
                409,
                &format!(r#"{{"error":"insufficient","remaining":{current}}}"#),
            ),
            Ok(false) => json(404, r#"{"error":"unknown sku"}"#),
            Err(e) => failure(e),
        },
        Err(e) => failure(e),
    }
}

fn valid_sku(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= 128
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn json(status: u16, body: &str) -> Response {
    Response::json(status, body)
}

fn failure(e: Error) -> Response {
    eprintln!("inventory: store error: {e}");
    json(500, r#"{"error":"storage unavailable"}"#)
}
