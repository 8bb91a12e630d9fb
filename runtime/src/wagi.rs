//! WAGI, CGI over WASI: an HTTP request becomes environment, argv and stdin for the
//! guest, and what the guest writes to stdout becomes the HTTP response.

use std::fmt::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode, Version};
use percent_encoding::percent_decode_str;

/// What the host knows about a request beyond its head.
pub struct RequestInfo<'a> {
    /// The request head.
    pub parts: &'a http::request::Parts,
    /// The route that matched, as configured (`/foo`).
    pub route: &'a str,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the request arrived on.
    pub local: SocketAddr,
    /// Bytes of request body handed to the guest on stdin.
    pub body_len: usize,
    /// Function being served.
    pub function: &'a str,
    /// Version label being served.
    pub version: &'a str,
    /// The request's id, as echoed in `x-request-id`.
    pub request_id: &'a str,
}

/// The part of the raw path below the route: `/bar` for route `/foo` and path
/// `/foo/bar`, empty for `/foo`.
pub fn raw_path_info<'p>(path: &'p str, route: &str) -> &'p str {
    let prefix = route.trim_end_matches('/');
    path.get(prefix.len()..).unwrap_or("")
}

/// The guest's environment: the function's static `env` first, then the request
/// variables, which win over a static entry of the same name.
pub fn environment(
    info: &RequestInfo<'_>,
    static_env: &[(String, String)],
) -> Vec<(String, String)> {
    let parts = info.parts;
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let raw_info = raw_path_info(path, info.route);
    let host = host_of(parts);
    let (server_name, _) = split_host_port(host.unwrap_or(""));
    let server_name = if server_name.is_empty() {
        info.local.ip().to_string()
    } else {
        server_name.to_string()
    };
    let authority = host
        .map(str::to_string)
        .unwrap_or_else(|| info.local.to_string());

    let mut vars: Vec<(String, String)> = Vec::with_capacity(24 + parts.headers.keys_len());
    let mut set = |k: &str, v: String| vars.push((k.to_string(), v));
    set("REQUEST_METHOD", parts.method.as_str().to_string());
    set(
        "PATH_INFO",
        percent_decode_str(raw_info)
            .decode_utf8_lossy()
            .into_owned(),
    );
    set("X_RAW_PATH_INFO", raw_info.to_string());
    set("QUERY_STRING", query.to_string());
    set("SCRIPT_NAME", info.route.to_string());
    set("X_MATCHED_ROUTE", info.route.to_string());
    let mut full_url = String::with_capacity(8 + authority.len() + path.len() + query.len());
    let _ = write!(full_url, "http://{authority}{path}");
    if !query.is_empty() {
        full_url.push('?');
        full_url.push_str(query);
    }
    set("X_FULL_URL", full_url);
    set("SERVER_NAME", server_name);
    set("SERVER_PORT", info.local.port().to_string());
    set("SERVER_PROTOCOL", protocol(parts.version).to_string());
    set(
        "SERVER_SOFTWARE",
        concat!("wedge/", env!("CARGO_PKG_VERSION")).to_string(),
    );
    set("REMOTE_ADDR", info.peer.ip().to_string());
    set("REMOTE_HOST", info.peer.ip().to_string());
    set("CONTENT_LENGTH", info.body_len.to_string());
    set(
        "CONTENT_TYPE",
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default(),
    );
    set("GATEWAY_INTERFACE", "CGI/1.1".to_string());
    set("WEDGE_FUNCTION", info.function.to_string());
    set("WEDGE_VERSION", info.version.to_string());
    set("WEDGE_REQUEST_ID", info.request_id.to_string());
    header_variables(&parts.headers, &mut vars);

    if static_env.is_empty() {
        return vars;
    }
    let mut env = Vec::with_capacity(static_env.len() + vars.len());
    env.extend(
        static_env
            .iter()
            .filter(|(k, _)| !vars.iter().any(|(rk, _)| rk == k))
            .cloned(),
    );
    env.append(&mut vars);
    env
}

/// `HTTP_<NAME>` for each header but `Authorization` and `Connection`; repeated
/// headers are joined with `, ` (cookies with `; `).
fn header_variables(headers: &HeaderMap, vars: &mut Vec<(String, String)>) {
    for name in headers.keys() {
        if name == header::AUTHORIZATION || name == header::CONNECTION {
            continue;
        }
        let mut key = String::with_capacity(5 + name.as_str().len());
        key.push_str("HTTP_");
        key.extend(name.as_str().chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        let separator = if name == header::COOKIE { "; " } else { ", " };
        let mut value = String::new();
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.push_str(separator);
            }
            value.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        vars.push((key, value));
    }
}

