//! `session`: records facts about a session (`verified = yes`, `country = NL`)
//! in the `sessions` store, which it shares with the `rules` example.
//!
//! - `PUT /session/<id>/<fact>` with the value as the body.
//! - `GET /session/<id>`: every fact, as a JSON object.
//! - `DELETE /session/<id>/<fact>`.

use std::collections::BTreeMap;

use wedge_sdk::kv::Store;
use wedge_sdk::{Request, Response};

fn main() {
    wedge_sdk::serve(handle);
}

fn handle(req: Request) -> Response {
    let store = match Store::open("sessions") {
        Ok(s) => s,
        Err(e) => return error(500, &e.to_string()),
    };
    let path = req.path().trim_matches('/').to_string();
    let parts: Vec<&str> = path.split('/').collect();
    match (req.method(), parts.as_slice()) {
        (_, [id, ..]) if !valid(id) => error(400, "a session id is 1-64 of A-Z a-z 0-9 - _"),
        (_, [_, fact]) if !valid(fact) => error(400, "a fact name is 1-64 of A-Z a-z 0-9 - _"),
        ("PUT", [id, fact]) => match store.set(format!("{id}/{fact}"), req.body()) {
            Ok(()) => Response::json(200, r#"{"stored":true}"#),
            Err(e) => error(500, &e.to_string()),
        },
        ("DELETE", [id, fact]) => match store.delete(format!("{id}/{fact}")) {
            Ok(true) => Response::json(200, r#"{"deleted":true}"#),
            Ok(false) => error(404, "no such fact"),
            Err(e) => error(500, &e.to_string()),
        },
        ("GET", [id]) => facts(&store, id),
        _ => error(404, "no such endpoint"),
    }
}

fn facts(store: &Store, id: &str) -> Response {
    let prefix = format!("{id}/");
    let keys = match store.list(&prefix) {
        Ok(k) => k,
        Err(e) => return error(500, &e.to_string()),
    };
    let mut facts = BTreeMap::new();
    for key in keys {
        if let Ok(Some(value)) = store.get(&key) {
            let fact = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            facts.insert(fact, String::from_utf8_lossy(&value).into_owned());
        }
    }
    Response::json(200, serde_json::to_string(&facts).unwrap_or_default())
}

fn valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, serde_json::json!({ "error": message }).to_string())
}
