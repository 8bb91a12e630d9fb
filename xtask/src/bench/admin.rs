//! What a node's admin API says about its functions: whether all serve on
//! optimized code, and which version of one serves on which code.

use std::time::{Duration, Instant};

use super::http::{get, get_body};

/// Waits until every function of the node whose admin API is at `admin`
/// serves, on optimized code: the module cache starts empty, and a round
/// measured on Winch's baseline code (or beside a compile) measures that.
pub fn wait_optimized(admin: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let timeout = Duration::from_secs(5);
    while Instant::now() < deadline {
        let ready =
            get(admin, "/readyz?all=1", timeout).is_some_and(|r| r.contains("\npending: 0\n"));
        let optimized = ready
            && get(admin, "/v1/functions", timeout)
                .is_some_and(|body| !body.contains("\"tier\":\"baseline\""));
        if optimized {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "the node at {admin} was not all on optimized code within 600 s"
    ))
}

/// Whether the node whose admin API is `admin` serves `label` of `function`
/// as its stable version.
pub fn serves(admin: &str, function: &str, label: &str) -> bool {
    let Some((200, body)) = get_body(admin, "/v1/functions") else {
        return false;
    };
    // `"name":"<function>"`, then that function's `"stable":"<label>"`.
    body.split("{\"name\":")
        .find(|f| f.starts_with(&format!("\"{function}\"")))
        .is_some_and(|f| f.contains(&format!("\"stable\":\"{label}\"")))
}

/// Whether the admin API at `admin`, answering within `timeout`, shows
/// `label` of `function` on its optimized code.
pub fn optimized(admin: &str, function: &str, label: &str, timeout: Duration) -> bool {
    let Some(body) = get(admin, "/v1/functions", timeout) else {
        return false;
    };
    body.split("{\"name\":")
        .find(|f| f.starts_with(&format!("\"{function}\"")))
        .and_then(|f| f.split(&format!("{{\"label\":\"{label}\"")).nth(1))
        .and_then(|v| v.split('}').next())
        .is_some_and(|v| v.contains("\"tier\":\"optimized\""))
}
