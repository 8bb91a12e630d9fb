//! The incoming request, read from the WAGI environment and stdin.

use std::ops::Range;
use std::sync::OnceLock;

use crate::{percent_decode, wasi};

/// An HTTP request as wedge hands it to a handler.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Every WAGI variable as `NAME=value\0`, back to back, as wedge passed
    /// them: read in one call, and looked up without copying.
    vars: String,
    /// Where each `NAME=value` lies in `vars`. A few dozen at most, so a vector
    /// searched in order is cheaper than hashing them (which would also cost a
    /// random seed per run).
    index: Vec<Range<usize>>,
    /// The headers with their names in lower case, built on first use.
    headers: OnceLock<Vec<(String, Range<usize>)>>,
    body: Vec<u8>,
}

/// The variables that carry a header without the `HTTP_` prefix.
const UNPREFIXED_HEADERS: [(&str, &str); 2] = [
    ("CONTENT_TYPE", "content-type"),
    ("CONTENT_LENGTH", "content-length"),
];

impl Request {
    /// Reads the request of the current run: the environment wedge set and the
    /// body on stdin (exactly `CONTENT_LENGTH` bytes).
    pub fn from_env() -> std::io::Result<Self> {
        let (vars, index) = wasi::environment();
        let mut request = Self {
            vars,
            index,
            ..Self::default()
        };
        let len = match request.env("CONTENT_LENGTH").filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("CONTENT_LENGTH {v:?} is not a length"),
                )
            })?),
        };
        request.body = wasi::read_body(len)?;
        Ok(request)
    }

    /// Builds a request from WAGI variables and a body; handy in a handler's tests.
    ///
    /// ```
    /// let req = wedge_sdk::Request::from_parts(
    ///     [("REQUEST_METHOD".into(), "GET".into()), ("HTTP_X_USER_ID".into(), "7".into())],
    ///     Vec::new(),
    /// );
    /// assert_eq!(req.method(), "GET");
    /// assert_eq!(req.header("x-user-id"), Some("7"));
    /// ```
    pub fn from_parts(vars: impl IntoIterator<Item = (String, String)>, body: Vec<u8>) -> Self {
        let (vars, index) = wasi::join(vars);
        Self {
            vars,
            index,
            headers: OnceLock::new(),
            body,
        }
    }

    /// Every variable as `(name, value)`; one without `=` has an empty value.
    fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.index.iter().map(|range| {
            let var = &self.vars[range.clone()];
            var.split_once('=').unwrap_or((var, ""))
        })
    }

    fn var(&self, name: &str) -> &str {
        self.env(name).unwrap_or("")
    }

    /// `GET`, `POST`, ...
    pub fn method(&self) -> &str {
        self.var("REQUEST_METHOD")
    }

    /// The decoded path below the function's route: `/bar` for route `/foo` and
    /// request `/foo/bar`; empty for `/foo` itself.
    pub fn path(&self) -> &str {
        self.var("PATH_INFO")
    }

    /// [`path`](Self::path) as sent, still percent-encoded.
    pub fn raw_path(&self) -> &str {
        self.var("X_RAW_PATH_INFO")
    }

    /// The route that matched (`/foo`).
    pub fn route(&self) -> &str {
        self.var("X_MATCHED_ROUTE")
    }

    /// The query string without `?`, still encoded.
    pub fn query(&self) -> &str {
        self.var("QUERY_STRING")
    }

    /// The first value of query parameter `name`, decoded.
    ///
    /// ```
    /// let req = wedge_sdk::Request::from_parts([("QUERY_STRING".into(), "qty=3&note=a+b".into())], vec![]);
    /// assert_eq!(req.query_param("qty").as_deref(), Some("3"));
    /// assert_eq!(req.query_param("note").as_deref(), Some("a b"));
    /// assert_eq!(req.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Every query parameter, decoded, in order.
    pub fn query_pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.query()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
    }

    /// A request header by name, case-insensitive (`_` and `-` alike).
    /// `Authorization` and `Connection` are never passed to handlers.
    pub fn header(&self, name: &str) -> Option<&str> {
        for (var, header) in UNPREFIXED_HEADERS {
            if header.eq_ignore_ascii_case(name) {
                return self.env(var).filter(|v| !v.is_empty());
            }
        }
        self.vars()
            .find(|(var, _)| {
                var.strip_prefix("HTTP_")
                    .is_some_and(|var| names_header(var, name))
            })
            .map(|(_, value)| value)
    }

    /// All request headers, names in lower case, sorted by name.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let headers = self.headers.get_or_init(|| {
            let mut headers: Vec<(String, Range<usize>)> = self
                .index
                .iter()
                .filter_map(|range| {
                    let var = &self.vars[range.clone()];
                    let (var, value) = var.split_once('=').unwrap_or((var, ""));
                    let name = match var.strip_prefix("HTTP_") {
                        Some(name) => name.to_ascii_lowercase().replace('_', "-"),
                        None => UNPREFIXED_HEADERS
                            .iter()
                            .find(|(v, _)| *v == var && !value.is_empty())?
                            .1
                            .to_string(),
                    };
                    Some((name, range.end - value.len()..range.end))
                })
                .collect();
            headers.sort_by(|a, b| a.0.cmp(&b.0));
            headers
        });
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), &self.vars[value.clone()]))
    }

    /// A cookie by name.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.header("cookie")?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The request body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8 text.
    pub fn body_text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The client's IP address.
    pub fn remote_addr(&self) -> &str {
        self.var("REMOTE_ADDR")
    }

    /// The full URL the client asked for.
    pub fn url(&self) -> &str {
        self.var("X_FULL_URL")
    }

    /// The id wedge logs this request under and returns in `x-request-id`.
    pub fn request_id(&self) -> &str {
        self.var("WEDGE_REQUEST_ID")
    }

    /// The function being run.
    pub fn function(&self) -> &str {
        self.var("WEDGE_FUNCTION")
    }

    /// The version label being run.
    pub fn version(&self) -> &str {
        self.var("WEDGE_VERSION")
    }

    /// Any other variable: a static `env` entry from `function.toml`, say.
    pub fn env(&self, name: &str) -> Option<&str> {
        // Compares the name in place rather than splitting every variable.
        self.index.iter().find_map(|range| {
            let rest = self.vars[range.clone()].strip_prefix(name)?;
            match rest.as_bytes().first() {
                Some(b'=') => Some(&rest[1..]),
                None => Some(""),
                Some(_) => None,
            }
        })
    }
}

