//! The text format of store-scoped API tokens. A fixed prefix plus a trailing checksum lets
//! secret scanners recognise a leaked token without false positives, and lets us reject typos
//! before any database lookup; the embedded store id scopes the token without a lookup.
//!
//! Layout: `sc_` ‖ 32 hex (store UUID) ‖ 64 hex (256 random bits) ‖ 8 hex checksum, all
//! lowercase. The checksum is the first 4 bytes of SHA-256 over everything before it.

use std::fmt;

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const API_TOKEN_PREFIX: &str = "sc_";
const STORE_HEX_LEN: usize = 32;
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 4;
const BODY_LEN: usize = API_TOKEN_PREFIX.len() + STORE_HEX_LEN + 2 * RANDOM_LEN;
/// Total length of a token: 3 + 32 + 64 + 8 = 107.
pub const API_TOKEN_LEN: usize = BODY_LEN + 2 * CHECKSUM_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiTokenError {
    #[error("the system random source failed: {0}")]
    Random(getrandom::Error),
    #[error("an API token starts with \"sc_\"")]
    Prefix,
    #[error("an API token is 107 characters long, got {0}")]
    Length(usize),
    #[error("an API token is lowercase hex after its prefix")]
    NotHex,
    #[error("the API token checksum does not match (mistyped or truncated token)")]
    Checksum,
}

/// A token as generated: shown to the client once and never stored (only its digest is).
/// Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiTokenSecret(String);

/// What a well-formed token tells us before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedApiToken {
    /// The store the token belongs to.
    pub store: Uuid,
    /// SHA-256 of the full token text, the only form ever stored.
    pub digest: Vec<u8>,
}

impl ApiTokenSecret {
    /// A fresh token for `store`, with 256 bits of OS randomness.
    pub fn generate(store: Uuid) -> Result<Self, ApiTokenError> {
        let mut random = [0u8; RANDOM_LEN];
        getrandom::fill(&mut random).map_err(ApiTokenError::Random)?;
        let body = format!(
            "{API_TOKEN_PREFIX}{}{}",
            hex::encode(store.as_bytes()),
            hex::encode(random)
        );
        let checksum = hex::encode(checksum(&body));
        Ok(Self(body + &checksum))
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token text, the form to store.
    #[must_use]
    pub fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }

    /// Validates a presented token (prefix, length, lowercase hex, checksum) and extracts
    /// its store and digest. The text must be exact: no surrounding whitespace.
    pub fn parse(text: &str) -> Result<ParsedApiToken, ApiTokenError> {
        let hex_part = text.strip_prefix(API_TOKEN_PREFIX).ok_or(ApiTokenError::Prefix)?;
        if text.len() != API_TOKEN_LEN {
            return Err(ApiTokenError::Length(text.len()));
        }
        // Uppercase is refused so each token has exactly one spelling (and one digest).
        if !hex_part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ApiTokenError::NotHex);
        }
        let (body, checksum_hex) = text
            .split_at_checked(BODY_LEN)
            .ok_or(ApiTokenError::Length(text.len()))?;
        let mut presented = [0u8; CHECKSUM_LEN];
        hex::decode_to_slice(checksum_hex, &mut presented).map_err(|_| ApiTokenError::NotHex)?;
        // The checksum is public (anyone can recompute it), so a plain comparison is fine.
        if presented != checksum(body) {
            return Err(ApiTokenError::Checksum);
        }
        let store_hex = hex_part.get(..STORE_HEX_LEN).ok_or(ApiTokenError::Length(text.len()))?;
        let mut store = [0u8; 16];
        hex::decode_to_slice(store_hex, &mut store).map_err(|_| ApiTokenError::NotHex)?;
        Ok(ParsedApiToken {
            store: Uuid::from_bytes(store),
            digest: Sha256::digest(text.as_bytes()).to_vec(),
        })
    }
}

impl fmt::Debug for ApiTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiTokenSecret(<redacted>)")
    }
}

/// Cheap routing test (prefix only): does this bearer value claim to be an API token?
#[must_use]
pub fn looks_like_api_token(text: &str) -> bool {
    text.starts_with(API_TOKEN_PREFIX)
}

fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let hash = Sha256::digest(body.as_bytes());
    let mut out = [0u8; CHECKSUM_LEN];
    for (dst, src) in out.iter_mut().zip(hash) {
        *dst = src;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Uuid {
        Uuid::from_u128(0x0192_3456_789a_7bcd_8ef0_1234_5678_9abc)
    }

    #[test]
    fn generated_tokens_parse_back_to_their_store() {
        let token = ApiTokenSecret::generate(store()).unwrap();
        let text = token.expose();
        assert_eq!(API_TOKEN_LEN, 107);
        assert_eq!(text.len(), API_TOKEN_LEN);
        assert!(text.starts_with("sc_01923456789a7bcd8ef0123456789abc"));
        assert!(looks_like_api_token(text));
        let parsed = ApiTokenSecret::parse(text).unwrap();
        assert_eq!(parsed.store, store());
        assert_eq!(parsed.digest, Sha256::digest(text.as_bytes()).to_vec());
        assert_eq!(parsed.digest, token.digest());
    }

    #[test]
    fn checksum_covers_the_prefix_and_everything_after_it() {
        let token = ApiTokenSecret::generate(store()).unwrap();
        let text = token.expose();
        let (body, sum) = text.split_at(BODY_LEN);
        assert_eq!(sum, hex::encode(&Sha256::digest(body.as_bytes())[..4]));
    }

    #[test]
    fn any_single_changed_character_fails_the_checksum() {
        let token = ApiTokenSecret::generate(store()).unwrap();
        let text = token.expose();
        for index in API_TOKEN_PREFIX.len()..text.len() {
            let mut bytes = text.as_bytes().to_vec();
            bytes[index] = if bytes[index] == b'0' { b'1' } else { b'0' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(
                ApiTokenSecret::parse(&changed),
                Err(ApiTokenError::Checksum),
                "index {index}"
            );
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let token = ApiTokenSecret::generate(store()).unwrap();
        let text = token.expose();
        let body = &text[API_TOKEN_PREFIX.len()..];
        assert_eq!(ApiTokenSecret::parse(""), Err(ApiTokenError::Prefix));
        assert_eq!(ApiTokenSecret::parse(&format!("sk_{body}")), Err(ApiTokenError::Prefix));
        assert_eq!(ApiTokenSecret::parse(&format!("SC_{body}")), Err(ApiTokenError::Prefix));
        assert_eq!(ApiTokenSecret::parse(&format!(" {text}")), Err(ApiTokenError::Prefix));
        assert_eq!(ApiTokenSecret::parse(&text[..106]), Err(ApiTokenError::Length(106)));
        assert_eq!(
            ApiTokenSecret::parse(&format!("{text}0")),
            Err(ApiTokenError::Length(108))
        );
        assert_eq!(
            ApiTokenSecret::parse(&format!("{text}\n")),
            Err(ApiTokenError::Length(108))
        );
        let upper = format!("sc_{}", body.to_ascii_uppercase());
        if upper != text {
            assert_eq!(ApiTokenSecret::parse(&upper), Err(ApiTokenError::NotHex));
        }
        assert_eq!(
            ApiTokenSecret::parse(&format!("{}g", &text[..106])),
            Err(ApiTokenError::NotHex)
        );
        // Right byte length but multi-byte characters: refused, not a panic on slicing.
        let non_ascii = format!("{}é", &text[..105]);
        assert_eq!(non_ascii.len(), API_TOKEN_LEN);
        assert_eq!(ApiTokenSecret::parse(&non_ascii), Err(ApiTokenError::NotHex));
    }

    #[test]
    fn tokens_and_digests_are_unique_and_never_debug_printed() {
        let a = ApiTokenSecret::generate(store()).unwrap();
        let b = ApiTokenSecret::generate(store()).unwrap();
        assert_ne!(a, b);
        assert_ne!(
            ApiTokenSecret::parse(a.expose()).unwrap().digest,
            ApiTokenSecret::parse(b.expose()).unwrap().digest
        );
        assert_eq!(format!("{a:?}"), "ApiTokenSecret(<redacted>)");
    }

    #[test]
    fn looks_like_is_a_prefix_check_distinct_from_session_tokens() {
        assert!(looks_like_api_token("sc_anything"));
        assert!(!looks_like_api_token("scs_0123"));
        assert!(!looks_like_api_token("Bearer sc_0123"));
        assert!(!looks_like_api_token(""));
    }
}
