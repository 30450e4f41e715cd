//! Bearer tokens: reading `Authorization: Bearer ...` and checking a shared secret in
//! constant time.

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The token of `Authorization: Bearer <token>`, if the header is there and well-formed.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// A shared secret callers present as a bearer token (the agents' token, the manager pair's
/// token), kept as its SHA-256 digest. A presented token is hashed and the digests compared in
/// constant time: the check takes as long whatever the token, its length or how many of its
/// leading bytes are right, so timing tells a caller nothing.
#[derive(Clone)]
pub struct SecretToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretToken(..)")
    }
}

impl SecretToken {
    /// The secret callers must present.
    pub fn new(token: &str) -> SecretToken {
        SecretToken { digest: Sha256::digest(token.as_bytes()).into() }
    }

    /// Whether `presented` is the secret.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&self.digest))
    }

    /// Whether `headers` carry `Authorization: Bearer <the secret>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|t| self.matches(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn only_the_exact_token_is_admitted() {
        let token = SecretToken::new("agent-token-0123456789");
        assert!(token.admits(&headers("Bearer agent-token-0123456789")));
        for wrong in [
            "Bearer agent-token-012345678",
            "Bearer agent-token-01234567890",
            "Bearer AGENT-TOKEN-0123456789",
            "Bearer ",
            "bearer agent-token-0123456789",
            "Basic agent-token-0123456789",
            "agent-token-0123456789",
        ] {
            assert!(!token.admits(&headers(wrong)), "{wrong:?}");
        }
        assert!(!token.admits(&HeaderMap::new()));
    }
}
