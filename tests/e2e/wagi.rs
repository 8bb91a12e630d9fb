//! The WAGI contract: what a guest sees of a request and how its output becomes
//! the response.

use bytes::Bytes;
use http::Method;
use wedge_test_harness::{examples, guests};

use crate::node;

fn env_value(text: &str, name: &str) -> Option<String> {
    let prefix = format!("ENV {name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
}

/// Every WAGI variable, argv and the body on stdin.
#[tokio::test(flavor = "multi_thread")]
pub async fn env_dump() {
    let n = node()
        .function("dump", guests::ENV_DUMP)
        .function_toml(
            "dump",
            "route = \"/api\"\nenv = { GREETING = \"hello\", REQUEST_METHOD = \"static-loses\" }\n",
        )
        .start();
    let reply = n
        .send(
            Method::POST,
            "/api/caf%C3%A9/a%20b?x=1&name=hello+world&&slash=%2F",
            &[
                ("x-user-id", "42"),
                ("x-request-id", "req-abc-1"),
                ("content-type", "application/json"),
                ("authorization", "Bearer secret"),
            ],
            Bytes::from_static(b"{\"hello\":\"body\"}"),
        )
        .await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    let get = |k: &str| env_value(&text, k);
    assert_eq!(get("REQUEST_METHOD").as_deref(), Some("POST"));
    assert_eq!(get("PATH_INFO").as_deref(), Some("/café/a b"));
    assert_eq!(get("X_RAW_PATH_INFO").as_deref(), Some("/caf%C3%A9/a%20b"));
    assert_eq!(
        get("QUERY_STRING").as_deref(),
        Some("x=1&name=hello+world&&slash=%2F")
    );
    assert_eq!(get("SCRIPT_NAME").as_deref(), Some("/api"));
    assert_eq!(get("X_MATCHED_ROUTE").as_deref(), Some("/api"));
    let port = n.addr().port().to_string();
    assert_eq!(
        get("X_FULL_URL"),
        Some(format!(
            "http://127.0.0.1:{port}/api/caf%C3%A9/a%20b?x=1&name=hello+world&&slash=%2F"
        ))
    );
    assert_eq!(get("SERVER_NAME").as_deref(), Some("127.0.0.1"));
    assert_eq!(get("SERVER_PORT"), Some(port));
    assert_eq!(get("SERVER_PROTOCOL").as_deref(), Some("HTTP/1.1"));
    assert_eq!(get("REMOTE_ADDR").as_deref(), Some("127.0.0.1"));
    assert_eq!(get("CONTENT_LENGTH").as_deref(), Some("16"));
    assert_eq!(get("CONTENT_TYPE").as_deref(), Some("application/json"));
    assert_eq!(get("GATEWAY_INTERFACE").as_deref(), Some("CGI/1.1"));
    assert_eq!(get("HTTP_X_USER_ID").as_deref(), Some("42"));
    assert_eq!(
        get("HTTP_AUTHORIZATION"),
        None,
        "credentials never reach guests"
    );
    assert_eq!(get("HTTP_CONNECTION"), None);
    assert_eq!(get("WEDGE_FUNCTION").as_deref(), Some("dump"));
    assert_eq!(get("WEDGE_VERSION").as_deref(), Some("v1"));
    assert_eq!(get("WEDGE_REQUEST_ID").as_deref(), Some("req-abc-1"));
    assert_eq!(
        get("GREETING").as_deref(),
        Some("hello"),
        "static env is passed"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("ENV REQUEST_METHOD="))
            .count(),
        1,
        "a request variable replaces a static one"
    );
    assert_eq!(get("HOME"), None, "no host environment");
    assert_eq!(get("PATH"), None, "no host environment");
    let args: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("ARG "))
        .collect();
    assert_eq!(
        args,
        [
            "0=/api/caf%C3%A9/a%20b",
            "1=x=1",
            "2=name=hello world",
            "3=slash=/"
        ]
    );
    assert!(text.ends_with("BODY {\"hello\":\"body\"}"), "{text}");
    assert_eq!(reply.header("x-request-id"), Some("req-abc-1"));
    assert_eq!(reply.header("x-wedge-version"), Some("v1"));
}

