//! Platform users and their login sessions. Only password hashes (argon2id, computed by
//! the app layer) and SHA-256 digests of session tokens are stored.

use sqlx::FromRow;
use stormcom_domain::{SessionId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, Tx, dispatch, now};

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub is_superuser: bool,
    /// Sealed TOTP secret (pending until `totp_enabled_at` is set).
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled_at: Option<OffsetDateTime>,
    pub totp_last_step: i64,
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    password_hash: String,
    created_at: OffsetDateTime,
    is_superuser: bool,
    totp_secret: Option<Vec<u8>>,
    totp_enabled_at: Option<OffsetDateTime>,
    totp_last_step: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: UserId::from_uuid(r.id),
            email: r.email,
            password_hash: r.password_hash,
            created_at: r.created_at,
            is_superuser: r.is_superuser,
            totp_secret: r.totp_secret,
            totp_enabled_at: r.totp_enabled_at,
            totp_last_step: r.totp_last_step,
        }
    }
}

macro_rules! user_columns {
    () => {
        "id, email, password_hash, created_at, is_superuser, totp_secret, totp_enabled_at, totp_last_step"
    };
}

/// `email` must already be normalised (trimmed, lowercase) by the caller.
pub async fn create_user(tx: &mut Tx, email: &str, password_hash: &str) -> Result<UserId> {
    let id = UserId::generate();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.as_uuid())
    .bind(email)
    .bind(password_hash)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(id)
}

pub async fn find_user_by_email(h: &mut impl Handle, email: &str) -> Result<Option<User>> {
    let row: Option<UserRow> = dispatch!(h, c => sqlx::query_as(
        concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"),
    )
    .bind(email)
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(User::from))
}

pub async fn create_session(
    tx: &mut Tx,
    user: UserId,
    token_digest: &[u8],
    expires_at: OffsetDateTime,
    second_factor: bool,
) -> Result<SessionId> {
    let id = SessionId::generate();
    let created = now();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at, expires_at, stepped_up_at) \
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
    )
    .bind(id.as_uuid())
    .bind(user.as_uuid())
    .bind(token_digest)
    .bind(created)
    .bind(expires_at)
    .bind(second_factor.then_some(created))
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(id)
}

pub async fn find_user(h: &mut impl Handle, id: UserId) -> Result<Option<User>> {
    let row: Option<UserRow> = dispatch!(h, c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
        .bind(id.as_uuid())
        .fetch_optional(&mut *c)
        .await?);
    Ok(row.map(User::from))
}

/// Stores a new (pending) TOTP secret, replacing any pending one. Refused (false) when
/// TOTP is already enabled: an attacker with a stolen session must not re-enrol.
pub async fn set_pending_totp(tx: &mut Tx, user: UserId, sealed: &[u8]) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE users SET totp_secret = $2, totp_last_step = 0 WHERE id = $1 AND totp_enabled_at IS NULL",
    )
    .bind(user.as_uuid())
    .bind(sealed)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

pub async fn enable_totp(tx: &mut Tx, user: UserId, recovery_digests: &[Vec<u8>]) -> Result<bool> {
    let at = now();
    let enabled = dispatch!(tx, c => {
        let n = sqlx::query("UPDATE users SET totp_enabled_at = $2 WHERE id = $1 AND totp_enabled_at IS NULL AND totp_secret IS NOT NULL")
            .bind(user.as_uuid())
            .bind(at)
            .execute(&mut *c)
            .await?
            .rows_affected();
        if n > 0 {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user.as_uuid()).execute(&mut *c).await?;
            for digest in recovery_digests {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user.as_uuid())
                    .bind(digest.as_slice())
                    .execute(&mut *c)
                    .await?;
            }
        }
        n > 0
    });
    Ok(enabled)
}

/// Records `step` as used if it is newer than the last used one: one atomic statement,
/// so two requests racing with the same code cannot both pass.
pub async fn consume_totp_step(tx: &mut Tx, user: UserId, step: i64) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query("UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2")
        .bind(user.as_uuid())
        .bind(step)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(n > 0)
}

/// Uses a recovery code once.
pub async fn consume_recovery_code(tx: &mut Tx, user: UserId, digest: &[u8]) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user.as_uuid())
    .bind(digest)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

pub async fn set_superuser(tx: &mut Tx, user: UserId) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query("UPDATE users SET is_superuser = TRUE WHERE id = $1 AND NOT is_superuser")
        .bind(user.as_uuid())
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(n > 0)
}

pub async fn mark_stepped_up(tx: &mut Tx, session: SessionId, at: OffsetDateTime) -> Result<()> {
    dispatch!(tx, c => sqlx::query("UPDATE sessions SET stepped_up_at = $2 WHERE id = $1")
        .bind(session.as_uuid())
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

/// A live session found by its token digest.
#[derive(Debug, Clone, Copy)]
pub struct ActiveSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// When the session last proved a second factor.
    pub stepped_up_at: Option<OffsetDateTime>,
    pub is_superuser: bool,
}

#[derive(FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    last_used_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    stepped_up_at: Option<OffsetDateTime>,
    is_superuser: bool,
}

/// Finds an unrevoked session whose absolute expiry and idle deadline are both after
/// `now`. Expired sessions are indistinguishable from unknown tokens.
pub async fn find_active_session(
    h: &mut impl Handle,
    token_digest: &[u8],
    now: OffsetDateTime,
    idle_since: OffsetDateTime,
) -> Result<Option<ActiveSession>> {
    let row: Option<SessionRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT s.id, s.user_id, s.last_used_at, s.expires_at, s.stepped_up_at, u.is_superuser \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_used_at > $3",
    )
    .bind(token_digest)
    .bind(now)
    .bind(idle_since)
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(|r| ActiveSession {
        id: SessionId::from_uuid(r.id),
        user_id: UserId::from_uuid(r.user_id),
        last_used_at: r.last_used_at,
        expires_at: r.expires_at,
        stepped_up_at: r.stepped_up_at,
        is_superuser: r.is_superuser,
    }))
}

pub async fn touch_session(tx: &mut Tx, id: SessionId, at: OffsetDateTime) -> Result<()> {
    dispatch!(tx, c => sqlx::query("UPDATE sessions SET last_used_at = $2 WHERE id = $1 AND last_used_at < $2")
        .bind(id.as_uuid())
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

/// Revokes the session holding this token; `false` when there was none to revoke.
pub async fn revoke_session(tx: &mut Tx, token_digest: &[u8]) -> Result<bool> {
    let done = dispatch!(tx, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(token_digest)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(done > 0)
}
