//! Bearer-token authentication for the admin API, compared in constant time.

use std::path::Path;

use http::HeaderMap;
use sha2::{Digest, Sha256};

/// The admin token, kept as its hash so a comparison takes the same time
/// whatever the candidate, its length included.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token in `path`, surrounding white space trimmed.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read admin.token_file {}: {e}", path.display()))?;
        Self::new(text.trim())
            .ok_or_else(|| anyhow::anyhow!("admin.token_file {} is empty", path.display()))
    }

    /// A token from its text; `None` when empty.
    pub fn new(secret: &str) -> Option<Self> {
        (!secret.is_empty()).then(|| Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`. The
    /// scheme is case-insensitive, as every HTTP authentication scheme is
    /// (RFC 9110 §11.1).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let candidate = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token);
        let digest: [u8; 32] = Sha256::digest(candidate.trim().as_bytes()).into();
        // Every byte is compared; no early exit.
        digest
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_is_allowed() {
        let token = Token::new("s3cret").unwrap();
        let mut h = HeaderMap::new();
        assert!(!token.allows(&h));
        h.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(!token.allows(&h));
        h.insert("authorization", "Basic s3cret".parse().unwrap());
        assert!(!token.allows(&h));
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(token.allows(&h));
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            h.insert("authorization", format!("{scheme} s3cret").parse().unwrap());
            assert!(token.allows(&h), "{scheme}");
        }
        h.insert("authorization", "Bearers3cret".parse().unwrap());
        assert!(!token.allows(&h));
        assert!(Token::new("").is_none());
    }
}
