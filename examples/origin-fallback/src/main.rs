//! `origin-fallback`: the classic edge shape. Serve from the store; on a miss
//! call the origin over HTTP, answer with what it said, and cache it with a
//! time stamp.
//!
//! - `GET /origin-fallback/<path>?<query>` answers what `$ORIGIN<path>?<query>`
//!   answers, with `x-cache: hit` (and `age`) from the store, `miss` from the
//!   origin, or `stale` when the origin fails and an old copy exists.
//! - Copies live `$MAX_AGE_SECS` seconds (default 60) in the function's own
//!   store, under the path and query, as `<unix millis>\n<content type>\n<body>`.
//! - Only 200s are cached; other statuses pass through. An origin that cannot
//!   be reached, with nothing cached, is a 502 naming why.

use std::time::{SystemTime, UNIX_EPOCH};

use wedge_sdk::http::Request as Outbound;
use wedge_sdk::kv::Store;
use wedge_sdk::{Request, Response};

fn main() {
    wedge_sdk::serve(handle);
}

/// A cached answer.
struct Copy {
    stored_ms: u64,
    content_type: String,
    body: Vec<u8>,
}

impl Copy {
    fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\n{}\n", self.stored_ms, self.content_type).into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut parts = bytes.splitn(3, |b| *b == b'\n');
        let stored_ms = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let content_type = String::from_utf8(parts.next()?.to_vec()).ok()?;
        Some(Self {
            stored_ms,
            content_type,
            body: parts.next()?.to_vec(),
        })
    }

    fn answer(&self, cache: &str, now: u64) -> Response {
        let age = now.saturating_sub(self.stored_ms) / 1000;
        Response::new(200)
            .with_header("content-type", &self.content_type)
            .with_header("x-cache", cache)
            .with_header("age", &age.to_string())
            .with_body(self.body.clone())
    }
}

fn handle(req: Request) -> Response {
    if req.method() != "GET" {
        return Response::text(405, "only GET\n");
    }
    let origin = req.env("ORIGIN").unwrap_or("http://127.0.0.1:8080/hello");
    let max_age_ms = req
        .env("MAX_AGE_SECS")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60)
        * 1000;
    let key = match req.query() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    let key = if key.is_empty() { "/".to_string() } else { key };
    // The function's own store: a copy of it under another name caches apart.
    let store = match Store::open(req.function()) {
        Ok(s) => s,
        Err(e) => return Response::text(500, format!("cannot open the cache: {e}\n")),
    };
    let now = now_ms();
    let cached = store
        .get(&key)
        .ok()
        .flatten()
        .and_then(|b| Copy::decode(&b));
    if let Some(copy) = &cached
        && now.saturating_sub(copy.stored_ms) < max_age_ms
    {
        return copy.answer("hit", now);
    }
    let url = match req.query() {
        "" => format!("{origin}{}", req.path()),
        q => format!("{origin}{}?{q}", req.path()),
    };
    let fetched = Outbound::get(url)
        .header("accept", req.header("accept").unwrap_or("*/*"))
        .send()
        .and_then(|r| {
            let status = r.status();
            let content_type = r
                .header("content-type")
                .unwrap_or("application/octet-stream")
                .to_string();
            Ok((status, content_type, r.into_body()?))
        });
    match fetched {
        Ok((200, content_type, body)) => {
            let copy = Copy {
                stored_ms: now,
                content_type,
                body,
            };
            // A cache that cannot be written still answers.
            let _ = store.set(&key, copy.encode());
            copy.answer("miss", now)
        }
        Ok((status, content_type, body)) => Response::new(status)
            .with_header("content-type", &content_type)
            .with_header("x-cache", "pass")
            .with_body(body),
        Err(e) => match cached {
            Some(copy) => copy.answer("stale", now),
            None => Response::text(502, format!("the origin failed: {e}\n")),
        },
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
