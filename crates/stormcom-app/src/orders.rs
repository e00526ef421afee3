//! Orders after checkout (pay, cancel, fulfil, expire), discount codes, alerts, and
//! inventory reconciliation. Each state change is one conditional UPDATE on the order's
//! status, so two racing moves (say, payment and expiry) cannot both happen; the
//! reservation and the discount use are settled exactly once by the winner.

use stormcom_domain::checkout::{self as rules, DiscountKind, OrderStatus};
use stormcom_domain::{DiscountId, OrderId, Permission, ValidationErrors, VariantId};
use stormcom_store::commerce::{self, Alert, Discount, DiscountFields, Order, OrderLine};
use stormcom_store::inventory::{self, Level, Reconciliation};
use stormcom_store::{StoreScope, Tx, audit};
use time::OffsetDateTime;

use crate::access::entry;
use crate::catalog::{Page, into_page, page_size};
use crate::checkout::emit;
use crate::pii::Contact;
use crate::{App, AppError, Result, StoreContext};

/// An order with its lines and (for staff with `orders:read`) the decrypted customer.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub order: Order,
    pub lines: Vec<OrderLine>,
    pub customer: Option<Contact>,
    /// The gateway payment, once one was started (none for manual payments).
    pub payment: Option<stormcom_store::payments::Payment>,
}

impl OrderView {
    /// Where the money stands, as merchants read it: `unpaid`, `pending`, `paid`,
    /// `partially_refunded`, `refunded` (refunds asked for count), `failed` or `flagged`.
    #[must_use]
    pub fn financial_status(&self) -> &'static str {
        match &self.payment {
            Some(p) if p.status == "captured" && p.captured_amount > 0 && p.refunded_amount >= p.captured_amount => {
                "refunded"
            }
            Some(p) if p.status == "captured" && p.refunded_amount > 0 => "partially_refunded",
            Some(p) if p.status == "captured" => "paid",
            Some(p) if p.status == "pending" => "pending",
            Some(p) if p.status == "failed" => "failed",
            Some(_) => "flagged",
            None if matches!(self.order.status, OrderStatus::Paid | OrderStatus::Fulfilled) => "paid",
            None => "unpaid",
        }
    }
}

/// Input for a discount code (create or full replace).
#[derive(Debug, Clone)]
pub struct DiscountInput {
    pub code: String,
    pub kind: DiscountKind,
    pub value: i64,
    pub starts_at: Option<OffsetDateTime>,
    pub ends_at: Option<OffsetDateTime>,
    pub min_subtotal: i64,
    pub usage_limit: Option<i64>,
    pub per_customer_limit: Option<i64>,
    pub velocity_per_minute: Option<i64>,
    pub active: bool,
}

/// What a reconciliation run found in one store.
#[derive(Debug, Clone, Default)]
pub struct ReconcileReport {
    pub variants_checked: usize,
    pub drifted: Vec<Reconciliation>,
    pub newly_flagged: usize,
}

/// Moves an order `from` → `to` with one conditional UPDATE and returns it as it was
/// before. When the UPDATE finds nothing to change, the order is read again: on
/// PostgreSQL a racing transaction may have moved it since, and the answer must name the
/// state that actually won (or, for payment, say the reservation ran out).
async fn move_order(
    tx: &mut Tx,
    scope: &StoreScope,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
    reserved_after: Option<OffsetDateTime>,
    verb: &str,
) -> Result<Order> {
    let order = commerce::find_order(tx, scope, id).await?.ok_or(AppError::NotFound)?;
    if commerce::transition_order(tx, scope, id, from, to, reserved_after).await? {
        return Ok(order);
    }
    let now = commerce::find_order(tx, scope, id)
        .await?
        .ok_or(AppError::NotFound)?
        .status;
    Err(if now == from && reserved_after.is_some() {
        conflict("order_expired", "the reservation ran out; the order is expiring")
    } else {
        conflict("invalid_transition", &format!("a {now} order cannot be {verb}"))
    })
}

fn conflict(code: &'static str, message: &str) -> AppError {
    AppError::Conflict {
        code,
        message: message.to_owned(),
    }
}

