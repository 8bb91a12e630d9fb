//! `rules`: a risk-control decision service. Its rules are JSON in the `rules`
//! store, so they change at run time without a redeploy; facts recorded by the
//! `session` example come from the shared `sessions` store.
//!
//! - `GET /rules/config`: the current rules.
//! - `PUT /rules/config`: replace them (checked before they are stored).
//! - `ANY /rules/check/<path>`: decide on this request: 200
//!   `{"decision":"allow","rule":null}` or 403 `{"decision":"deny","rule":"<name>"}`.
//!   The session is the `x-session-id` header or the `session` cookie.

use rules::{Attributes, Decision, Rules};
use wedge_sdk::kv::Store;
use wedge_sdk::{Request, Response};

/// Where the rules live in the `rules` store.
const RULES_KEY: &str = "rules";

fn main() {
    wedge_sdk::serve(handle);
}

fn handle(req: Request) -> Response {
    let path = req.path().to_string();
    match (req.method(), path.as_str()) {
        ("GET", "/config") => match load_rules() {
            Ok(rules) => Response::json(
                200,
                serde_json::to_string_pretty(&rules).unwrap_or_default(),
            ),
            Err(e) => error(500, &e),
        },
        ("PUT", "/config") => store_rules(&req),
        (_, p) if p == "/check" || p.starts_with("/check/") => check(&req, &p["/check".len()..]),
        _ => error(
            404,
            "no such endpoint; try /rules/check/... or /rules/config",
        ),
    }
}

fn load_rules() -> Result<Rules, String> {
    let store = Store::open("rules").map_err(|e| e.to_string())?;
    match store.get(RULES_KEY).map_err(|e| e.to_string())? {
        None => Ok(Rules::default()),
        Some(bytes) => {
            let text =
                String::from_utf8(bytes).map_err(|_| "stored rules are not UTF-8".to_string())?;
            Rules::from_json(&text).map_err(|e| format!("stored rules are invalid: {e}"))
        }
    }
}

fn store_rules(req: &Request) -> Response {
    let text = match req.body_text() {
        Ok(t) => t,
        Err(_) => return error(400, "rules must be UTF-8 JSON"),
    };
    let rules = match Rules::from_json(text) {
        Ok(r) => r,
        Err(e) => return error(400, &e),
    };
    let saved = Store::open("rules").and_then(|s| s.set(RULES_KEY, text));
    match saved {
        Ok(()) => Response::json(200, format!(r#"{{"stored":{}}}"#, rules.rules.len())),
        Err(e) => error(500, &e.to_string()),
    }
}

fn check(req: &Request, path: &str) -> Response {
    let rules = match load_rules() {
        Ok(r) => r,
        Err(e) => return error(500, &e),
    };
    let mut attrs = Attributes {
        method: req.method().to_string(),
        path: if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        },
        client: req.remote_addr().to_string(),
        ..Attributes::default()
    };
    for (name, value) in req.headers() {
        attrs.headers.insert(name.to_string(), value.to_string());
    }
    for (name, value) in req.query_pairs() {
        attrs.query.entry(name).or_insert(value);
    }
    if let Some(session) = req.header("x-session-id").or_else(|| req.cookie("session")) {
        match session_facts(session) {
            Ok(facts) => attrs.session = facts,
            Err(e) => return error(500, &e),
        }
    }
    let verdict = rules.evaluate(&attrs);
    let status = match verdict.decision {
        Decision::Allow => 200,
        Decision::Deny => 403,
    };
    Response::json(status, serde_json::to_string(&verdict).unwrap_or_default())
}

/// Facts the `session` example recorded: keys `<session>/<fact>`.
fn session_facts(session: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let store = Store::open("sessions").map_err(|e| e.to_string())?;
    let prefix = format!("{session}/");
    let mut facts = std::collections::BTreeMap::new();
    for key in store.list(&prefix).map_err(|e| e.to_string())? {
        let Some(value) = store.get(&key).map_err(|e| e.to_string())? else {
            continue;
        };
        let fact = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        facts.insert(fact, String::from_utf8_lossy(&value).into_owned());
    }
    Ok(facts)
}

fn error(status: u16, message: &str) -> Response {
    Response::json(status, serde_json::json!({ "error": message }).to_string())
}
