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
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    password_hash: String,
    created_at: OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: UserId::from_uuid(r.id),
            email: r.email,
            password_hash: r.password_hash,
            created_at: r.created_at,
        }
    }
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
        "SELECT id, email, password_hash, created_at FROM users WHERE email = $1",
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
) -> Result<SessionId> {
    let id = SessionId::generate();
    let created = now();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO sessions (id, user_id, token_hash, created_at, last_used_at, expires_at) \
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(id.as_uuid())
    .bind(user.as_uuid())
    .bind(token_digest)
    .bind(created)
    .bind(expires_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(id)
}

/// A live session found by its token digest.
#[derive(Debug, Clone, Copy)]
pub struct ActiveSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

#[derive(FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    last_used_at: OffsetDateTime,
    expires_at: OffsetDateTime,
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
        "SELECT id, user_id, last_used_at, expires_at FROM sessions \
         WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_used_at > $3",
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
