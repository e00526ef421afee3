//! Password login and opaque session tokens.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::net::IpAddr;

use stormcom_domain::api_token::{ApiTokenSecret, looks_like_api_token};
use stormcom_domain::redact::Secret;
use stormcom_domain::secret::BearerToken;
use stormcom_domain::{StoreId, UserId};
use stormcom_store::{access, audit, identity};
use time::OffsetDateTime;

use crate::access::entry;
use crate::authguard::FailureKind;
use crate::{App, AppError, Principal, Result};
use stormcom_domain::throttle::SubjectKind;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A new session: the token is shown to the client once and never stored.
#[derive(Debug)]
pub struct IssuedSession {
    pub token: BearerToken,
    pub user_id: UserId,
    pub expires_at: OffsetDateTime,
}

/// Verified against when the email is unknown, so both failures cost one argon2 run
/// and look the same from outside.
static DUMMY_HASH: LazyLock<Option<String>> = LazyLock::new(|| hash_password_blocking("not-a-real-password").ok());

fn hash_password_blocking(password: &str) -> Result<String> {
    // argon2id with the crate's defaults (m=19 MiB, t=2, p=1): OWASP's recommendation.
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

fn verify_password_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Lowercases and trims an email; refuses anything that is not plausibly an address.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !email.contains(char::is_whitespace)
        });
    if valid {
        Ok(email)
    } else {
        Err(AppError::invalid("email", "invalid_email", "must be an email address"))
    }
}

fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(AppError::invalid(
            "password",
            "weak_password",
            format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} characters long"),
        ));
    }
    Ok(())
}

/// What a client sends to sign in.
#[derive(Debug, Clone, Default)]
pub struct LoginRequest {
    pub email: String,
    pub password: Secret<String>,
    /// Required when the account has TOTP enabled (or a recovery code instead).
    pub totp_code: Option<String>,
    pub recovery_code: Option<String>,
    pub ip: Option<IpAddr>,
}

impl App {
    /// Creates a platform user (operator command). Returns the new id.
    pub async fn create_user(&self, email: &str, password: &str) -> Result<UserId> {
        let email = normalize_email(email)?;
        check_password(password)?;
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password_blocking(&password)).await??;
        let mut tx = self.db().begin().await?;
        let id = identity::create_user(&mut tx, &email, &hash).await?;
        audit::append_platform(&mut tx, entry("operator".into(), None, "user.created", id, &[])).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Exchanges email and password (and the second factor, when enrolled) for a session
    /// token. Unknown email and wrong password give the same error after the same work;
    /// every failure is audited on the platform chain. Throttled first (per account and
    /// per address, see `authguard`): a throttled attempt does no other work.
    pub async fn login(&self, request: LoginRequest) -> Result<IssuedSession> {
        let email = request.email.trim().to_lowercase();
        if request.password.expose().len() > MAX_PASSWORD_BYTES {
            return Err(AppError::InvalidCredentials);
        }
        let mut subjects = vec![self.account_subject(&email)];
        subjects.extend(self.ip_subject(SubjectKind::Ip, request.ip));
        let claim = self.claim_attempt(subjects).await?;
        let user = {
            let mut reader = self.db().reader().await?;
            identity::find_user_by_email(&mut reader, &email).await?
        };
        let password = request.password.expose().clone();
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = tokio::task::spawn_blocking(move || {
            if password.len() > MAX_PASSWORD_BYTES {
                return false;
            }
            match stored {
                Some(hash) => verify_password_blocking(&password, &hash),
                None => {
                    if let Some(dummy) = DUMMY_HASH.as_deref() {
                        verify_password_blocking(&password, dummy);
                    }
                    false
                }
            }
        })
        .await?;
        let user = match user {
            Some(user) if verified => user,
            other => {
                let target = other.map_or_else(|| "unknown-user".to_owned(), |u| u.id.to_string());
                let summary = [("reason", "password".to_owned())];
                let failure = entry("anonymous".into(), request.ip, "login.failed", target, &summary);
                self.attempt_failed(&claim, FailureKind::Password, failure).await;
                return Err(AppError::InvalidCredentials);
            }
        };
        let mut tx = self.db().begin().await?;
        let second_factor = user.totp_enabled_at.is_some();
        if second_factor
            && let Err(e) = self
                .check_second_factor(
                    &mut tx,
                    &user,
                    request.totp_code.as_deref(),
                    request.recovery_code.as_deref(),
                )
                .await
        {
            drop(tx);
            let failed = |reason: &str| {
                entry(
                    user.id.to_string(),
                    request.ip,
                    "login.failed",
                    user.id,
                    &[("reason", reason.into())],
                )
            };
            match e {
                AppError::InvalidMfaCode => {
                    self.attempt_failed(&claim, FailureKind::Totp, failed("mfa_wrong"))
                        .await;
                }
                // The first half of a two-step login: neither success nor failure.
                AppError::MfaRequired => {
                    self.attempt_withdrawn(&claim).await;
                    self.audit_platform(failed("mfa_missing")).await;
                }
                _ => self.attempt_withdrawn(&claim).await,
            }
            return Err(e);
        }
        let token = BearerToken::generate_session().map_err(|e| AppError::Internal(e.to_string()))?;
        let expires_at = OffsetDateTime::now_utc() + self.config.session_ttl;
        let session = identity::create_session(&mut tx, user.id, &token.digest(), expires_at, second_factor).await?;
        self.attempt_succeeded(&mut tx, &claim).await?;
        let summary = [("session", session.to_string()), ("mfa", second_factor.to_string())];
        audit::append_platform(
            &mut tx,
            entry(user.id.to_string(), request.ip, "session.created", user.id, &summary),
        )
        .await?;
        tx.commit().await?;
        Ok(IssuedSession {
            token,
            user_id: user.id,
            expires_at,
        })
    }