/// The exact route gives an empty PATH_INFO, and a host without a request id gets one.
#[tokio::test(flavor = "multi_thread")]
pub async fn path_info_at_the_route_itself() {
    let n = node().function("dump", guests::ENV_DUMP).start();
    let reply = n.get("/dump").await;
    let text = reply.text();
    assert_eq!(env_value(&text, "PATH_INFO").as_deref(), Some(""));
    assert_eq!(env_value(&text, "CONTENT_LENGTH").as_deref(), Some("0"));
    let id = reply
        .header("x-request-id")
        .expect("a generated request id");
    assert_eq!(env_value(&text, "WEDGE_REQUEST_ID").as_deref(), Some(id));
    assert_eq!(n.get("/dumpster").await.status, 404, "segment boundaries");
}

/// A guest's raw output decides the status and headers, repeated ones kept in order.
#[tokio::test(flavor = "multi_thread")]
pub async fn verbatim() {
    let n = node().function("raw", guests::VERBATIM).start();
    let status = n
        .post(
            "/raw",
            "Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\n\r\nshort and stout",
        )
        .await;
    assert_eq!(status.status, 418);
    assert_eq!(status.text(), "short and stout");

    let redirect = n.post("/raw", "Location: /elsewhere\n\n").await;
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("location"), Some("/elsewhere"));

    let cookies = n
        .post(
            "/raw",
            "Content-Type: text/plain\nSet-Cookie: a=1\nX-Other: y\nSet-Cookie: b=2\n\nbody",
        )
        .await;
    assert_eq!(cookies.status, 200);
    let values: Vec<_> = cookies.headers.get_all("set-cookie").iter().collect();
    assert_eq!(values, ["a=1", "b=2"]);

    for malformed in [
        "no header block at all",
        "X-Only: no content type\n\nbody",
        "Not a header line\n\n",
        "Status: nope\n\n",
        "",
    ] {
        let reply = n.post("/raw", malformed.to_string()).await;
        assert_eq!(reply.status, 502, "{malformed:?}");
        let id = reply.header("x-request-id").unwrap().to_string();
        assert!(
            reply.text().contains(&id),
            "error bodies carry the request id"
        );
        assert!(
            !reply.text().contains("header"),
            "details stay in the log: {}",
            reply.text()
        );
    }
}

