//! Payments and refunds through gateway providers.
//!
//! A gateway callback is believed only after its signature verifies over the raw bytes,
//! within the replay window. Its event id is then claimed in `processed_webhook_events`
//! in the same transaction as its effect, so a redelivery (same id, fresh timestamp and
//! signature) finds the claim and does nothing, however many arrive at once. Money moves
//! by conditional UPDATEs only: a payment is captured once (from `pending`), an order
//! is paid once (from `pending_payment`), and refunds never sum past the capture.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use stormcom_domain::checkout::OrderStatus;
use stormcom_domain::payment::{
    self as gateway, EventKind, GatewayEvent, ORDER_METADATA, Provider, REFUND_METADATA, SignatureError,
};
use stormcom_domain::{OrderId, PaymentId, Permission, RefundId, StoreId};
use stormcom_store::commerce::{self, Order};
use stormcom_store::payments::{self as store, Payment, Refund};
use stormcom_store::{StoreScope, Tx, audit, tenancy};
use time::OffsetDateTime;

use crate::access::entry;
use crate::checkout::emit;
use crate::{App, AppError, Result, StoreContext};

/// A provider's settings as the API shows them: the secret never leaves.
#[derive(Debug, Clone)]
pub struct ProviderView {
    pub provider: Provider,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An order's payment and its refunds.
#[derive(Debug, Clone)]
pub struct PaymentView {
    pub payment: Payment,
    pub refunds: Vec<Refund>,
}

/// What a callback did. Duplicates and ignored events are successes for the gateway
/// (a 2xx stops its retries); only bad signatures and malformed bodies are refused.
#[derive(Debug, Clone)]
pub struct CallbackOutcome {
    pub event_id: String,
    pub duplicate: bool,
    pub outcome: &'static str,
}

/// A gateway event as the `test` provider would deliver it.
#[derive(Debug, Clone)]
pub struct SignedEvent {
    pub event_id: String,
    pub body: String,
    /// The `Stripe-Signature` header value.
    pub signature: String,
}

/// Which event the `test` provider should emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulated {
    Succeeded,
    Failed,
    Refunded,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AppError::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

fn conflict(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::Conflict {
        code,
        message: message.into(),
    }
}

fn provider_row(provider: Provider) -> String {
    format!("provider:{provider}")
}

const SECRET_FIELD: &str = "webhook_secret";

/// The alert a flagged callback outcome wrote in its transaction (counted after commit).
fn alert_of(outcome: &str) -> Option<&'static str> {
    Some(match outcome {
        "flagged_amount_mismatch" => "payment_mismatch",
        "flagged_order_not_payable" => "payment_for_closed_order",
        "flagged_refund_mismatch" => "refund_mismatch",
        "flagged_refund_exceeds_captured" => "refund_exceeds_captured",
        "flagged_other_payment" => "payment_for_other_intent",
        _ => return None,
    })
}

/// Counts a refused callback by reason, for the metrics endpoint and the alert rules.
fn count_rejection(reason: &'static str) {
    metrics::counter!("stormcom_payment_callbacks_rejected_total", "reason" => reason).increment(1);
}

