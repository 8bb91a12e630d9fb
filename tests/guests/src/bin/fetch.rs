//! Calls `?url=` over outbound HTTP `?n=` times in a row (default once), with
//! `?method=` (default GET), `?body=` and `?follow=1` for redirects, and
//! reports each call as a line: `<status> <body bytes>` or
//! `error <kind>: <message>`. With `?keep=1` each response stays open, unread
//! (`<status> open`), until the request ends.

use wedge_sdk::http::Request as Outbound;
use wedge_sdk::{Request, Response};

fn main() {
    wedge_sdk::serve(|req: Request| {
        let url = req.query_param("url").unwrap_or_default();
        let method = req.query_param("method").unwrap_or_else(|| "GET".into());
        let n: usize = req
            .query_param("n")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let keep = req.query_param("keep").as_deref() == Some("1");
        let mut open = Vec::new();
        let mut out = String::new();
        for _ in 0..n {
            let mut call = Outbound::new(&method, url.clone()).header("x-from", "wedge-fetch");
            if let Some(body) = req.query_param("body") {
                call = call.body(body);
            }
            if req.query_param("follow").as_deref() == Some("1") {
                call = call.follow_redirects();
            }
            let line = match call.send() {
                Ok(response) if keep => {
                    let line = format!("{} open\n", response.status());
                    open.push(response);
                    line
                }
                Ok(response) => {
                    let status = response.status();
                    match response.into_body() {
                        Ok(body) => format!("{status} {}\n", body.len()),
                        Err(e) => format!("error {:?}: {e}\n", e.kind),
                    }
                }
                Err(e) => format!("error {:?}: {e}\n", e.kind),
            };
            out += &line;
        }
        Response::text(200, out)
    });
}
