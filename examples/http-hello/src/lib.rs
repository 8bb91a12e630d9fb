//! A wasi:http handler: the component model's way to write a handler, which
//! `wasmtime serve`, Spin and wedge all run. It greets `?name=`, as the WAGI
//! `hello` example does.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

wasi::http::proxy::export!(Hello);

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let name = name_of(&path).unwrap_or("world");
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("the stream is taken once");
        out.blocking_write_and_flush(
            format!("hello, {name}, from a wasi:http component\n").as_bytes(),
        )
        .expect("the host takes the body");
        drop(out);
        OutgoingBody::finish(body, None).expect("the body finishes");
    }
}

/// The `name` query parameter, when it is plain (letters, digits, `-`, `_`).
fn name_of(path: &str) -> Option<&str> {
    let (_, query) = path.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("name="))
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::name_of;

    #[test]
    fn plain_names_are_taken_and_others_are_not() {
        assert_eq!(name_of("/http-hello?name=edge"), Some("edge"));
        assert_eq!(name_of("/http-hello?x=1&name=a-b_c"), Some("a-b_c"));
        assert_eq!(name_of("/http-hello?name=%3Cb%3E"), None);
        assert_eq!(name_of("/http-hello"), None);
    }
}
