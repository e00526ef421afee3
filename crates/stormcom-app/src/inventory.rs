//! Stock levels and manual adjustments.

use stormcom_domain::catalog::MAX_QUANTITY;
use stormcom_domain::{MovementId, Permission, ValidationErrors, VariantId};
use stormcom_store::audit;
use stormcom_store::inventory::{self, AdjustOutcome, Level, Movement, MovementKind};

use crate::catalog::{Page, into_page, page_size};
use crate::{App, AppError, Result, StoreContext};

impl App {
    pub async fn inventory_level(&self, ctx: &StoreContext, variant: VariantId) -> Result<Level> {
        ctx.require(Permission::InventoryRead)?;
        let mut reader = self.db().reader().await?;
        inventory::level(&mut reader, ctx.scope(), variant)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Adds `delta` (negative to remove) to on-hand stock. Refused, with nothing written,
    /// when on-hand would drop below zero or below what is reserved.
    pub async fn adjust_inventory(
        &self,
        ctx: &StoreContext,
        variant: VariantId,
        delta: i64,
        reason: &str,
    ) -> Result<(Level, MovementId)> {
        ctx.require(Permission::InventoryWrite)?;
        let mut errors = ValidationErrors::default();
        if delta == 0 || delta.abs() > MAX_QUANTITY {
            errors.add(
                "delta",
                "invalid_delta",
                format!("must be non-zero and at most {MAX_QUANTITY} in size"),
            );
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 255 {
            errors.add("reason", "invalid_reason", "must be 1 to 255 bytes");
        }
        errors.finish()?;
        let actor = ctx.principal().to_string();
        let mut tx = self.db().begin().await?;
        let outcome = inventory::adjust(
            &mut tx,
            ctx.scope(),
            variant,
            delta,
            MovementKind::Adjustment,
            reason,
            &actor,
        )
        .await?;
        match outcome {
            AdjustOutcome::Applied { level, movement } => {
                let summary = [
                    ("delta", delta.to_string()),
                    ("on_hand", level.on_hand.to_string()),
                    ("movement", movement.to_string()),
                ];
                audit::append(&mut tx, ctx.scope(), ctx.audit("inventory.adjusted", variant, &summary)).await?;
                tx.commit().await?;
                Ok((level, movement))
            }
            AdjustOutcome::Refused { level } => Err(AppError::InsufficientStock {
                available: level.available(),
            }),
            AdjustOutcome::NotFound => Err(AppError::NotFound),
        }
    }

    pub async fn inventory_movements(
        &self,
        ctx: &StoreContext,
        variant: VariantId,
        after: Option<MovementId>,
        limit: Option<u32>,
    ) -> Result<Page<Movement, MovementId>> {
        ctx.require(Permission::InventoryRead)?;
        let limit = page_size(limit)?;
        let mut reader = self.db().reader().await?;
        inventory::level(&mut reader, ctx.scope(), variant)
            .await?
            .ok_or(AppError::NotFound)?;
        let items = inventory::movements(&mut reader, ctx.scope(), variant, after, limit + 1).await?;
        Ok(into_page(items, limit, |m| m.id))
    }
}
