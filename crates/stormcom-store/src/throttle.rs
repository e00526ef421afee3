//! Brute-force counters shared by every server process: consecutive failures per
//! subject (account or client address, both as keyed hashes), failed authentications per
//! 15-minute window, and platform-level alerts. Times are passed in by the caller (whose
//! clock tests can move), never read here.

use stormcom_domain::AlertId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, Tx, dispatch};

/// One subject's counters as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureState {
    /// Consecutive attempts that did not end in a success.
    pub failures: i64,
    pub last_attempt_at: OffsetDateTime,
    /// No attempt of the subject is evaluated before this.
    pub blocked_until: Option<OffsetDateTime>,
}

/// Locks the subject's row (creating an empty one) for the rest of `tx` and returns it.
/// Callers locking several subjects do so in one fixed order, so two never deadlock.
pub async fn lock_subject(tx: &mut Tx, kind: &str, key: &[u8], at: OffsetDateTime) -> Result<FailureState> {
    // The no-op update takes the row lock on PostgreSQL even when the row exists;
    // SQLite transactions already hold the one write lock.
    let row: (i64, OffsetDateTime, Option<OffsetDateTime>) = dispatch!(tx, c => sqlx::query_as(
        "INSERT INTO auth_failures (subject_kind, subject_key, failures, last_attempt_at) VALUES ($1, $2, 0, $3) \
         ON CONFLICT (subject_kind, subject_key) DO UPDATE SET subject_kind = excluded.subject_kind \
         RETURNING failures, last_attempt_at, blocked_until",
    )
    .bind(kind)
    .bind(key)
    .bind(at)
    .fetch_one(&mut *c)
    .await?);
    Ok(FailureState {
        failures: row.0,
        last_attempt_at: row.1,
        blocked_until: row.2,
    })
}

/// Writes the counters of a subject locked with [`lock_subject`].
pub async fn put_subject(tx: &mut Tx, kind: &str, key: &[u8], state: &FailureState) -> Result<()> {
    dispatch!(tx, c => sqlx::query(
        "UPDATE auth_failures SET failures = $3, last_attempt_at = $4, blocked_until = $5 \
         WHERE subject_kind = $1 AND subject_key = $2",
    )
    .bind(kind)
    .bind(key)
    .bind(state.failures)
    .bind(state.last_attempt_at)
    .bind(state.blocked_until)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

/// Takes back one attempt that was counted in advance and turned out not to be a
/// failure; lifts the block that attempt set, unless a later attempt replaced it. A row
/// left with nothing in it is deleted, so successful sign-ins leave no rows behind.
pub async fn undo_attempt(tx: &mut Tx, kind: &str, key: &[u8], its_block: Option<OffsetDateTime>) -> Result<()> {
    dispatch!(tx, c => {
        sqlx::query(
            "UPDATE auth_failures SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END, \
             blocked_until = CASE WHEN blocked_until = $3 THEN NULL ELSE blocked_until END \
             WHERE subject_kind = $1 AND subject_key = $2",
        )
        .bind(kind)
        .bind(key)
        .bind(its_block)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "DELETE FROM auth_failures \
             WHERE subject_kind = $1 AND subject_key = $2 AND failures = 0 AND blocked_until IS NULL",
        )
        .bind(kind)
        .bind(key)
        .execute(&mut *c)
        .await?
        .rows_affected()
    });
    Ok(())
}

/// Forgets a subject's failures (an account after a success).
pub async fn clear_subject(tx: &mut Tx, kind: &str, key: &[u8]) -> Result<()> {
    dispatch!(tx, c => sqlx::query("DELETE FROM auth_failures WHERE subject_kind = $1 AND subject_key = $2")
        .bind(kind)
        .bind(key)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

pub async fn find_subject(h: &mut impl Handle, kind: &str, key: &[u8]) -> Result<Option<FailureState>> {
    let row: Option<(i64, OffsetDateTime, Option<OffsetDateTime>)> = dispatch!(h, c => sqlx::query_as(
        "SELECT failures, last_attempt_at, blocked_until FROM auth_failures WHERE subject_kind = $1 AND subject_key = $2",
    )
    .bind(kind)
    .bind(key)
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(|(failures, last_attempt_at, blocked_until)| FailureState {
        failures,
        last_attempt_at,
        blocked_until,
    }))
}

/// Counts one failed authentication of `kind` in the window starting at `window_start`
/// (unix seconds); returns the window's total over all kinds.
pub async fn count_failure(tx: &mut Tx, window_start: i64, kind: &str) -> Result<i64> {
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO auth_failure_windows (window_start, kind, failures) VALUES ($1, $2, 1) \
         ON CONFLICT (window_start, kind) DO UPDATE SET failures = auth_failure_windows.failures + 1",
    )
    .bind(window_start)
    .bind(kind)
    .execute(&mut *c)
    .await?
    .rows_affected());
    failures_between(tx, window_start, window_start + 1).await
}

/// Failed authentications in windows starting in `[from, to)`.
pub async fn failures_between(h: &mut impl Handle, from: i64, to: i64) -> Result<i64> {
    Ok(dispatch!(h, c => sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) FROM auth_failure_windows \
         WHERE window_start >= $1 AND window_start < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&mut *c)
    .await?))
}