fn validate_discount(input: &DiscountInput) -> Result<(String, DiscountFields)> {
    let mut errors = ValidationErrors::default();
    let key = rules::code_key(&input.code);
    if key.is_none() {
        errors.add("code", "invalid_code", "1 to 64 letters, digits, '-' or '_'");
    }
    match input.kind {
        DiscountKind::Percent if !(1..=100).contains(&input.value) => {
            errors.add("value", "invalid_value", "a percentage from 1 to 100")
        }
        DiscountKind::Fixed if !(1..=stormcom_domain::money::MAX_AMOUNT).contains(&input.value) => {
            errors.add("value", "invalid_value", "a positive amount in minor units");
        }
        _ => {}
    }
    if input.min_subtotal < 0 {
        errors.add("min_subtotal", "negative", "must not be negative");
    }
    for (field, limit) in [
        ("usage_limit", input.usage_limit),
        ("per_customer_limit", input.per_customer_limit),
        ("velocity_per_minute", input.velocity_per_minute),
    ] {
        if limit.is_some_and(|l| l < 1) {
            errors.add(field, "invalid_limit", "at least 1, or null for no limit");
        }
    }
    if let (Some(start), Some(end)) = (input.starts_at, input.ends_at)
        && end <= start
    {
        errors.add("ends_at", "invalid_window", "must be after starts_at");
    }
    errors.finish()?;
    let fields = DiscountFields {
        code: input.code.trim().to_owned(),
        kind: input.kind,
        value: input.value,
        starts_at: input.starts_at,
        ends_at: input.ends_at,
        min_subtotal: input.min_subtotal,
        usage_limit: input.usage_limit,
        per_customer_limit: input.per_customer_limit,
        velocity_per_minute: input.velocity_per_minute,
        status: if input.active { "active" } else { "disabled" }.to_owned(),
    };
    Ok((key.unwrap_or_default(), fields))
}

impl App {
    pub async fn list_orders(
        &self,
        ctx: &StoreContext,
        after: Option<OrderId>,
        limit: Option<u32>,
    ) -> Result<Page<Order, OrderId>> {
        ctx.require(Permission::OrdersRead)?;
        let limit = page_size(limit)?;
        let mut reader = self.db().reader().await?;
        let items = commerce::list_orders(&mut reader, ctx.scope(), after, limit + 1).await?;
        Ok(into_page(items, limit, |o| o.id))
    }

    pub async fn get_order(&self, ctx: &StoreContext, id: OrderId) -> Result<OrderView> {
        ctx.require(Permission::OrdersRead)?;
        let mut reader = self.db().reader().await?;
        let order = commerce::find_order(&mut reader, ctx.scope(), id)
            .await?
            .ok_or(AppError::NotFound)?;
        let lines = commerce::order_lines(&mut reader, ctx.scope(), id).await?;
        let customer = match commerce::find_customer(&mut reader, ctx.scope(), order.customer_id).await? {
            Some(c) => Some(self.open_contact(
                ctx.store_id(),
                &order.customer_id.to_string(),
                &c.email,
                c.name.as_deref(),
                c.address.as_deref(),
            )?),
            None => None,
        };
        let payment = stormcom_store::payments::payment_of_order(&mut reader, ctx.scope(), id).await?;
        Ok(OrderView {
            order,
            lines,
            customer,
            payment,
        })
    }

