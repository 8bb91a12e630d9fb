//! The incoming request, read from the WAGI environment and stdin.

use std::io::Read;

use crate::percent_decode;

/// An HTTP request as wedge hands it to a handler.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The WAGI variables. A few dozen at most, so a vector searched in order is
    /// cheaper than hashing them (which would also cost a random seed per run).
    env: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// Reads the request of the current run: the environment wedge set and the
    /// body on stdin.
    pub fn from_env() -> std::io::Result<Self> {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body)?;
        Ok(Self::from_parts(std::env::vars(), body))
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
        let env: Vec<(String, String)> = vars.into_iter().collect();
        let mut headers: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("HTTP_")?;
                Some((name.to_ascii_lowercase().replace('_', "-"), v.clone()))
            })
            .collect();
        for (var, name) in [
            ("CONTENT_TYPE", "content-type"),
            ("CONTENT_LENGTH", "content-length"),
        ] {
            if let Some((_, v)) = env.iter().find(|(k, v)| k == var && !v.is_empty()) {
                headers.push((name.to_string(), v.clone()));
            }
        }
        headers.sort();
        Self { env, headers, body }
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

    /// A request header by name, case-insensitive. `Authorization` and
    /// `Connection` are never passed to handlers.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase().replace('_', "-");
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All request headers, names in lower case.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