/// Forgets subjects of `kind` whose last attempt is before `quiet_before` and that are
/// not blocked at `now`. Returns how many.
pub async fn purge_subjects(tx: &mut Tx, kind: &str, quiet_before: OffsetDateTime, now: OffsetDateTime) -> Result<u64> {
    Ok(dispatch!(tx, c => sqlx::query(
        "DELETE FROM auth_failures WHERE subject_kind = $1 AND last_attempt_at < $2 \
         AND (blocked_until IS NULL OR blocked_until <= $3)",
    )
    .bind(kind)
    .bind(quiet_before)
    .bind(now)
    .execute(&mut *c)
    .await?
    .rows_affected()))
}

/// Forgets failure windows starting before `before` (unix seconds). Returns how many.
pub async fn purge_windows(tx: &mut Tx, before: i64) -> Result<u64> {
    Ok(
        dispatch!(tx, c => sqlx::query("DELETE FROM auth_failure_windows WHERE window_start < $1")
        .bind(before)
        .execute(&mut *c)
        .await?
        .rows_affected()),
    )
}

/// An alert about the platform as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformAlert {
    pub id: AlertId,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    pub created_at: OffsetDateTime,
    pub resolved_at: Option<OffsetDateTime>,
}

/// Raises an alert unless one of this kind and subject exists; `None` then.
pub async fn raise_platform_alert(
    tx: &mut Tx,
    kind: &str,
    subject: &str,
    detail: &str,
    at: OffsetDateTime,
) -> Result<Option<AlertId>> {
    let id = AlertId::generate();
    let inserted = dispatch!(tx, c => sqlx::query(
        "INSERT INTO platform_alerts (id, kind, subject, detail, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (kind, subject) DO NOTHING",
    )
    .bind(id.as_uuid())
    .bind(kind)
    .bind(subject)
    .bind(detail)
    .bind(at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok((inserted == 1).then_some(id))
}

pub async fn platform_alerts(h: &mut impl Handle) -> Result<Vec<PlatformAlert>> {
    let rows: Vec<(Uuid, String, String, String, OffsetDateTime, Option<OffsetDateTime>)> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, kind, subject, detail, created_at, resolved_at FROM platform_alerts ORDER BY created_at, id",
    )
    .fetch_all(&mut *c)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(id, kind, subject, detail, created_at, resolved_at)| PlatformAlert {
            id: AlertId::from_uuid(id),
            kind,
            subject,
            detail,
            created_at,
            resolved_at,
        })
        .collect())
}
