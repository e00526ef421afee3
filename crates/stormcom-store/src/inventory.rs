//! Inventory balances and their append-only movement ledger. A balance only changes in
//! the same statement that checks it, and every change writes a ledger row in the same
//! transaction, so `on_hand` can always be recomputed as the sum of the ledger.

use sqlx::FromRow;
use stormcom_domain::catalog::MAX_QUANTITY;
use stormcom_domain::{MovementId, VariantId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, StoreScope, Tx, dispatch, now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Level {
    pub on_hand: i64,
    pub reserved: i64,
    pub updated_at: OffsetDateTime,
}

impl Level {
    #[must_use]
    pub const fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// Why stock moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MovementKind {
    /// Stock given when a variant is created.
    Initial,
    Adjustment,
    Import,
}

impl MovementKind {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Adjustment => "adjustment",
            Self::Import => "import",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdjustOutcome {
    Applied {
        level: Level,
        movement: MovementId,
    },
    /// The change would take on-hand below zero, below what is reserved, or above the
    /// maximum; nothing was written.
    Refused {
        level: Level,
    },
    NotFound,
}

pub async fn level(h: &mut impl Handle, scope: &StoreScope, variant: VariantId) -> Result<Option<Level>> {
    Ok(dispatch!(h, c => sqlx::query_as(
        "SELECT on_hand, reserved, updated_at FROM inventory_levels WHERE store_id = $1 AND variant_id = $2",
    )
    .bind(scope.uuid())
    .bind(variant.as_uuid())
    .fetch_optional(&mut *c)
    .await?))
}

/// Adds `delta` to on-hand if the result stays within `reserved..=MAX_QUANTITY`, and
/// records the movement. The check and the change are one conditional UPDATE, so
/// concurrent adjustments can never overdraw.
pub async fn adjust(
    tx: &mut Tx,
    scope: &StoreScope,
    variant: VariantId,
    delta: i64,
    kind: MovementKind,
    reason: &str,
    actor: &str,
) -> Result<AdjustOutcome> {
    let at = now();
    let applied: Option<Level> = dispatch!(tx, c => sqlx::query_as(
        "UPDATE inventory_levels SET on_hand = on_hand + $3, updated_at = $4 \
         WHERE store_id = $1 AND variant_id = $2 AND on_hand + $3 >= reserved AND on_hand + $3 <= $5 \
         RETURNING on_hand, reserved, updated_at",
    )
    .bind(scope.uuid())
    .bind(variant.as_uuid())
    .bind(delta)
    .bind(at)
    .bind(MAX_QUANTITY)
    .fetch_optional(&mut *c)
    .await?);
    let Some(level) = applied else {
        return Ok(match self::level(tx, scope, variant).await? {
            Some(level) => AdjustOutcome::Refused { level },
            None => AdjustOutcome::NotFound,
        });
    };
    let movement = MovementId::generate();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO inventory_movements (store_id, id, variant_id, kind, delta, on_hand_after, reason, actor, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(scope.uuid())
    .bind(movement.as_uuid())
    .bind(variant.as_uuid())
    .bind(kind.as_str())
    .bind(delta)
    .bind(level.on_hand)
    .bind(reason)
    .bind(actor)
    .bind(at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(AdjustOutcome::Applied { level, movement })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    pub id: MovementId,
    pub variant_id: VariantId,
    pub kind: String,
    pub delta: i64,
    pub on_hand_after: i64,
    pub reason: String,
    pub actor: String,
    pub created_at: OffsetDateTime,
}

#[derive(FromRow)]
struct MovementRow {
    id: Uuid,
    variant_id: Uuid,
    kind: String,
    delta: i64,
    on_hand_after: i64,
    reason: String,
    actor: String,
    created_at: OffsetDateTime,
}

/// One page of a variant's ledger, oldest first.
pub async fn movements(
    h: &mut impl Handle,
    scope: &StoreScope,
    variant: VariantId,
    after: Option<MovementId>,
    limit: u32,
) -> Result<Vec<Movement>> {
    let rows: Vec<MovementRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, variant_id, kind, delta, on_hand_after, reason, actor, created_at FROM inventory_movements \
         WHERE store_id = $1 AND variant_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(scope.uuid())
    .bind(variant.as_uuid())
    .bind(after.map_or(Uuid::nil(), |m| m.as_uuid()))
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?);
    Ok(rows
        .into_iter()
        .map(|r| Movement {
            id: MovementId::from_uuid(r.id),
            variant_id: VariantId::from_uuid(r.variant_id),
            kind: r.kind,
            delta: r.delta,
            on_hand_after: r.on_hand_after,
            reason: r.reason,
            actor: r.actor,
            created_at: r.created_at,
        })
        .collect())
}

/// On-hand as the ledger says it should be: the sum of every on-hand movement.
pub async fn ledger_on_hand(h: &mut impl Handle, scope: &StoreScope, variant: VariantId) -> Result<i64> {
    let sum: Option<i64> = dispatch!(h, c => sqlx::query_scalar(
        "SELECT CAST(SUM(delta) AS BIGINT) FROM inventory_movements \
         WHERE store_id = $1 AND variant_id = $2 AND kind IN ('initial', 'adjustment', 'import', 'committed')",
    )
    .bind(scope.uuid())
    .bind(variant.as_uuid())
    .fetch_one(&mut *c)
    .await?);
    Ok(sum.unwrap_or(0))
}