impl App {
    /// Sets a provider's webhook secret and switches it on or off. The `test` provider
    /// makes up its own secret when none is given.
    pub async fn configure_provider(
        &self,
        ctx: &StoreContext,
        provider: Provider,
        secret: Option<&str>,
        enabled: bool,
    ) -> Result<ProviderView> {
        ctx.require(Permission::PaymentsManage)?;
        let secret = match (secret, provider) {
            (Some(s), _) => {
                let valid = (gateway::MIN_SECRET_LEN..=gateway::MAX_SECRET_LEN).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_graphic());
                if !valid {
                    return Err(AppError::invalid(
                        "webhook_secret",
                        "invalid_secret",
                        format!(
                            "{} to {} printable characters",
                            gateway::MIN_SECRET_LEN,
                            gateway::MAX_SECRET_LEN
                        ),
                    ));
                }
                s.to_owned()
            }
            (None, Provider::Test) => format!("whsec_test_{}", random_hex(24)?),
            (None, Provider::Stripe) => {
                return Err(AppError::invalid(
                    "webhook_secret",
                    "required",
                    "the endpoint's signing secret from the gateway (whsec_…)",
                ));
            }
        };
        let sealed = self.seal_field(ctx.store_id(), &provider_row(provider), SECRET_FIELD, secret.as_bytes())?;
        let mut tx = self.db().begin().await?;
        let row = store::upsert_provider(&mut tx, ctx.scope(), provider.as_str(), &sealed, enabled).await?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit(
                "payment_provider.configured",
                provider,
                &[("enabled", enabled.to_string())],
            ),
        )
        .await?;
        commerce::emit(
            &mut tx,
            ctx.scope(),
            "payment_provider.configured",
            provider.as_str(),
            "{}",
        )
        .await?;
        tx.commit().await?;
        Ok(ProviderView {
            provider,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    pub async fn list_providers(&self, ctx: &StoreContext) -> Result<Vec<ProviderView>> {
        ctx.require(Permission::PaymentsManage)?;
        let mut reader = self.db().reader().await?;
        store::list_providers(&mut reader, ctx.scope())
            .await?
            .into_iter()
            .map(|row| {
                Ok(ProviderView {
                    provider: row
                        .provider
                        .parse()
                        .map_err(|()| AppError::Internal(format!("unknown provider '{}'", row.provider)))?,
                    enabled: row.enabled,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                })
            })
            .collect()
    }

    /// Opens a payment for an unpaid order. With `test` StormCom makes the gateway
    /// reference; with `stripe` the caller passes the PaymentIntent id its checkout made.
    /// Asking again for the same order and provider returns the same payment.
    pub async fn start_payment(
        &self,
        ctx: &StoreContext,
        order_id: OrderId,
        provider: Provider,
        provider_ref: Option<&str>,
    ) -> Result<Payment> {
        ctx.require(Permission::OrdersWrite)?;
        let provider_ref = match (provider, provider_ref) {
            (Provider::Test, None) => format!("pi_test_{}", random_hex(12)?),
            (Provider::Test, Some(_)) => {
                return Err(AppError::invalid(
                    "provider_ref",
                    "not_allowed",
                    "the test provider makes its own reference",
                ));
            }
            (Provider::Stripe, Some(r)) if (1..=255).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_graphic()) => {
                r.to_owned()
            }
            (Provider::Stripe, _) => {
                return Err(AppError::invalid(
                    "provider_ref",
                    "required",
                    "the PaymentIntent id (pi_…) your checkout created",
                ));
            }
        };
        let mut tx = self.db().begin().await?;
        let order = commerce::find_order(&mut tx, ctx.scope(), order_id)
            .await?
            .ok_or(AppError::NotFound)?;
        if let Some(existing) = store::payment_of_order(&mut tx, ctx.scope(), order_id).await? {
            if existing.provider == provider.as_str() && existing.status == "pending" {
                return Ok(existing);
            }
            return Err(conflict("payment_exists", "this order already has a payment"));
        }
        if order.status != OrderStatus::PendingPayment {
            return Err(conflict(
                "invalid_transition",
                format!("a {} order cannot take a payment", order.status),
            ));
        }
        match store::find_provider(&mut tx, ctx.scope(), provider.as_str()).await? {
            Some(settings) if settings.enabled => {}
            _ => {
                return Err(conflict(
                    "provider_not_configured",
                    format!("the {provider} provider is not configured and enabled for this store"),
                ));
            }
        }
        let now = OffsetDateTime::now_utc();
        let payment = Payment {
            id: PaymentId::generate(),
            order_id,
            provider: provider.as_str().to_owned(),
            provider_ref,
            status: "pending".into(),
            amount: order.total,
            currency: order.currency.clone(),
            captured_amount: 0,
            refunded_amount: 0,
            created_at: now,
            updated_at: now,
        };
        store::insert_payment(&mut tx, ctx.scope(), &payment).await?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit(
                "payment.created",
                payment.id,
                &[
                    ("order", order_id.to_string()),
                    ("provider", payment.provider.clone()),
                    ("amount", payment.amount.to_string()),
                ],
            ),
        )
        .await?;
        emit(
            &mut tx,
            ctx.scope(),
            "payment.created",
            &order,
            &[("payment_id", payment.id.to_string())],
        )
        .await?;
        tx.commit().await?;
        Ok(payment)
    }

    pub async fn order_payment(&self, ctx: &StoreContext, order_id: OrderId) -> Result<PaymentView> {
        ctx.require(Permission::OrdersRead)?;
        let mut reader = self.db().reader().await?;
        let payment = store::payment_of_order(&mut reader, ctx.scope(), order_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let refunds = store::refunds_of_order(&mut reader, ctx.scope(), order_id).await?;
        Ok(PaymentView { payment, refunds })
    }

    pub async fn list_refunds(&self, ctx: &StoreContext, order_id: OrderId) -> Result<Vec<Refund>> {
        ctx.require(Permission::OrdersRead)?;
        let mut reader = self.db().reader().await?;
        if commerce::find_order(&mut reader, ctx.scope(), order_id)
            .await?
            .is_none()
        {
            return Err(AppError::NotFound);
        }
        Ok(store::refunds_of_order(&mut reader, ctx.scope(), order_id).await?)
    }

    /// Refunds part or all of a captured payment. The amount is taken out of what is left
    /// by one conditional UPDATE, so concurrent refunds can never sum past the capture;
    /// the refund stays `pending` until the gateway's event confirms it.
    pub async fn refund_order(
        &self,
        ctx: &StoreContext,
        order_id: OrderId,
        amount: i64,
        reason: &str,
    ) -> Result<Refund> {
        ctx.require(Permission::OrdersRefund)?;
        let reason = reason.trim();
        let mut errors = stormcom_domain::ValidationErrors::default();
        if !(1..=stormcom_domain::money::MAX_AMOUNT).contains(&amount) {
            errors.add("amount", "invalid_amount", "a positive amount in minor units");
        }
        if reason.is_empty() || reason.len() > 500 {
            errors.add("reason", "invalid_reason", "1 to 500 bytes");
        }
        errors.finish()?;
        let mut tx = self.db().begin().await?;
        let order = commerce::lock_order(&mut tx, ctx.scope(), order_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let payment = store::payment_of_order(&mut tx, ctx.scope(), order_id).await?;
        let refundable = |p: &Payment| {
            p.status == "flagged" && p.captured_amount > 0
                || p.status == "captured" && matches!(order.status, OrderStatus::Paid | OrderStatus::Fulfilled)
        };
        let Some(payment) = payment.filter(refundable) else {
            return Err(conflict(
                "invalid_transition",
                format!("a {} order has no captured payment to refund", order.status),
            ));
        };
        if !store::hold_refund(&mut tx, ctx.scope(), payment.id, amount).await? {
            let left = payment.captured_amount - payment.refunded_amount;
            return Err(conflict(
                "refund_exceeds_captured",
                format!("refunds would exceed the captured amount ({left} left to refund)"),
            ));
        }
        let now = OffsetDateTime::now_utc();
        let refund = Refund {
            id: RefundId::generate(),
            order_id,
            payment_id: payment.id,
            amount,
            reason: reason.to_owned(),
            status: "pending".into(),
            source: "api".into(),
            // The test gateway answers at once with its reference; a real one would be
            // called here and its refund id stored (or matched later by our metadata).
            provider_ref: (payment.provider == Provider::Test.as_str())
                .then(|| random_hex(12).map(|h| format!("re_test_{h}")))
                .transpose()?,
            created_by: ctx.principal().to_string(),
            created_at: now,
            updated_at: now,
        };
        store::insert_refund(&mut tx, ctx.scope(), &refund).await?;
        audit::append(
            &mut tx,
            ctx.scope(),
            ctx.audit(
                "refund.created",
                refund.id,
                &[("order", order_id.to_string()), ("amount", amount.to_string())],
            ),
        )
        .await?;
        emit(
            &mut tx,
            ctx.scope(),
            "refund.created",
            &order,
            &[("refund_id", refund.id.to_string()), ("amount", amount.to_string())],
        )
        .await?;
        tx.commit().await?;
        Ok(refund)
    }

    /// Handles one gateway callback: verify, claim the event id, apply, in that order.
    pub async fn payment_callback(
        &self,
        provider: &str,
        store_id: StoreId,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<CallbackOutcome> {
        let provider: Provider = provider.parse().map_err(|()| AppError::NotFound)?;
        let (scope, secret) = {
            let mut reader = self.db().reader().await?;
            let store = tenancy::find_store_by_id(&mut reader, store_id)
                .await?
                .ok_or(AppError::NotFound)?;
            let scope = store.scope();
            let settings = store::find_provider(&mut reader, &scope, provider.as_str())
                .await?
                .filter(|s| s.enabled)
                .ok_or_else(|| {
                    count_rejection("not_configured");
                    AppError::NotFound
                })?;
            let secret = self.open_field(
                store_id,
                &provider_row(provider),
                SECRET_FIELD,
                &settings.webhook_secret,
            )?;
            (scope, secret)
        };
        let window = self.config.callback_window;
        if let Err(e) = gateway::verify(&secret, signature, body, unix_now(), window) {
            count_rejection(e.code());
            tracing::warn!(store_id = %store_id, %provider, reason = e.code(), "payment callback refused");
            return Err(signature_error(e));
        }
        let event: GatewayEvent = serde_json::from_slice(body).map_err(|_| {
            count_rejection("malformed_event");
            AppError::BadRequest {
                code: "malformed_event",
                message: "the signed body is not a gateway event (id, type, data.object)".into(),
            }
        })?;
        if !gateway::valid_event_id(&event.id) {
            count_rejection("malformed_event");
            return Err(AppError::BadRequest {
                code: "malformed_event",
                message: "the event id must be 1 to 255 printable characters".into(),
            });
        }

        let mut tx = self.db().begin().await?;
        let kind_text: String = event.kind.chars().take(100).collect();
        if !store::claim_event(&mut tx, &scope, provider.as_str(), &event.id, &kind_text).await? {
            tx.commit().await?;
            return Ok(CallbackOutcome {
                event_id: event.id,
                duplicate: true,
                outcome: "duplicate",
            });
        }
        let actor = format!("gateway:{provider}");
        let outcome = match EventKind::of(&event.kind) {
            EventKind::PaymentSucceeded => self.on_captured(&mut tx, &scope, provider, &event, &actor).await?,
            EventKind::PaymentFailed => self.on_failed(&mut tx, &scope, provider, &event, &actor).await?,
            EventKind::Refund => on_refund(&mut tx, &scope, provider, &event, &actor).await?,
            EventKind::Other => "ignored_event_type",
        };
        store::set_event_outcome(&mut tx, &scope, provider.as_str(), &event.id, outcome).await?;
        tx.commit().await?;
        if let Some(alert) = alert_of(outcome) {
            crate::alert_raised(alert);
        }
        tracing::info!(store_id = %store_id, %provider, event_type = %kind_text, outcome, "payment callback");
        Ok(CallbackOutcome {
            event_id: event.id,
            duplicate: false,
            outcome,
        })
    }

    /// The order a payment-intent event is about (by the gateway reference first, then
    /// by the order id in its metadata, for payments opened outside StormCom), locked for
    /// the rest of the transaction, and its payment as it is now. Racing events about
    /// one order queue on that lock, so each sees what the one before it did.
    async fn payment_target(
        &self,
        tx: &mut Tx,
        scope: &StoreScope,
        provider: Provider,
        event: &GatewayEvent,
    ) -> Result<Option<(Option<Payment>, Order)>> {
        let object = &event.data.object;
        let order_id = match store::payment_by_ref(tx, scope, provider.as_str(), &object.id).await? {
            Some(p) => Some(p.order_id),
            None => object.metadata.get(ORDER_METADATA).and_then(|o| o.parse().ok()),
        };
        let Some(order_id) = order_id else { return Ok(None) };
        let Some(order) = commerce::lock_order(tx, scope, order_id).await? else {
            return Ok(None);
        };
        let payment = store::payment_of_order(tx, scope, order_id).await?;
        Ok(Some((payment, order)))
    }

    /// Flags the order for staff: alert, audit entry and domain event, in `tx`.
    #[expect(clippy::too_many_arguments, reason = "one transaction's worth of context")]
    async fn flag_payment(
        &self,
        tx: &mut Tx,
        scope: &StoreScope,
        order: &Order,
        payment: &Payment,
        alert: &'static str,
        detail: &str,
        actor: &str,
    ) -> Result<()> {
        commerce::flag_order(tx, scope, order.id, detail).await?;
        commerce::raise_alert(tx, scope, alert, &order.id.to_string(), detail).await?;
        let summary = [("order", order.id.to_string()), ("reason", alert.to_owned())];
        audit::append(
            tx,
            scope,
            entry(actor.to_owned(), None, "payment.flagged", payment.id, &summary),
        )
        .await?;
        emit(tx, scope, "payment.flagged", order, &[("reason", alert.to_owned())]).await?;
        tracing::warn!(store_id = %scope.store_id(), order = %order.id, alert, "payment flagged");
        Ok(())
    }

    /// Records the gateway's payment for the order if it has none yet.
    async fn payment_for(
        &self,
        tx: &mut Tx,
        scope: &StoreScope,
        provider: Provider,
        event: &GatewayEvent,
        order: &Order,
        existing: Option<Payment>,
    ) -> Result<Payment> {
        if let Some(p) = existing {
            return Ok(p);
        }
        let now = OffsetDateTime::now_utc();
        let payment = Payment {
            id: PaymentId::generate(),
            order_id: order.id,
            provider: provider.as_str().to_owned(),
            provider_ref: event.data.object.id.clone(),
            status: "pending".into(),
            amount: order.total,
            currency: order.currency.clone(),
            captured_amount: 0,
            refunded_amount: 0,
            created_at: now,
            updated_at: now,
        };
        store::insert_payment(tx, scope, &payment).await?;
        Ok(payment)
    }

    async fn on_captured(
        &self,
        tx: &mut Tx,
        scope: &StoreScope,
        provider: Provider,
        event: &GatewayEvent,
        actor: &str,
    ) -> Result<&'static str> {
        let Some((payment, order)) = self.payment_target(tx, scope, provider, event).await? else {
            tracing::warn!(store_id = %scope.store_id(), event_id = %event.id, "payment for an unknown order");
            return Ok("ignored_unknown_order");
        };
        let object = &event.data.object;
        if let Some(other) = payment.as_ref().filter(|p| !is_about(p, provider, event)) {
            // Money taken on another intent than the order's payment: maybe a double
            // charge. Nothing is settled; staff decide what to refund.
            let detail = format!(
                "the gateway captured {} on {} {}, but the order's payment is {} {}; refund one",
                object.amount.unwrap_or(-1),
                provider,
                object.id,
                other.provider,
                other.provider_ref
            );
            self.flag_payment(tx, scope, &order, other, "payment_for_other_intent", &detail, actor)
                .await?;
            return Ok("flagged_other_payment");
        }
        let payment = self.payment_for(tx, scope, provider, event, &order, payment).await?;
        // A failed payment retried successfully at the gateway: the order was cancelled
        // and its stock released, so the money must be flagged for a refund.
        let settle_from = match payment.status.as_str() {
            "pending" => "pending",
            "failed" => "failed",
            _ => return Ok("ignored_already_settled"),
        };
        let amount = object.amount.unwrap_or(-1);
        let currency_matches = object
            .currency
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&order.currency));
        let captured = amount.max(0);
        let problem = if amount != order.total || !currency_matches {
            Some((
                "payment_mismatch",
                format!(
                    "the gateway captured {amount} {} for an order of {} {}",
                    object.currency.as_deref().unwrap_or("?").to_uppercase(),
                    order.total,
                    order.currency
                ),
                "flagged_amount_mismatch",
            ))
        } else if settle_from != "pending"
            || !commerce::transition_order(
                tx,
                scope,
                order.id,
                OrderStatus::PendingPayment,
                OrderStatus::Paid,
                None,
            )
            .await?
        {
            let now = commerce::find_order(tx, scope, order.id)
                .await?
                .map_or(order.status, |o| o.status);
            Some((
                "payment_for_closed_order",
                format!("the gateway captured {amount} for an order that is {now}; refund it"),
                "flagged_order_not_payable",
            ))
        } else {
            None
        };

        if let Some((alert, detail, outcome)) = problem {
            if !store::settle_payment(tx, scope, payment.id, settle_from, "flagged", captured).await? {
                return Err(moved_under_lock());
            }
            self.flag_payment(tx, scope, &order, &payment, alert, &detail, actor)
                .await?;
            return Ok(outcome);
        }

        if !store::settle_payment(tx, scope, payment.id, "pending", "captured", captured).await? {
            return Err(moved_under_lock());
        }
        let units = commerce::settle_reservations(tx, scope, order.id, true, actor).await?;
        let summary = [
            ("order", order.id.to_string()),
            ("amount", captured.to_string()),
            ("provider", provider.as_str().to_owned()),
        ];
        audit::append(
            tx,
            scope,
            entry(actor.to_owned(), None, "payment.captured", payment.id, &summary),
        )
        .await?;
        audit::append(
            tx,
            scope,
            entry(
                actor.to_owned(),
                None,
                "order.paid",
                order.id,
                &[("committed_units", units.to_string())],
            ),
        )
        .await?;
        emit(
            tx,
            scope,
            "payment.captured",
            &order,
            &[("payment_id", payment.id.to_string()), ("amount", captured.to_string())],
        )
        .await?;
        emit(tx, scope, "order.paid", &order, &[("total", order.total.to_string())]).await?;
        Ok("captured")
    }

    async fn on_failed(
        &self,
        tx: &mut Tx,
        scope: &StoreScope,
        provider: Provider,
        event: &GatewayEvent,
        actor: &str,
    ) -> Result<&'static str> {
        let Some((payment, order)) = self.payment_target(tx, scope, provider, event).await? else {
            return Ok("ignored_unknown_order");
        };
        // Decided before anything is written: an ignored event changes nothing.
        if payment.as_ref().is_some_and(|p| !is_about(p, provider, event)) {
            return Ok("ignored_other_payment");
        }
        if payment.as_ref().is_some_and(|p| p.status != "pending") {
            return Ok("ignored_already_settled");
        }
        if order.status != OrderStatus::PendingPayment {
            return Ok("ignored_order_not_pending");
        }
        let payment = self.payment_for(tx, scope, provider, event, &order, payment).await?;
        if !store::settle_payment(tx, scope, payment.id, "pending", "failed", 0).await?
            || !commerce::transition_order(
                tx,
                scope,
                order.id,
                OrderStatus::PendingPayment,
                OrderStatus::Cancelled,
                None,
            )
            .await?
        {
            return Err(moved_under_lock());
        }
        self.unwind(tx, scope, &order, actor).await?;
        let summary = [("order", order.id.to_string())];
        audit::append(
            tx,
            scope,
            entry(actor.to_owned(), None, "payment.failed", payment.id, &summary),
        )
        .await?;
        audit::append(
            tx,
            scope,
            entry(
                actor.to_owned(),
                None,
                "order.cancelled",
                order.id,
                &[("reason", "payment_failed".to_owned())],
            ),
        )
        .await?;
        emit(
            tx,
            scope,
            "payment.failed",
            &order,
            &[("payment_id", payment.id.to_string())],
        )
        .await?;
        emit(
            tx,
            scope,
            "order.cancelled",
            &order,
            &[("reason", "payment_failed".to_owned())],
        )
        .await?;
        Ok("payment_failed")
    }

    /// Builds and signs the event the `test` gateway would send about an order. Read
    /// only: deliver it to the callback endpoint to make it happen.
    pub async fn simulate_gateway_event(
        &self,
        store_id: StoreId,
        order_id: OrderId,
        what: Simulated,
        amount: Option<i64>,
        refund: Option<RefundId>,
        timestamp: Option<i64>,
    ) -> Result<SignedEvent> {
        let mut reader = self.db().reader().await?;
        let store_row = tenancy::find_store_by_id(&mut reader, store_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let scope = store_row.scope();
        let settings = store::find_provider(&mut reader, &scope, Provider::Test.as_str())
            .await?
            .ok_or_else(|| {
                conflict(
                    "provider_not_configured",
                    "configure the test provider for this store first",
                )
            })?;
        let secret = self.open_field(
            store_id,
            &provider_row(Provider::Test),
            SECRET_FIELD,
            &settings.webhook_secret,
        )?;
        let order = commerce::find_order(&mut reader, &scope, order_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let payment = store::payment_of_order(&mut reader, &scope, order_id).await?;
        let intent = payment.as_ref().map_or_else(
            || format!("pi_test_{}", order_id.as_uuid().simple()),
            |p| p.provider_ref.clone(),
        );
        let currency = order.currency.to_lowercase();
        let (kind, object) = match what {
            Simulated::Succeeded | Simulated::Failed => {
                let succeeded = what == Simulated::Succeeded;
                (
                    if succeeded {
                        "payment_intent.succeeded"
                    } else {
                        "payment_intent.payment_failed"
                    },
                    json!({
                        "id": intent,
                        "object": "payment_intent",
                        "amount": amount.unwrap_or(order.total),
                        "currency": currency,
                        "status": if succeeded { "succeeded" } else { "requires_payment_method" },
                        "metadata": { ORDER_METADATA: order_id.to_string() },
                    }),
                )
            }
            Simulated::Refunded => {
                let refund = match refund {
                    Some(id) => Some(
                        store::find_refund(&mut reader, &scope, id)
                            .await?
                            .filter(|r| r.order_id == order_id)
                            .ok_or(AppError::NotFound)?,
                    ),
                    None => None,
                };
                let left = payment.as_ref().map_or(0, |p| p.captured_amount - p.refunded_amount);
                let mut metadata = serde_json::Map::new();
                if let Some(r) = &refund {
                    metadata.insert(REFUND_METADATA.into(), r.id.to_string().into());
                }
                let refund_ref = match refund.as_ref().and_then(|r| r.provider_ref.clone()) {
                    Some(r) => r,
                    None => format!("re_test_{}", random_hex(12)?),
                };
                (
                    "refund.updated",
                    json!({
                        "id": refund_ref,
                        "object": "refund",
                        "amount": amount.or(refund.as_ref().map(|r| r.amount)).unwrap_or(left),
                        "currency": currency,
                        "payment_intent": intent,
                        "status": "succeeded",
                        "metadata": metadata,
                    }),
                )
            }
        };
        let event_id = format!("evt_test_{}", random_hex(12)?);
        let created = timestamp.unwrap_or_else(unix_now);
        let body = json!({
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": created,
            "livemode": false,
            "data": { "object": object },
        })
        .to_string();
        let signature = gateway::sign(&secret, created, body.as_bytes());
        Ok(SignedEvent {
            event_id,
            body,
            signature,
        })
    }

    /// Forgets processed gateway events older than the retention (at least 30 days:
    /// gateways redeliver for days). Returns how many were removed.
    pub async fn purge_processed_events(&self) -> Result<u64> {
        let retention = self.config.processed_event_retention.max(MIN_EVENT_RETENTION);
        let before = OffsetDateTime::now_utc() - retention;
        let mut tx = self.db().begin().await?;
        let n = store::purge_events(&mut tx, before).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Whether a gateway event is about this payment (same provider and intent).
fn is_about(payment: &Payment, provider: Provider, event: &GatewayEvent) -> bool {
    payment.provider == provider.as_str() && payment.provider_ref == event.data.object.id
}

/// A conditional update that cannot miss under the order's lock did: roll back (the
/// gateway retries the event).
fn moved_under_lock() -> AppError {
    AppError::Internal("a payment changed under its order's lock".into())
}

/// Ledger rows are never purged sooner than this, whatever the configuration says.
pub const MIN_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

fn signature_error(e: SignatureError) -> AppError {
    AppError::BadRequest {
        code: e.code(),
        message: e.message().into(),
    }
}

/// A refund event: confirms or fails a refund StormCom asked for (matched by the
/// gateway's refund id or our id in its metadata, so nothing is counted twice), or
/// records one made directly at the gateway, if it fits in what is left to refund.
async fn on_refund(
    tx: &mut Tx,
    scope: &StoreScope,
    provider: Provider,
    event: &GatewayEvent,
    actor: &str,
) -> Result<&'static str> {
    let object = &event.data.object;
    let Some(intent) = object.payment_intent.as_deref() else {
        return Ok("ignored_unknown_payment");
    };
    let Some(payment) = store::payment_by_ref(tx, scope, provider.as_str(), intent).await? else {
        return Ok("ignored_unknown_payment");
    };
    let Some(order) = commerce::find_order(tx, scope, payment.order_id).await? else {
        return Ok("ignored_unknown_payment");
    };
    let status = match object.status.as_deref() {
        Some("succeeded") => "succeeded",
        Some("failed" | "canceled") => "failed",
        _ => "pending",
    };
    let by_ref = store::refund_by_ref(tx, scope, payment.id, &object.id).await?;
    let matched = match by_ref {
        Some(r) => Some(r),
        None => match object.metadata.get(REFUND_METADATA).and_then(|id| id.parse().ok()) {
            Some(id) => store::find_refund(tx, scope, id)
                .await?
                .filter(|r| r.payment_id == payment.id),
            None => None,
        },
    };

    if let Some(refund) = matched {
        if object.amount.is_some_and(|a| a != refund.amount) {
            let detail = format!(
                "the gateway refunded {} where refund {} asked for {}",
                object.amount.unwrap_or_default(),
                refund.id,
                refund.amount
            );
            commerce::raise_alert(tx, scope, "refund_mismatch", &refund.id.to_string(), &detail).await?;
            audit::append(
                tx,
                scope,
                entry(actor.to_owned(), None, "refund.flagged", refund.id, &[]),
            )
            .await?;
            return Ok("flagged_refund_mismatch");
        }
        if status == "pending" || !store::settle_refund(tx, scope, refund.id, status, Some(&object.id)).await? {
            return Ok("ignored_refund_unchanged");
        }
        if status == "failed" {
            store::release_refund(tx, scope, payment.id, refund.amount).await?;
        }
        let action = if status == "failed" {
            "refund.failed"
        } else {
            "refund.succeeded"
        };
        audit::append(
            tx,
            scope,
            entry(
                actor.to_owned(),
                None,
                action,
                refund.id,
                &[("amount", refund.amount.to_string())],
            ),
        )
        .await?;
        emit(tx, scope, action, &order, &[("refund_id", refund.id.to_string())]).await?;
        return Ok(if status == "failed" {
            "refund_failed"
        } else {
            "refund_confirmed"
        });
    }

    if status == "failed" {
        return Ok("ignored_failed_unknown_refund");
    }
    let Some(amount) = object.amount.filter(|a| *a > 0) else {
        return Ok("ignored_malformed_refund");
    };
    if !store::hold_refund(tx, scope, payment.id, amount).await? {
        let detail = format!(
            "the gateway reports a refund of {amount} but only {} of the capture is left",
            payment.captured_amount - payment.refunded_amount
        );
        commerce::raise_alert(tx, scope, "refund_exceeds_captured", &payment.id.to_string(), &detail).await?;
        audit::append(
            tx,
            scope,
            entry(actor.to_owned(), None, "refund.flagged", payment.id, &[]),
        )
        .await?;
        return Ok("flagged_refund_exceeds_captured");
    }
    let now = OffsetDateTime::now_utc();
    let refund = Refund {
        id: RefundId::generate(),
        order_id: order.id,
        payment_id: payment.id,
        amount,
        reason: "refunded at the gateway".into(),
        status: status.into(),
        source: "gateway".into(),
        provider_ref: Some(object.id.clone()),
        created_by: actor.to_owned(),
        created_at: now,
        updated_at: now,
    };
    store::insert_refund(tx, scope, &refund).await?;
    audit::append(
        tx,
        scope,
        entry(
            actor.to_owned(),
            None,
            "refund.recorded",
            refund.id,
            &[("amount", amount.to_string()), ("order", order.id.to_string())],
        ),
    )
    .await?;
    emit(
        tx,
        scope,
        "refund.recorded",
        &order,
        &[("refund_id", refund.id.to_string()), ("amount", amount.to_string())],
    )
    .await?;
    Ok("refund_recorded")
}