    /// Payment recorded by staff (until gateway events land): commits the reservation.
    /// Refused once the reservation has run out.
    pub async fn mark_paid(&self, ctx: &StoreContext, id: OrderId) -> Result<Order> {
        ctx.require(Permission::OrdersWrite)?;
        let actor = ctx.principal().to_string();
        let mut tx = self.db().begin().await?;
        let now = OffsetDateTime::now_utc();
        let order = move_order(
            &mut tx,
            ctx.scope(),
            id,
            OrderStatus::PendingPayment,
            OrderStatus::Paid,
            Some(now),
            "paid",
        )
        .await?;
        let committed = commerce::settle_reservations(&mut tx, ctx.scope(), id, true, &actor).await?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit("order.paid", id, &[("committed_units", committed.to_string())]),
        )
        .await?;
        emit(
            &mut tx,
            ctx.scope(),
            "order.paid",
            &order,
            &[("total", order.total.to_string())],
        )
        .await?;
        tx.commit().await?;
        self.reload_order(ctx.scope(), id).await
    }

    /// Cancels an unpaid order: releases its stock and gives its discount use back.
    pub async fn cancel_order(&self, ctx: &StoreContext, id: OrderId) -> Result<Order> {
        ctx.require(Permission::OrdersWrite)?;
        let actor = ctx.principal().to_string();
        let mut tx = self.db().begin().await?;
        let order = move_order(
            &mut tx,
            ctx.scope(),
            id,
            OrderStatus::PendingPayment,
            OrderStatus::Cancelled,
            None,
            "cancelled",
        )
        .await?;
        self.unwind(&mut tx, ctx.scope(), &order, &actor).await?;
        audit::append(&mut tx, ctx.scope(), ctx.audit("order.cancelled", id, &[])).await?;
        emit(&mut tx, ctx.scope(), "order.cancelled", &order, &[]).await?;
        tx.commit().await?;
        self.reload_order(ctx.scope(), id).await
    }

    /// Gives the discount use back and releases the stock, each exactly once. The code's
    /// row is locked before the stock rows, the same order checkout takes them in, so a
    /// cancellation and a checkout can never deadlock.
    pub(crate) async fn unwind(&self, tx: &mut Tx, scope: &StoreScope, order: &Order, actor: &str) -> Result<()> {
        if let Some(discount) = order.discount_id {
            commerce::give_back(tx, scope, discount, order.id).await?;
        }
        commerce::settle_reservations(tx, scope, order.id, false, actor).await?;
        Ok(())
    }

    /// Ships a paid order. Blocked while any of its variants has unresolved stock drift.
    pub async fn fulfill_order(&self, ctx: &StoreContext, id: OrderId) -> Result<Order> {
        ctx.require(Permission::OrdersWrite)?;
        let mut tx = self.db().begin().await?;
        for line in commerce::order_lines(&mut tx, ctx.scope(), id).await? {
            if inventory::level(&mut tx, ctx.scope(), line.variant_id)
                .await?
                .is_some_and(|l| l.drift_detected_at.is_some())
            {
                return Err(conflict(
                    "inventory_drift",
                    &format!("variant {} has unresolved stock drift", line.variant_id),
                ));
            }
        }
        let order = move_order(
            &mut tx,
            ctx.scope(),
            id,
            OrderStatus::Paid,
            OrderStatus::Fulfilled,
            None,
            "fulfilled",
        )
        .await?;
        audit::append(&mut tx, ctx.scope(), ctx.audit("order.fulfilled", id, &[])).await?;
        emit(&mut tx, ctx.scope(), "order.fulfilled", &order, &[]).await?;
        tx.commit().await?;
        self.reload_order(ctx.scope(), id).await
    }

    async fn reload_order(&self, scope: &StoreScope, id: OrderId) -> Result<Order> {
        let mut reader = self.db().reader().await?;
        commerce::find_order(&mut reader, scope, id)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Expires unpaid orders whose reservation ran out (the sweeper in `serve`): each in
    /// its own transaction. Returns how many expired.
    pub async fn expire_overdue_orders(&self) -> Result<usize> {
        let overdue = {
            let mut reader = self.db().reader().await?;
            commerce::overdue_orders(&mut reader, OffsetDateTime::now_utc(), 500).await?
        };
        let mut expired = 0;
        for (scope, id) in overdue {
            let mut tx = self.db().begin().await?;
            let Some(order) = commerce::find_order(&mut tx, &scope, id).await? else {
                continue;
            };
            if !commerce::transition_order(
                &mut tx,
                &scope,
                id,
                OrderStatus::PendingPayment,
                OrderStatus::Expired,
                None,
            )
            .await?
            {
                continue; // paid or cancelled meanwhile
            }
            self.unwind(&mut tx, &scope, &order, "sweeper").await?;
            audit::append(&mut tx, &scope, entry("sweeper".into(), None, "order.expired", id, &[])).await?;
            emit(&mut tx, &scope, "order.expired", &order, &[]).await?;
            tx.commit().await?;
            expired += 1;
        }
        Ok(expired)
    }

    pub async fn create_discount(&self, ctx: &StoreContext, input: DiscountInput) -> Result<Discount> {
        ctx.require(Permission::DiscountsWrite)?;
        let (key, fields) = validate_discount(&input)?;
        let mut tx = self.db().begin().await?;
        let discount = commerce::insert_discount(&mut tx, ctx.scope(), &key, &fields).await?;
        let summary = [
            ("code", fields.code.clone()),
            ("kind", fields.kind.as_str().to_owned()),
            ("value", fields.value.to_string()),
        ];
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit("discount.created", discount.id, &summary),
        )
        .await?;
        commerce::emit(&mut tx, ctx.scope(), "discount.created", &discount.id.to_string(), "{}").await?;
        tx.commit().await?;
        Ok(discount)
    }

    pub async fn update_discount(&self, ctx: &StoreContext, id: DiscountId, input: DiscountInput) -> Result<Discount> {
        ctx.require(Permission::DiscountsWrite)?;
        let (_, fields) = validate_discount(&input)?;
        let mut tx = self.db().begin().await?;
        let current = commerce::find_discount(&mut tx, ctx.scope(), id)
            .await?
            .ok_or(AppError::NotFound)?;
        if current.fields.code != fields.code {
            return Err(AppError::invalid(
                "code",
                "immutable",
                "a code cannot be renamed; create a new one",
            ));
        }
        let mut fields = fields;
        if current.fields.status == "frozen" && fields.status == "active" {
            fields.status = "frozen".into(); // unfreezing is its own, audited action
        }
        let discount = commerce::update_discount(&mut tx, ctx.scope(), id, &fields)
            .await?
            .ok_or(AppError::NotFound)?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit("discount.updated", id, &[("status", discount.fields.status.clone())]),
        )
        .await?;
        commerce::emit(&mut tx, ctx.scope(), "discount.updated", &id.to_string(), "{}").await?;
        tx.commit().await?;
        Ok(discount)
    }

    pub async fn list_discounts(&self, ctx: &StoreContext) -> Result<Vec<Discount>> {
        ctx.require(Permission::DiscountsWrite)?;
        let mut reader = self.db().reader().await?;
        Ok(commerce::list_discounts(&mut reader, ctx.scope()).await?)
    }

    pub async fn get_discount(&self, ctx: &StoreContext, id: DiscountId) -> Result<Discount> {
        ctx.require(Permission::DiscountsWrite)?;
        let mut reader = self.db().reader().await?;
        commerce::find_discount(&mut reader, ctx.scope(), id)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// Reactivates a code frozen by the velocity rule, resolving its alert.
    pub async fn unfreeze_discount(&self, ctx: &StoreContext, id: DiscountId) -> Result<Discount> {
        ctx.require(Permission::DiscountsWrite)?;
        let mut tx = self.db().begin().await?;
        if !commerce::set_discount_status(&mut tx, ctx.scope(), id, "frozen", "active").await? {
            return Err(match commerce::find_discount(&mut tx, ctx.scope(), id).await? {
                Some(_) => conflict("not_frozen", "the code is not frozen"),
                None => AppError::NotFound,
            });
        }
        commerce::resolve_alerts(
            &mut tx,
            ctx.scope(),
            "discount_velocity",
            &id.to_string(),
            &ctx.principal().to_string(),
        )
        .await?;
        audit::append(&mut tx, ctx.scope(), ctx.audit("discount.unfrozen", id, &[])).await?;
        commerce::emit(&mut tx, ctx.scope(), "discount.unfrozen", &id.to_string(), "{}").await?;
        let discount = commerce::find_discount(&mut tx, ctx.scope(), id)
            .await?
            .ok_or(AppError::NotFound)?;
        tx.commit().await?;
        Ok(discount)
    }

    pub async fn list_alerts(&self, ctx: &StoreContext) -> Result<Vec<Alert>> {
        ctx.require(Permission::StoreRead)?;
        let mut reader = self.db().reader().await?;
        Ok(commerce::list_alerts(&mut reader, ctx.scope()).await?)
    }

    /// Recomputes on-hand and reserved from the ledger and live reservations; flags
    /// (audits, alerts, emits) every variant that drifted.
    pub async fn reconcile_store(&self, scope: &StoreScope, actor: &str) -> Result<ReconcileReport> {
        let rows = {
            let mut reader = self.db().reader().await?;
            inventory::reconcile(&mut reader, scope).await?
        };
        let mut report = ReconcileReport {
            variants_checked: rows.len(),
            ..ReconcileReport::default()
        };
        for row in rows.into_iter().filter(Reconciliation::drifted) {
            let variant = VariantId::from_uuid(row.variant_id);
            let detail = format!(
                "on_hand {} vs ledger {}, reserved {} vs live reservations {}",
                row.on_hand, row.ledger_on_hand, row.reserved, row.live_reserved
            );
            let flagged_before = report.newly_flagged;
            let mut tx = self.db().begin().await?;
            if inventory::flag_drift(&mut tx, scope, variant, &detail).await? {
                commerce::raise_alert(&mut tx, scope, "inventory_drift", &variant.to_string(), &detail).await?;
                audit::append(
                    &mut tx,
                    scope,
                    entry(
                        actor.to_owned(),
                        None,
                        "inventory.drift_detected",
                        variant,
                        &[("detail", detail.clone())],
                    ),
                )
                .await?;
                commerce::emit(&mut tx, scope, "inventory.drift_detected", &variant.to_string(), "{}").await?;
                report.newly_flagged += 1;
            }
            tx.commit().await?;
            if report.newly_flagged > flagged_before {
                crate::alert_raised("inventory_drift");
            }
            report.drifted.push(row);
        }
        Ok(report)
    }

    /// Reconciles every store (operator command and the daily job in `serve`).
    pub async fn reconcile_all(&self) -> Result<Vec<(StoreScope, ReconcileReport)>> {
        let stores = {
            let mut reader = self.db().reader().await?;
            inventory::all_stores(&mut reader).await?
        };
        let mut reports = Vec::with_capacity(stores.len());
        for scope in stores {
            reports.push((scope, self.reconcile_store(&scope, "reconciliation").await?));
        }
        Ok(reports)
    }

    pub async fn reconcile(&self, ctx: &StoreContext) -> Result<ReconcileReport> {
        ctx.require(Permission::InventoryWrite)?;
        self.reconcile_store(ctx.scope(), &ctx.principal().to_string()).await
    }

    /// Staff accept the counted stock after investigating a drift; fulfilment resumes.
    pub async fn resolve_drift(&self, ctx: &StoreContext, variant: VariantId, reason: &str) -> Result<Level> {
        ctx.require(Permission::InventoryWrite)?;
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 255 {
            return Err(AppError::invalid("reason", "invalid_reason", "must be 1 to 255 bytes"));
        }
        let actor = ctx.principal().to_string();
        let mut tx = self.db().begin().await?;
        let Some(level) = inventory::resolve_drift(&mut tx, ctx.scope(), variant, reason, &actor).await? else {
            return Err(match inventory::level(&mut tx, ctx.scope(), variant).await? {
                Some(_) => conflict("no_drift", "this variant has no unresolved drift"),
                None => AppError::NotFound,
            });
        };
        commerce::resolve_alerts(&mut tx, ctx.scope(), "inventory_drift", &variant.to_string(), &actor).await?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit("inventory.drift_resolved", variant, &[("reason", reason.to_owned())]),
        )
        .await?;
        commerce::emit(
            &mut tx,
            ctx.scope(),
            "inventory.drift_resolved",
            &variant.to_string(),
            "{}",
        )
        .await?;
        tx.commit().await?;
        Ok(level)
    }
}