/// Whether variable name `var` (after `HTTP_`) carries header `name`: `X_USER_ID`
/// carries `x-user-id`.
fn names_header(var: &str, name: &str) -> bool {
    var.len() == name.len()
        && var.bytes().zip(name.bytes()).all(|(v, n)| {
            v.to_ascii_uppercase()
                == match n {
                    b'-' => b'_',
                    n => n.to_ascii_uppercase(),
                }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(vars: &[(&str, &str)]) -> Request {
        Request::from_parts(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            Vec::new(),
        )
    }

    #[test]
    fn headers_are_found_by_any_spelling_of_their_name() {
        let req = request(&[
            ("HTTP_X_USER_ID", "7"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", ""),
            ("HTTP_ACCEPT", "*/*"),
        ]);
        assert_eq!(req.header("x-user-id"), Some("7"));
        assert_eq!(req.header("X-User-Id"), Some("7"));
        assert_eq!(req.header("x_user_id"), Some("7"));
        assert_eq!(req.header("x-user"), None);
        assert_eq!(req.header("Content-Type"), Some("text/plain"));
        assert_eq!(req.header("content-length"), None);
        let all: Vec<_> = req.headers().collect();
        assert_eq!(
            all,
            [
                ("accept", "*/*"),
                ("content-type", "text/plain"),
                ("x-user-id", "7")
            ]
        );
    }

    #[test]
    fn variables_keep_everything_after_the_first_equals_sign() {
        let req = Request {
            vars: "A=b=c\0EMPTY=\0NOVALUE\0Z=last\0".to_string(),
            index: vec![0..5, 6..12, 13..20, 21..27],
            ..Request::default()
        };
        assert_eq!(req.env("A"), Some("b=c"));
        assert_eq!(req.env("EMPTY"), Some(""));
        assert_eq!(req.env("NOVALUE"), Some(""));
        assert_eq!(req.env("Z"), Some("last"));
        assert_eq!(req.env("B"), None);
    }
}
