//! Agent tokens: generation, bcrypt hashing and verification without a timing oracle.

use std::sync::OnceLock;

use base64::Engine;

use crate::error::{Error, Result};

/// A fresh token: 32 random bytes, URL-safe base64 without padding (43 characters).
pub fn generate_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Hash(format!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The bcrypt hash stored for a token or password.
pub fn hash_secret(secret: &str, cost: u32) -> Result<String> {
    bcrypt::hash(secret, cost).map_err(|e| Error::Hash(e.to_string()))
}

/// Whether `secret` matches `hash`. A malformed stored hash never matches.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    bcrypt::verify(secret, hash).unwrap_or(false)
}

/// Spends the same bcrypt work as a real verification, for names that have no hash, so that a
/// caller cannot tell an unknown host from a wrong token by the time the answer takes.
pub fn burn_verification(cost: u32) {
    static DUMMY: OnceLock<Option<(u32, String)>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_secret("dummy token", cost).ok().map(|h| (cost, h)));
    match dummy {
        Some((dummy_cost, hash)) if *dummy_cost == cost => {
            verify_secret("not the dummy token", hash);
        }
        // The cost changed since the dummy was made (tests); hash at the asked cost instead.
        _ => {
            let _ = hash_secret("dummy token", cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn hash_and_verify() {
        let hash = hash_secret("s3cret", 4).unwrap();
        assert_ne!(hash, "s3cret");
        assert!(verify_secret("s3cret", &hash));
        assert!(!verify_secret("wrong", &hash));
        assert!(!verify_secret("s3cret", "not a bcrypt hash"));
    }
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    UnknownHost,
    InvalidToken,
}

impl AuthFailure {
    /// The `reason` sent in the error reply.
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::UnknownHost => common::events::reason::UNKNOWN_HOST,
            AuthFailure::InvalidToken => common::events::reason::INVALID_TOKEN,
        }
    }
}

/// Checks `token` for host `name`; the id of the host when it matches. The database lock is
/// released before bcrypt runs, and unknown names cost the same bcrypt work as wrong tokens.
pub fn authenticate(
    store: &crate::store::Store,
    cost: u32,
    name: &str,
    token: &str,
) -> Result<std::result::Result<i64, AuthFailure>> {
    match store.token_hash(name)? {
        Some((id, hash)) => {
            if verify_secret(token, &hash) {
                Ok(Ok(id))
            } else {
                Ok(Err(AuthFailure::InvalidToken))
            }
        }
        None => {
            burn_verification(cost);
            Ok(Err(AuthFailure::UnknownHost))
        }
    }
}