    /// Revokes the presented session. Idempotent.
    pub async fn logout(&self, token: &BearerToken, ip: Option<IpAddr>) -> Result<()> {
        let mut tx = self.db().begin().await?;
        if identity::revoke_session(&mut tx, &token.digest()).await? {
            audit::append_platform(&mut tx, entry("session".into(), ip, "session.revoked", "self", &[])).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Resolves a bearer token (a session, or a store-bound API token) to its principal.
    pub async fn authenticate(&self, token: &BearerToken) -> Result<Principal> {
        if looks_like_api_token(token.expose()) {
            return self.authenticate_api_token(token).await;
        }
        let now = OffsetDateTime::now_utc();
        let idle_since = now - self.config.session_idle_timeout;
        let digest = token.digest();
        let session = {
            let mut reader = self.db().reader().await?;
            identity::find_active_session(&mut reader, &digest, now, idle_since).await?
        }
        .ok_or(AppError::Unauthenticated)?;
        // Record use at most once a minute: idle tracking without a write per request.
        if now - session.last_used_at > time::Duration::minutes(1) {
            let mut tx = self.db().begin().await?;
            identity::touch_session(&mut tx, session.id, now).await?;
            tx.commit().await?;
        }
        Ok(Principal::User {
            user_id: session.user_id,
            session_id: session.id,
            stepped_up_at: session.stepped_up_at,
            is_superuser: session.is_superuser,
        })
    }

    async fn authenticate_api_token(&self, token: &BearerToken) -> Result<Principal> {
        let parsed = ApiTokenSecret::parse(token.expose()).map_err(|_| AppError::Unauthenticated)?;
        let store = StoreId::from_uuid(parsed.store);
        let now = OffsetDateTime::now_utc();
        let (scope, token) = {
            let mut reader = self.db().reader().await?;
            access::find_live_token(&mut reader, store, &parsed.digest, now).await?
        }
        .ok_or(AppError::Unauthenticated)?;
        if token
            .last_used_at
            .is_none_or(|at| now - at > time::Duration::minutes(1))
        {
            let mut tx = self.db().begin().await?;
            access::touch_token(&mut tx, &scope, token.id, now).await?;
            tx.commit().await?;
        }
        Ok(Principal::ApiToken {
            token_id: token.id,
            store_id: store,
            scopes: token.scopes,
            created_by: token.created_by,
        })
    }

    /// Appends to the platform chain in a transaction of its own (for events whose
    /// action wrote nothing else, like a failed login). Failure is logged, not raised:
    /// the caller's answer must not depend on it.
    pub(crate) async fn audit_platform(&self, entry: stormcom_store::audit::NewEntry) {
        let result = async {
            let mut tx = self.db().begin().await?;
            audit::append_platform(&mut tx, entry).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not write a platform audit entry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            normalize_email("  Ann@Example.COM ").ok().as_deref(),
            Some("ann@example.com")
        );
        for bad in ["", "ann", "@x", "ann@", "a@b@c", "a b@c.d"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let hash = hash_password_blocking("correct horse").unwrap_or_default();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password_blocking("correct horse", &hash));
        assert!(!verify_password_blocking("wrong horse", &hash));
    }
}