/// The SDK's status, redirect and cookies survive the trip.
#[tokio::test(flavor = "multi_thread")]
pub async fn cookies() {
    let n = node().function("c", guests::COOKIES).start();
    let reply = n.get("/c").await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/next"));
    let values: Vec<_> = reply.headers.get_all("set-cookie").iter().collect();
    assert_eq!(values, ["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(reply.text(), "see other\n");
}

/// A trap is a 500, and the panic message reaches the log, not the client.
#[tokio::test(flavor = "multi_thread")]
pub async fn trap() {
    let n = node().function("t", guests::TRAP).start();
    let reply = n
        .send(
            Method::GET,
            "/t",
            &[("x-request-id", "trap-1")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 500);
    assert!(!reply.text().contains("gave up"));
    assert!(reply.text().contains("trap-1"));
    n.wait_for_log(std::time::Duration::from_secs(5), |l| {
        l.contains("the handler gave up") && l.contains("trap-1")
    })
    .expect("panic message logged with the request id");
}

/// A non-zero exit without a response is a 500.
#[tokio::test(flavor = "multi_thread")]
pub async fn exit_nonzero() {
    let n = node().function("x", guests::EXIT_NONZERO).start();
    assert_eq!(n.get("/x").await.status, 500);
    n.wait_for_log(std::time::Duration::from_secs(5), |l| {
        l.contains("exited with status 3")
    })
    .expect("exit status logged");
}

/// Each stderr line becomes a log event tagged with function, version and request id.
#[tokio::test(flavor = "multi_thread")]
pub async fn chatty() {
    let n = node().function("chatty", guests::CHATTY).start();
    let reply = n
        .send(
            Method::GET,
            "/chatty",
            &[("x-request-id", "chat-7")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    for line in [
        "first line from the guest",
        "second line from the guest",
        "an unterminated last line",
    ] {
        let logged = n
            .wait_for_log(std::time::Duration::from_secs(5), |l| l.contains(line))
            .unwrap_or_else(|| panic!("{line:?} not logged"));
        assert!(logged.contains("function=chatty"), "{logged}");
        assert!(logged.contains("version=v1"), "{logged}");
        assert!(logged.contains("request_id=chat-7"), "{logged}");
    }
}

/// Both examples serve: one written with the SDK, one with plain println!.
#[tokio::test(flavor = "multi_thread")]
pub async fn examples_serve() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("plain", examples::PLAIN)
        .start();
    let hello = n.get("/hello").await;
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "Hello from wedge!\n");
    assert_eq!(n.get("/hello?name=edge").await.text(), "Hello, edge!\n");
    let plain = n.post("/plain/x?a=1&b", "12345").await;
    assert_eq!(plain.status, 200);
    assert_eq!(
        plain.text(),
        "POST \"/x\" with a 5 byte body\nquery item: a=1\nquery item: b\n"
    );
}

/// HTTP/2 over cleartext with prior knowledge.
#[tokio::test(flavor = "multi_thread")]
pub async fn h2c() {
    let n = node()
        .function("hello", examples::HELLO)
        .function("dump", guests::ENV_DUMP)
        .start();
    let reply = n.get_h2c("/hello").await;
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Hello from wedge!\n");
    let dump = n.get_h2c("/dump/x").await.text();
    assert_eq!(
        env_value(&dump, "SERVER_PROTOCOL").as_deref(),
        Some("HTTP/2.0")
    );
    assert_eq!(env_value(&dump, "PATH_INFO").as_deref(), Some("/x"));
}

/// Routes match on segment boundaries and the longest prefix wins.
#[tokio::test(flavor = "multi_thread")]
pub async fn longest_prefix_wins() {
    let n = node()
        .function("outer", guests::ENV_DUMP)
        .function_toml("outer", "route = \"/api\"")
        .function("inner", guests::ENV_DUMP)
        .function_toml("inner", "route = \"/api/v2\"")
        .start();
    let f = |t: String| env_value(&t, "WEDGE_FUNCTION");
    assert_eq!(f(n.get("/api/v2/x").await.text()).as_deref(), Some("inner"));
    assert_eq!(f(n.get("/api/v2").await.text()).as_deref(), Some("inner"));
    assert_eq!(f(n.get("/api/v20").await.text()).as_deref(), Some("outer"));
    assert_eq!(f(n.get("/api").await.text()).as_deref(), Some("outer"));
    assert_eq!(n.get("/other").await.status, 404);
}

/// A route limited to a host serves only that host (port ignored, case-blind);
/// other hosts fall through to the route without one.
#[tokio::test(flavor = "multi_thread")]
pub async fn host_routes() {
    let n = node()
        .function("api", guests::ENV_DUMP)
        .function_toml("api", "route = \"/\"\nhost = \"api.example\"")
        .function("www", guests::ENV_DUMP)
        .function_toml("www", "route = \"/\"")
        .start();
    let f = |t: String| env_value(&t, "WEDGE_FUNCTION");
    for (host, function) in [
        ("api.example:8080", "api"),
        ("API.Example", "api"),
        ("other.example", "www"),
    ] {
        let reply = n
            .send(Method::GET, "/x", &[("host", host)], Bytes::new())
            .await;
        assert_eq!(f(reply.text()).as_deref(), Some(function), "{host}");
    }
}