/// argv: the request path, then each `&`-separated query item, percent-decoded
/// (with `+` as a space, as in an HTML form).
pub fn arguments(parts: &http::request::Parts) -> Vec<String> {
    let mut args = vec![parts.uri.path().to_string()];
    if let Some(query) = parts.uri.query() {
        args.extend(query.split('&').filter(|q| !q.is_empty()).map(|q| {
            let plus_as_space = q.replace('+', " ");
            percent_decode_str(&plus_as_space)
                .decode_utf8_lossy()
                .into_owned()
        }));
    }
    args
}

/// The `Host` header, or the authority of an absolute or HTTP/2 request target.
pub fn host_of(parts: &http::request::Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// Splits `example.com:8080` or `[::1]:8080` into host and optional port.
pub fn split_host_port(host: &str) -> (&str, Option<&str>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Why a guest's output is not a response.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MalformedResponse {
    /// Nothing was written to stdout.
    #[error("the guest wrote no response")]
    Empty,
    /// No blank line separates the headers from the body.
    #[error("the header block is not ended by a blank line")]
    Unterminated,
    /// The header block is larger than the host accepts.
    #[error("the header block is larger than {MAX_HEADER_BLOCK} bytes")]
    HeadersTooLarge,
    /// A header line is not `Name: value`.
    #[error("header line {0} is not `Name: value`")]
    BadLine(usize),
    /// The `Status` header is not a valid final status.
    #[error("`Status: {0}` is not a valid status")]
    BadStatus(String),
    /// Without `Status` or `Location` a response must say what it is.
    #[error("the response has no Content-Type, Status or Location header")]
    NoContentType,
}

/// Largest header block a guest may write.
pub const MAX_HEADER_BLOCK: usize = 64 << 10;

/// A response parsed from a guest's stdout.
pub struct GuestResponse {
    /// The status the guest chose (200, or 302 with a bare `Location`).
    pub status: StatusCode,
    /// Headers to send, in the order the guest wrote them.
    pub headers: HeaderMap,
    /// Everything after the blank line, shared with the output buffer.
    pub body: Bytes,
}

/// Parses CGI output: header lines, a blank line, then the body.
pub fn parse_response(out: Bytes) -> Result<GuestResponse, MalformedResponse> {
    if out.is_empty() {
        return Err(MalformedResponse::Empty);
    }
    let mut headers = HeaderMap::new();
    let mut status: Option<StatusCode> = None;
    let mut has_location = false;
    let mut has_content_type = false;
    let mut pos = 0;
    let mut line_no = 0;
    let body_start = loop {
        let Some(nl) = out[pos..].iter().position(|&b| b == b'\n') else {
            return Err(if out.len() > MAX_HEADER_BLOCK {
                MalformedResponse::HeadersTooLarge
            } else {
                MalformedResponse::Unterminated
            });
        };
        let end = pos + nl + 1;
        if end > MAX_HEADER_BLOCK {
            return Err(MalformedResponse::HeadersTooLarge);
        }
        line_no += 1;
        let mut line = &out[pos..pos + nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        pos = end;
        if line.is_empty() {
            break end;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(MalformedResponse::BadLine(line_no))?;
        let name = HeaderName::from_bytes(&line[..colon])
            .map_err(|_| MalformedResponse::BadLine(line_no))?;
        let value = line[colon + 1..].trim_ascii();
        if name.as_str() == "status" {
            let text = String::from_utf8_lossy(value).into_owned();
            let code = value
                .get(..3)
                .filter(|_| value.len() == 3 || value[3] == b' ')
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse::<u16>().ok())
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|c| c.as_u16() >= 200)
                .ok_or(MalformedResponse::BadStatus(text))?;
            status = Some(code);
            continue;
        }
        let value =
            HeaderValue::from_bytes(value).map_err(|_| MalformedResponse::BadLine(line_no))?;
        if is_host_controlled(&name) {
            continue;
        }
        has_location |= name == header::LOCATION;
        has_content_type |= name == header::CONTENT_TYPE;
        headers.append(name, value);
    };
    let status = match status {
        Some(s) => s,
        None if has_location => StatusCode::FOUND,
        None if has_content_type => StatusCode::OK,
        None => return Err(MalformedResponse::NoContentType),
    };
    Ok(GuestResponse {
        status,
        headers,
        body: out.slice(body_start..),
    })
}

/// Headers that describe the connection or the framing, or that the host sets
/// itself; a guest's value for them is dropped.
fn is_host_controlled(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "content-length"
            | "te"
            | "trailer"
            | "upgrade"
            | "x-request-id"
            | "x-wedge-version"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GuestResponse, MalformedResponse> {
        parse_response(Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn plain_response() {
        let r = parse("Content-Type: text/plain\n\nhello").unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(&r.body[..], b"hello");
    }

    #[test]
    fn crlf_status_and_repeated_headers() {
        let r = parse("Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\ngone")
            .unwrap();
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(&r.body[..], b"gone");
    }

    #[test]
    fn location_alone_redirects() {
        let r = parse("Location: /elsewhere\n\n").unwrap();
        assert_eq!(r.status, StatusCode::FOUND);
        let r = parse("Status: 301\nLocation: /x\n\n").unwrap();
        assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    }

    #[test]
    fn malformed_output_is_refused() {
        assert_eq!(parse("").err(), Some(MalformedResponse::Empty));
        assert_eq!(
            parse("just a body").err(),
            Some(MalformedResponse::Unterminated)
        );
        assert_eq!(
            parse("X-Foo: bar\n\nbody").err(),
            Some(MalformedResponse::NoContentType)
        );
        assert_eq!(
            parse("no colon here\n\n").err(),
            Some(MalformedResponse::BadLine(1))
        );
        assert!(matches!(
            parse("Status: abc\n\n"),
            Err(MalformedResponse::BadStatus(_))
        ));
        assert!(matches!(
            parse("Status: 100\n\n"),
            Err(MalformedResponse::BadStatus(_))
        ));
        assert!(matches!(
            parse("Status: 2000\n\n"),
            Err(MalformedResponse::BadStatus(_))
        ));
        let huge = format!("X-A: {}\n\n", "a".repeat(MAX_HEADER_BLOCK));
        assert_eq!(parse(&huge).err(), Some(MalformedResponse::HeadersTooLarge));
    }

    #[test]
    fn framing_headers_are_the_hosts() {
        let r =
            parse("Content-Type: text/plain\nContent-Length: 99\nConnection: close\n\nhi").unwrap();
        assert!(r.headers.get("content-length").is_none());
        assert!(r.headers.get("connection").is_none());
    }

    #[test]
    fn path_info_is_below_the_route() {
        assert_eq!(raw_path_info("/foo/bar", "/foo"), "/bar");
        assert_eq!(raw_path_info("/foo", "/foo"), "");
        assert_eq!(raw_path_info("/x/y", "/"), "/x/y");
        assert_eq!(raw_path_info("/foo/bar", "/foo/"), "/bar");
    }

    #[test]
    fn host_and_port_split() {
        assert_eq!(
            split_host_port("example.com:8080"),
            ("example.com", Some("8080"))
        );
        assert_eq!(split_host_port("example.com"), ("example.com", None));
        assert_eq!(split_host_port("[::1]:80"), ("::1", Some("80")));
    }

    #[test]
    fn request_becomes_environment_and_argv() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/foo/a%20b?x=1&y=hello+world&&z=%2F")
            .header("host", "edge.example:8080")
            .header("x-user-id", "42")
            .header("accept", "a")
            .header("accept", "b")
            .header("authorization", "Bearer secret")
            .header("content-type", "text/plain")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let info = RequestInfo {
            parts: &parts,
            route: "/foo",
            peer: "10.1.2.3:5555".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            body_len: 5,
            function: "fn",
            version: "v1",
            request_id: "rid",
        };
        let static_env = vec![
            ("GREETING".to_string(), "hi".to_string()),
            ("REQUEST_METHOD".to_string(), "overridden".to_string()),
        ];
        let env = environment(&info, &static_env);
        let get = |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str());
        assert_eq!(env[0], ("GREETING".to_string(), "hi".to_string()));
        assert_eq!(env.iter().filter(|(k, _)| k == "REQUEST_METHOD").count(), 1);
        assert_eq!(get("REQUEST_METHOD"), Some("POST"));
        assert_eq!(get("PATH_INFO"), Some("/a b"));
        assert_eq!(get("X_RAW_PATH_INFO"), Some("/a%20b"));
        assert_eq!(get("SERVER_NAME"), Some("edge.example"));
        assert_eq!(get("HTTP_X_USER_ID"), Some("42"));
        assert_eq!(get("HTTP_ACCEPT"), Some("a, b"));
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        assert_eq!(get("CONTENT_LENGTH"), Some("5"));
        assert_eq!(
            get("X_FULL_URL"),
            Some("http://edge.example:8080/foo/a%20b?x=1&y=hello+world&&z=%2F")
        );
        assert_eq!(
            arguments(&parts),
            ["/foo/a%20b", "x=1", "y=hello world", "z=/"]
        );
    }
}
