//! Bearer secrets (session tokens): 256 random bits, shown to the client once, stored
//! only as a SHA-256 digest so a database leak does not leak live credentials.

use std::fmt;

use sha2::{Digest, Sha256};

pub const SESSION_TOKEN_PREFIX: &str = "scs_";

/// A bearer token as presented by a client. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// A fresh session token: prefix + 64 hex digits of OS randomness.
    pub fn generate_session() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(format!("{SESSION_TOKEN_PREFIX}{}", hex::encode(bytes))))
    }

    #[must_use]
    pub const fn from_presented(value: String) -> Self {
        Self(value)
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The only form that is ever stored.
    #[must_use]
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_never_debug_printed() {
        let a = BearerToken::generate_session().unwrap_or_else(|_| unreachable!());
        let b = BearerToken::generate_session().unwrap_or_else(|_| unreachable!());
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), SESSION_TOKEN_PREFIX.len() + 64);
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
        assert_eq!(a.digest().len(), 32);
    }
}
