//! Inventory balances and their append-only movement ledger. A balance only changes in
//! the same statement that checks it, and every change writes a ledger row in the same
//! transaction, so `on_hand` can always be recomputed as the sum of the ledger.

use sqlx::FromRow;
use stormcom_domain::catalog::MAX_QUANTITY;
use stormcom_domain::{MovementId, VariantId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, StoreScope, Tx, dispatch, insert_movement, now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Level {
    pub on_hand: i64,
    pub reserved: i64,
    pub updated_at: OffsetDateTime,
    /// Set by reconciliation when the balance disagrees with the ledger; fulfilment of
    /// this variant is blocked until staff resolve it.
    pub drift_detected_at: Option<OffsetDateTime>,
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
        "SELECT on_hand, reserved, updated_at, drift_detected_at FROM inventory_levels WHERE store_id = $1 AND variant_id = $2",
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
         RETURNING on_hand, reserved, updated_at, drift_detected_at",
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
    dispatch!(tx, c => insert_movement!(c, scope, movement, variant, kind.as_str(), delta, level.on_hand, reason, actor, at));
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

/// A variant's balance next to what the ledger and live reservations say it should be.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Reconciliation {
    pub variant_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
    pub ledger_on_hand: i64,
    pub live_reserved: i64,
    pub drift_detected_at: Option<OffsetDateTime>,
}

impl Reconciliation {
    #[must_use]
    pub const fn drifted(&self) -> bool {
        self.on_hand != self.ledger_on_hand || self.reserved != self.live_reserved
    }
}

/// Recomputes every variant's balances of a store from the ledger and live reservations.
pub async fn reconcile(h: &mut impl Handle, scope: &StoreScope) -> Result<Vec<Reconciliation>> {
    Ok(dispatch!(h, c => sqlx::query_as(
        "SELECT l.variant_id, l.on_hand, l.reserved, \
         CAST(COALESCE((SELECT SUM(m.delta) FROM inventory_movements m WHERE m.store_id = l.store_id \
             AND m.variant_id = l.variant_id AND m.kind IN ('initial', 'adjustment', 'import', 'committed')), 0) AS BIGINT) AS ledger_on_hand, \
         CAST(COALESCE((SELECT SUM(r.quantity) FROM reservations r WHERE r.store_id = l.store_id \
             AND r.variant_id = l.variant_id AND r.status = 'active'), 0) AS BIGINT) AS live_reserved, \
         l.drift_detected_at \
         FROM inventory_levels l WHERE l.store_id = $1 ORDER BY l.variant_id",
    )
    .bind(scope.uuid())
    .fetch_all(&mut *c)
    .await?))
}

/// Flags a variant as drifted (once); `true` when newly flagged.
pub async fn flag_drift(tx: &mut Tx, scope: &StoreScope, variant: VariantId, detail: &str) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE inventory_levels SET drift_detected_at = $3, drift_detail = $4 \
         WHERE store_id = $1 AND variant_id = $2 AND drift_detected_at IS NULL",
    )
    .bind(scope.uuid())
    .bind(variant.as_uuid())
    .bind(now())
    .bind(detail)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Clears a drift flag: `reserved` is set back to the live reservations, and the
/// counted on-hand is accepted by writing the difference to the ledger as an adjustment,
/// so balance and ledger agree again. `None` when the variant is not flagged.
pub async fn resolve_drift(
    tx: &mut Tx,
    scope: &StoreScope,
    variant: VariantId,
    reason: &str,
    actor: &str,
) -> Result<Option<Level>> {
    let Some(row) = reconcile(tx, scope)
        .await?
        .into_iter()
        .find(|r| r.variant_id == variant.as_uuid())
    else {
        return Ok(None);
    };
    if row.drift_detected_at.is_none() {
        return Ok(None);
    }
    let at = now();
    let level: Level = dispatch!(tx, c => sqlx::query_as(
        "UPDATE inventory_levels SET reserved = $3, drift_detected_at = NULL, drift_detail = NULL, updated_at = $4 \
         WHERE store_id = $1 AND variant_id = $2 RETURNING on_hand, reserved, updated_at, drift_detected_at",
    )
    .bind(scope.uuid())
    .bind(variant.as_uuid())
    .bind(row.live_reserved.min(row.on_hand))
    .bind(at)
    .fetch_one(&mut *c)
    .await?);
    let delta = row.on_hand - row.ledger_on_hand;
    if delta != 0 {
        let reason = format!("drift resolved: {reason}");
        dispatch!(tx, c => insert_movement!(c, scope, MovementId::generate(), variant, "adjustment", delta, row.on_hand, &reason, actor, at));
    }
    Ok(Some(level))
}

/// Every store (for operator-wide jobs such as the nightly reconciliation).
pub async fn all_stores(h: &mut impl Handle) -> Result<Vec<StoreScope>> {
    let ids: Vec<Uuid> =
        dispatch!(h, c => sqlx::query_scalar("SELECT id FROM stores ORDER BY id").fetch_all(&mut *c).await?);
    Ok(ids
        .into_iter()
        .map(|id| StoreScope::new(stormcom_domain::StoreId::from_uuid(id)))
        .collect())
}
