//! `wedge-sdk`: write a [wedge](https://example.invalid/wedge) HTTP handler as a
//! plain Rust function.
//!
//! A wedge handler is a `wasm32-wasip1` command. wedge runs it once per request in
//! a fresh sandbox and speaks WAGI (CGI over WASI) to it: the request arrives as
//! environment variables and stdin, the response leaves on stdout. This crate
//! hides that contract behind [`Request`] and [`Response`].
//!
//! ```no_run
//! use wedge_sdk::{Request, Response};
//!
//! fn main() {
//!     wedge_sdk::serve(|req: Request| {
//!         let name = req.query_param("name").unwrap_or_else(|| "world".into());
//!         Response::text(200, format!("Hello, {name}!\n"))
//!     });
//! }
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip1` and drop the
//! `.wasm` into `functions/<name>/v1.wasm`.
//!
//! A handler that sends its body as it goes (server-sent events, a large
//! download) uses [`serve_stream`] and [`Response::stream`].

pub mod http;
pub mod kv;
mod request;
mod response;
mod stream;
mod wasi;

pub use request::Request;
pub use response::Response;
pub use stream::BodyWriter;

/// Reads the request wedge passed in, runs `handler`, and writes its response.
///
/// A request that cannot be read (a body that is not what `CONTENT_LENGTH`
/// promised, say) is answered with 400 without calling the handler.
pub fn serve(handler: impl FnOnce(Request) -> Response) {
    let response = match Request::from_env() {
        Ok(request) => handler(request),
        Err(e) => Response::text(400, format!("cannot read request: {e}\n")),
    };
    // Head and body leave in one write. Nothing useful can be done if stdout is
    // gone: wedge then answers 502.
    let _ = wasi::write_stdout(response.head().as_bytes(), response.body());
}

/// Reads the request wedge passed in and runs `handler`, which streams its
/// response: it calls [`Response::stream`] for the head and writes the body
/// through the [`BodyWriter`] it gets.
///
/// A handler that returns an error after its head went out ends the process
/// with status 1, so wedge aborts the stream and the client sees it cut
/// short; one that fails before its head went out gets a 500.
pub fn serve_stream(handler: impl FnOnce(Request) -> std::io::Result<()>) {
    let result = match Request::from_env() {
        Ok(request) => handler(request),
        Err(e) => {
            let bad = Response::text(400, format!("cannot read request: {e}\n"));
            let _ = wasi::write_stdout(bad.head().as_bytes(), bad.body());
            return;
        }
    };
    if let Err(e) = result {
        eprintln!("the handler failed: {e}");
        std::process::exit(1);
    }
}

/// Percent-decodes `text`; with `plus_as_space`, `+` decodes to a space as in HTML forms.
pub fn percent_decode(text: &str, plus_as_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a%20b+c", false), "a b+c");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%2F", false), "%zz/");
    }
}
