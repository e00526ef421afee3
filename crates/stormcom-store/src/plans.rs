//! Organization plans and the counts their quotas cap.
//!
//! A quota check is "lock, count, insert" in one transaction. On PostgreSQL under READ
//! COMMITTED a bare `SELECT count(*)` lets two concurrent creates both see room for one
//! more, so the checks first lock the row that owns the counted set (the organization
//! for stores, the store for products and tokens) with `FOR NO KEY UPDATE`: quota
//! checkers queue behind each other, while ordinary inserts that only reference the row
//! through a foreign key (`FOR KEY SHARE`) are not blocked. On SQLite the transaction
//! already holds the single write lock (`BEGIN IMMEDIATE`), which serialises the same way.

use stormcom_domain::{OrgId, Plan, StoreId, UserId};
use time::OffsetDateTime;

use crate::{Conn, Handle, Result, StoreError, StoreScope, Tx, dispatch};

fn parse_plan(raw: &str) -> Result<Plan> {
    raw.parse()
        .map_err(|()| StoreError::Corrupt(format!("organization plan '{raw}'")))
}

/// Locks a user row so that concurrent "find or create the organization this user owns"
/// steps queue instead of each creating one (which would also split the store quota).
pub async fn lock_org_owner(tx: &mut Tx, owner: UserId) -> Result<()> {
    if let Conn::Postgres(c) = tx.conn() {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
            .bind(owner.as_uuid())
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// Locks the organization against concurrent quota checks and reads its plan.
pub async fn lock_org_plan(tx: &mut Tx, org: OrgId) -> Result<Plan> {
    let raw: String = match tx.conn() {
        Conn::Sqlite(c) => {
            sqlx::query_scalar("SELECT plan FROM organizations WHERE id = $1")
                .bind(org.as_uuid())
                .fetch_one(&mut *c)
                .await?
        }
        Conn::Postgres(c) => {
            sqlx::query_scalar("SELECT plan FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
                .bind(org.as_uuid())
                .fetch_one(&mut *c)
                .await?
        }
    };
    parse_plan(&raw)
}

/// Locks the store against concurrent quota checks and reads its organization's plan.
pub async fn lock_store_plan(tx: &mut Tx, scope: &StoreScope) -> Result<Plan> {
    macro_rules! select {
        () => {
            "SELECT o.plan FROM stores s JOIN organizations o ON o.id = s.org_id WHERE s.id = $1"
        };
    }
    let raw: String = match tx.conn() {
        Conn::Sqlite(c) => {
            sqlx::query_scalar(select!())
                .bind(scope.uuid())
                .fetch_one(&mut *c)
                .await?
        }
        Conn::Postgres(c) => {
            sqlx::query_scalar(concat!(select!(), " FOR NO KEY UPDATE OF s"))
                .bind(scope.uuid())
                .fetch_one(&mut *c)
                .await?
        }
    };
    parse_plan(&raw)
}

pub async fn count_stores(tx: &mut Tx, org: OrgId) -> Result<u64> {
    let n: i64 = dispatch!(tx, c => sqlx::query_scalar("SELECT count(*) FROM stores WHERE org_id = $1")
        .bind(org.as_uuid())
        .fetch_one(&mut *c)
        .await?);
    Ok(u64::try_from(n).unwrap_or(0))
}

pub async fn count_products(tx: &mut Tx, scope: &StoreScope) -> Result<u64> {
    let n: i64 = dispatch!(tx, c => sqlx::query_scalar("SELECT count(*) FROM products WHERE store_id = $1")
        .bind(scope.uuid())
        .fetch_one(&mut *c)
        .await?);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Tokens that still work: not revoked, not expired at `at`.
pub async fn count_live_tokens(tx: &mut Tx, scope: &StoreScope, at: OffsetDateTime) -> Result<u64> {
    let n: i64 = dispatch!(tx, c => sqlx::query_scalar(
        "SELECT count(*) FROM api_tokens WHERE store_id = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(scope.uuid())
    .bind(at)
    .fetch_one(&mut *c)
    .await?);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Puts the organization on `plan`; returns its previous plan, `None` if there is no
/// such organization.
pub async fn set_org_plan(tx: &mut Tx, org: OrgId, plan: Plan) -> Result<Option<Plan>> {
    let previous = match tx.conn() {
        Conn::Sqlite(c) => {
            sqlx::query_scalar::<_, String>("SELECT plan FROM organizations WHERE id = $1")
                .bind(org.as_uuid())
                .fetch_optional(&mut *c)
                .await?
        }
        Conn::Postgres(c) => {
            sqlx::query_scalar::<_, String>("SELECT plan FROM organizations WHERE id = $1 FOR NO KEY UPDATE")
                .bind(org.as_uuid())
                .fetch_optional(&mut *c)
                .await?
        }
    };
    let Some(previous) = previous else {
        return Ok(None);
    };
    dispatch!(tx, c => sqlx::query("UPDATE organizations SET plan = $2 WHERE id = $1")
        .bind(org.as_uuid())
        .bind(plan.as_str())
        .execute(&mut *c)
        .await?
        .rows_affected());
    parse_plan(&previous).map(Some)
}

/// The plan of the organization owning a store (platform superusers outside their own
/// stores; everyone else gets it with their membership).
pub async fn plan_of_store(h: &mut impl Handle, store: StoreId) -> Result<Option<Plan>> {
    let raw: Option<String> = dispatch!(h, c => sqlx::query_scalar(
        "SELECT o.plan FROM stores s JOIN organizations o ON o.id = s.org_id WHERE s.id = $1",
    )
    .bind(store.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    raw.as_deref().map(parse_plan).transpose()
}

/// An organization and its plan, if it exists.
pub async fn find_org_plan(h: &mut impl Handle, org: OrgId) -> Result<Option<Plan>> {
    let raw: Option<String> = dispatch!(h, c => sqlx::query_scalar("SELECT plan FROM organizations WHERE id = $1")
        .bind(org.as_uuid())
        .fetch_optional(&mut *c)
        .await?);
    raw.as_deref().map(parse_plan).transpose()
}
