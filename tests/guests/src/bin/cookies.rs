//! Answers with a status, a redirect target and two cookies through the SDK.

use wedge_sdk::Response;

fn main() {
    wedge_sdk::serve(|_req| {
        Response::new(303)
            .with_header("Location", "/next")
            .with_header("Set-Cookie", "a=1; Path=/")
            .with_header("Set-Cookie", "b=2; Path=/")
            .with_header("Content-Type", "text/plain")
            .with_body("see other\n")
    });
}
