//! The outgoing response, written to stdout as a CGI header block and body.

use std::io::{self, Write};

/// An HTTP response from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    ///
    /// ```
    /// let r = wedge_sdk::Response::text(200, "hi");
    /// assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    /// ```
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// An `application/json` response; `body` is sent as given.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .with_header("Content-Type", "application/json")
            .with_body(body.into())
    }

    /// A `302 Found` redirect.
    pub fn redirect(location: &str) -> Self {
        Self::new(302).with_header("Location", location)
    }

    /// Adds a header; repeated names (`Set-Cookie`) are all sent, in order.
    /// Line breaks are replaced by spaces so a value cannot inject headers.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let clean = |s: &str| {
            if s.bytes().any(|b| b == b'\r' || b == b'\n') {
                s.replace(['\r', '\n'], " ")
            } else {
                s.to_owned()
            }
        };
        self.headers.push((clean(name), clean(value)));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name`, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Writes the response in CGI form: `Status`, the headers, a blank line, the body.
    ///
    /// ```
    /// let mut out = Vec::new();
    /// wedge_sdk::Response::text(404, "gone").write_to(&mut out).unwrap();
    /// assert_eq!(out, b"Status: 404 Not Found\nContent-Type: text/plain; charset=utf-8\n\ngone");
    /// ```
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.head().as_bytes())?;
        out.write_all(&self.body)
    }

    /// The CGI header block: `Status`, the headers and the blank line.
    pub(crate) fn head(&self) -> String {
        use std::fmt::Write as _;
        let mut head = String::with_capacity(64 + self.headers.len() * 32);
        head.push_str("Status: ");
        match self.status {
            // Three digits by hand: the formatting machinery is slow in wasm.
            code @ 100..=999 => {
                for digit in [code / 100, code / 10 % 10, code % 10] {
                    head.push(char::from(b'0' + digit as u8));
                }
            }
            code => {
                let _ = write!(head, "{code}");
            }
        }
        if let Some(reason) = reason(self.status) {
            head.push(' ');
            head.push_str(reason);
        }
        head.push('\n');
        for (k, v) in &self.headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push('\n');
        }
        if self.header("content-type").is_none() && self.header("location").is_none() {
            head.push_str("Content-Type: application/octet-stream\n");
        }
        head.push('\n');
        head
    }
}

fn reason(status: u16) -> Option<&'static str> {
    Some(match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_cannot_inject_lines() {
        let mut out = Vec::new();
        Response::new(200)
            .with_header("X-A", "1\r\nSet-Cookie: evil=1")
            .write_to(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("X-A: 1  Set-Cookie: evil=1\n"), "{text}");
    }

    #[test]
    fn missing_content_type_is_filled_in() {
        let mut out = Vec::new();
        Response::new(204).write_to(&mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("Content-Type: application/octet-stream")
        );
    }
}
