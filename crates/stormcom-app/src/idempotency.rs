//! Idempotency-Key: a client retrying a request (a timeout, a dropped connection) with the
//! same key gets the first answer again instead of a second effect.
//!
//! Records are keyed by (store, principal, key). The first request claims the key
//! (`in_progress`) before it runs; its answer is stored sealed (answers may hold PII or a
//! freshly issued token) with the request's fingerprint. A second request with the same
//! key gets the stored answer, a 409 while the first still runs, or a 422 when its
//! fingerprint differs.

use sha2::{Digest, Sha256};
use stormcom_domain::StoreId;
use stormcom_store::StoreScope;
use stormcom_store::payments::{self as store, KeyOwner};
use time::OffsetDateTime;

use crate::{App, AppError, Result};

/// What to do with a request carrying an Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: run it, then [`App::complete_idempotent`] or [`App::release_idempotent`].
    Proceed,
    /// Done before: send this answer again.
    Replay {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// Used before for a different request.
    Reused,
    /// The first request with this key is still running.
    InProgress,
}

/// Keys are what clients send: 1 to 255 printable ASCII characters.
#[must_use]
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The fingerprint of a request: a second request under the same key must match it.
#[must_use]
pub fn fingerprint(method: &str, path_and_query: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), path_and_query.as_bytes(), content_type.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(body);
    hash.finalize().to_vec()
}

const FIELD: &str = "idempotent_answer";

fn owner<'a>(scope: Option<&StoreScope>, principal: &'a str, key: &'a str) -> KeyOwner<'a> {
    KeyOwner {
        store: KeyOwner::store_of(scope),
        principal,
        key,
    }
}

fn sealing_store(scope: Option<&StoreScope>) -> StoreId {
    scope.map_or_else(|| StoreId::from_uuid(uuid::Uuid::nil()), StoreScope::store_id)
}

impl App {
    pub async fn claim_idempotent(
        &self,
        scope: Option<&StoreScope>,
        principal: &str,
        key: &str,
        fingerprint: &[u8],
    ) -> Result<Claim> {
        let owner = owner(scope, principal, key);
        let ttl = self.config.idempotency_ttl;
        // Twice at most: an expired record found the first time is removed, then claimed.
        for _ in 0..2 {
            let mut tx = self.db().begin().await?;
            if store::claim_key(&mut tx, owner, fingerprint, OffsetDateTime::now_utc() + ttl).await? {
                tx.commit().await?;
                return Ok(Claim::Proceed);
            }
            let Some(record) = store::find_key(&mut tx, owner).await? else {
                continue;
            };
            if record.expires_at <= OffsetDateTime::now_utc() {
                store::delete_key(&mut tx, owner, true).await?;
                tx.commit().await?;
                continue;
            }
            drop(tx);
            if record.request_hash != fingerprint {
                return Ok(Claim::Reused);
            }
            return match (record.status.as_str(), record.response_status, record.response_body) {
                ("done", Some(status), Some(sealed)) => {
                    let plain = self.open_field(sealing_store(scope), &format!("{principal}:{key}"), FIELD, &sealed)?;
                    let split = plain.iter().position(|b| *b == b'\n').unwrap_or(plain.len());
                    let content_type = String::from_utf8_lossy(&plain[..split]).into_owned();
                    let body = plain.get(split + 1..).unwrap_or_default().to_vec();
                    Ok(Claim::Replay {
                        status: u16::try_from(status).unwrap_or(500),
                        content_type,
                        body,
                    })
                }
                _ => Ok(Claim::InProgress),
            };
        }
        Err(AppError::Unavailable)
    }

    /// Stores the answer of a claimed request for replay.
    pub async fn complete_idempotent(
        &self,
        scope: Option<&StoreScope>,
        principal: &str,
        key: &str,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Result<()> {
        let mut plain = Vec::with_capacity(content_type.len() + 1 + body.len());
        plain.extend_from_slice(content_type.replace('\n', " ").as_bytes());
        plain.push(b'\n');
        plain.extend_from_slice(body);
        let sealed = self.seal_field(sealing_store(scope), &format!("{principal}:{key}"), FIELD, &plain)?;
        let mut tx = self.db().begin().await?;
        store::complete_key(&mut tx, owner(scope, principal, key), status, &sealed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets a claimed key whose request failed on the server's side, so a retry runs.
    pub async fn release_idempotent(&self, scope: Option<&StoreScope>, principal: &str, key: &str) -> Result<()> {
        let mut tx = self.db().begin().await?;
        store::delete_key(&mut tx, owner(scope, principal, key), false).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes expired keys (the hourly job in `serve`).
    pub async fn purge_idempotency_keys(&self) -> Result<u64> {
        let mut tx = self.db().begin().await?;
        let n = store::purge_keys(&mut tx, OffsetDateTime::now_utc()).await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_method_path_type_and_body() {
        let base = fingerprint("POST", "/v1/x", "application/json", b"{}");
        assert_eq!(base, fingerprint("POST", "/v1/x", "application/json", b"{}"));
        assert_ne!(base, fingerprint("PUT", "/v1/x", "application/json", b"{}"));
        assert_ne!(base, fingerprint("POST", "/v1/y", "application/json", b"{}"));
        assert_ne!(base, fingerprint("POST", "/v1/x", "text/csv", b"{}"));
        assert_ne!(base, fingerprint("POST", "/v1/x", "application/json", b"{ }"));
        // Lengths are framed: moving bytes between parts changes the fingerprint.
        assert_ne!(
            fingerprint("POST", "/v1/xa", "b", b""),
            fingerprint("POST", "/v1/x", "ab", b"")
        );
    }

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(valid_key("8e03978e-40d5-43e8-bc93-6894a57f9324"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("clé"));
    }
}
