//! Request ids: taken from the client's `x-request-id` when it is sane, otherwise made here.

use http::HeaderMap;

/// Longest client-supplied id that is kept.
const MAX_LEN: usize = 128;

/// The request's id: the client's `x-request-id` if it is 1 to 128 visible ASCII
/// characters, else 16 fresh hex digits.
pub fn request_id(headers: &HeaderMap) -> String {
    if let Some(v) = headers.get("x-request-id") {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= MAX_LEN && b.iter().all(|c| c.is_ascii_graphic()) {
            // Checked above: visible ASCII only.
            return String::from_utf8_lossy(b).into_owned();
        }
    }
    format!("{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_when_sane() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123");
        h.insert("x-request-id", "has space".parse().unwrap());
        assert_eq!(request_id(&h).len(), 16);
        assert_eq!(request_id(&HeaderMap::new()).len(), 16);
    }
}
