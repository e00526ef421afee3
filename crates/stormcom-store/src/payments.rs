//! Payment providers, payments, refunds, the ledger of processed gateway events, and
//! Idempotency-Key records. Money only moves through conditional UPDATEs: a capture from
//! `pending`, a refund only while `refunded + amount <= captured` (and a CHECK behind it).

use sqlx::FromRow;
use stormcom_domain::{OrderId, PaymentId, RefundId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, StoreScope, Tx, dispatch, now};

// ---------------------------------------------------------------- providers

/// A store's settings for one provider; the secret is sealed by the caller.
#[derive(Debug, Clone, FromRow)]
pub struct ProviderSettings {
    pub provider: String,
    pub webhook_secret: Vec<u8>,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

pub async fn upsert_provider(
    tx: &mut Tx,
    scope: &StoreScope,
    provider: &str,
    sealed_secret: &[u8],
    enabled: bool,
) -> Result<ProviderSettings> {
    Ok(dispatch!(tx, c => sqlx::query_as(
        "INSERT INTO payment_providers (store_id, provider, webhook_secret, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (store_id, provider) DO UPDATE \
         SET webhook_secret = excluded.webhook_secret, enabled = excluded.enabled, updated_at = excluded.updated_at \
         RETURNING provider, webhook_secret, enabled, created_at, updated_at",
    )
    .bind(scope.uuid())
    .bind(provider)
    .bind(sealed_secret)
    .bind(enabled)
    .bind(now())
    .fetch_one(&mut *c)
    .await?))
}

pub async fn find_provider(
    h: &mut impl Handle,
    scope: &StoreScope,
    provider: &str,
) -> Result<Option<ProviderSettings>> {
    Ok(dispatch!(h, c => sqlx::query_as(
        "SELECT provider, webhook_secret, enabled, created_at, updated_at FROM payment_providers \
         WHERE store_id = $1 AND provider = $2",
    )
    .bind(scope.uuid())
    .bind(provider)
    .fetch_optional(&mut *c)
    .await?))
}

pub async fn list_providers(h: &mut impl Handle, scope: &StoreScope) -> Result<Vec<ProviderSettings>> {
    Ok(dispatch!(h, c => sqlx::query_as(
        "SELECT provider, webhook_secret, enabled, created_at, updated_at FROM payment_providers \
         WHERE store_id = $1 ORDER BY provider",
    )
    .bind(scope.uuid())
    .fetch_all(&mut *c)
    .await?))
}

// ---------------------------------------------------------------- payments

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub provider: String,
    pub provider_ref: String,
    /// pending, captured, failed or flagged.
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(FromRow)]
struct PaymentRow {
    id: Uuid,
    order_id: Uuid,
    provider: String,
    provider_ref: String,
    status: String,
    amount: i64,
    currency: String,
    captured_amount: i64,
    refunded_amount: i64,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<PaymentRow> for Payment {
    fn from(r: PaymentRow) -> Self {
        Self {
            id: PaymentId::from_uuid(r.id),
            order_id: OrderId::from_uuid(r.order_id),
            provider: r.provider,
            provider_ref: r.provider_ref,
            status: r.status,
            amount: r.amount,
            currency: r.currency,
            captured_amount: r.captured_amount,
            refunded_amount: r.refunded_amount,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! payment_columns {
    () => {
        "id, order_id, provider, provider_ref, status, amount, currency, captured_amount, refunded_amount, created_at, updated_at"
    };
}

pub async fn insert_payment(tx: &mut Tx, scope: &StoreScope, p: &Payment) -> Result<()> {
    dispatch!(tx, c => sqlx::query(concat!(
        "INSERT INTO payments (store_id, ", payment_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(scope.uuid())
    .bind(p.id.as_uuid())
    .bind(p.order_id.as_uuid())
    .bind(&p.provider)
    .bind(&p.provider_ref)
    .bind(&p.status)
    .bind(p.amount)
    .bind(&p.currency)
    .bind(p.captured_amount)
    .bind(p.refunded_amount)
    .bind(p.created_at)
    .bind(p.updated_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

pub async fn payment_of_order(h: &mut impl Handle, scope: &StoreScope, order: OrderId) -> Result<Option<Payment>> {
    let row: Option<PaymentRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", payment_columns!(), " FROM payments WHERE store_id = $1 AND order_id = $2"
    ))
    .bind(scope.uuid())
    .bind(order.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(Payment::from))
}

pub async fn payment_by_ref(
    h: &mut impl Handle,
    scope: &StoreScope,
    provider: &str,
    provider_ref: &str,
) -> Result<Option<Payment>> {
    let row: Option<PaymentRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", payment_columns!(), " FROM payments WHERE store_id = $1 AND provider = $2 AND provider_ref = $3"
    ))
    .bind(scope.uuid())
    .bind(provider)
    .bind(provider_ref)
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(Payment::from))
}

/// Moves a payment from `from` to `status` with what the gateway reported. `false` when
/// it was no longer in `from` (a racing event settled it first).
pub async fn settle_payment(
    tx: &mut Tx,
    scope: &StoreScope,
    id: PaymentId,
    from: &str,
    status: &str,
    captured_amount: i64,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE payments SET status = $3, captured_amount = $4, updated_at = $5 \
         WHERE store_id = $1 AND id = $2 AND status = $6",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(status)
    .bind(captured_amount)
    .bind(now())
    .bind(from)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Takes `amount` out of what is left to refund, atomically. `false` when it does not
/// fit (or the payment was never captured): nothing changed then. The comparison is
/// written so that no amount can overflow it.
pub async fn hold_refund(tx: &mut Tx, scope: &StoreScope, payment: PaymentId, amount: i64) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE payments SET refunded_amount = refunded_amount + $3, updated_at = $4 \
         WHERE store_id = $1 AND id = $2 AND status IN ('captured', 'flagged') AND $3 <= captured_amount - refunded_amount",
    )
    .bind(scope.uuid())
    .bind(payment.as_uuid())
    .bind(amount)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Gives back the amount of a refund that failed at the gateway.
pub async fn release_refund(tx: &mut Tx, scope: &StoreScope, payment: PaymentId, amount: i64) -> Result<()> {
    dispatch!(tx, c => sqlx::query(
        "UPDATE payments SET refunded_amount = refunded_amount - $3, updated_at = $4 WHERE store_id = $1 AND id = $2",
    )
    .bind(scope.uuid())
    .bind(payment.as_uuid())
    .bind(amount)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

// ---------------------------------------------------------------- refunds

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    pub amount: i64,
    pub reason: String,
    /// pending, succeeded or failed.
    pub status: String,
    /// api (staff asked) or gateway (done at the gateway, learnt from its event).
    pub source: String,
    pub provider_ref: Option<String>,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(FromRow)]
struct RefundRow {
    id: Uuid,
    order_id: Uuid,
    payment_id: Uuid,
    amount: i64,
    reason: String,
    status: String,
    source: String,
    provider_ref: Option<String>,
    created_by: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<RefundRow> for Refund {
    fn from(r: RefundRow) -> Self {
        Self {
            id: RefundId::from_uuid(r.id),
            order_id: OrderId::from_uuid(r.order_id),
            payment_id: PaymentId::from_uuid(r.payment_id),
            amount: r.amount,
            reason: r.reason,
            status: r.status,
            source: r.source,
            provider_ref: r.provider_ref,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

macro_rules! refund_columns {
    () => {
        "id, order_id, payment_id, amount, reason, status, source, provider_ref, created_by, created_at, updated_at"
    };
}

pub async fn insert_refund(tx: &mut Tx, scope: &StoreScope, r: &Refund) -> Result<()> {
    dispatch!(tx, c => sqlx::query(concat!(
        "INSERT INTO refunds (store_id, ", refund_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(scope.uuid())
    .bind(r.id.as_uuid())
    .bind(r.order_id.as_uuid())
    .bind(r.payment_id.as_uuid())
    .bind(r.amount)
    .bind(&r.reason)
    .bind(&r.status)
    .bind(&r.source)
    .bind(r.provider_ref.as_deref())
    .bind(&r.created_by)
    .bind(r.created_at)
    .bind(r.updated_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

pub async fn find_refund(h: &mut impl Handle, scope: &StoreScope, id: RefundId) -> Result<Option<Refund>> {
    let row: Option<RefundRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", refund_columns!(), " FROM refunds WHERE store_id = $1 AND id = $2"
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(Refund::from))
}

pub async fn refund_by_ref(
    h: &mut impl Handle,
    scope: &StoreScope,
    payment: PaymentId,
    provider_ref: &str,
) -> Result<Option<Refund>> {
    let row: Option<RefundRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", refund_columns!(), " FROM refunds WHERE store_id = $1 AND payment_id = $2 AND provider_ref = $3"
    ))
    .bind(scope.uuid())
    .bind(payment.as_uuid())
    .bind(provider_ref)
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(Refund::from))
}

pub async fn refunds_of_order(h: &mut impl Handle, scope: &StoreScope, order: OrderId) -> Result<Vec<Refund>> {
    let rows: Vec<RefundRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", refund_columns!(), " FROM refunds WHERE store_id = $1 AND order_id = $2 ORDER BY id"
    ))
    .bind(scope.uuid())
    .bind(order.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    Ok(rows.into_iter().map(Refund::from).collect())
}

/// Settles a pending refund (succeeded or failed), recording the gateway's reference.
/// `false` when it was settled already.
pub async fn settle_refund(
    tx: &mut Tx,
    scope: &StoreScope,
    id: RefundId,
    status: &str,
    provider_ref: Option<&str>,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE refunds SET status = $3, provider_ref = COALESCE(provider_ref, $4), updated_at = $5 \
         WHERE store_id = $1 AND id = $2 AND status = 'pending'",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(status)
    .bind(provider_ref)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

// ---------------------------------------------------------------- processed gateway events

/// Claims a gateway event for this transaction. `false` means it was processed before
/// (or is being processed by a transaction that will commit first): do nothing.
pub async fn claim_event(
    tx: &mut Tx,
    scope: &StoreScope,
    provider: &str,
    event_id: &str,
    event_type: &str,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "INSERT INTO processed_webhook_events (store_id, provider, event_id, event_type, outcome, received_at) \
         VALUES ($1, $2, $3, $4, 'processing', $5) ON CONFLICT (store_id, provider, event_id) DO NOTHING",
    )
    .bind(scope.uuid())
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

pub async fn set_event_outcome(
    tx: &mut Tx,
    scope: &StoreScope,
    provider: &str,
    event_id: &str,
    outcome: &str,
) -> Result<()> {
    dispatch!(tx, c => sqlx::query(
        "UPDATE processed_webhook_events SET outcome = $4 WHERE store_id = $1 AND provider = $2 AND event_id = $3",
    )
    .bind(scope.uuid())
    .bind(provider)
    .bind(event_id)
    .bind(outcome)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

/// (event id, type, outcome) of a store's processed events, newest first.
pub async fn processed_events(
    h: &mut impl Handle,
    scope: &StoreScope,
    limit: u32,
) -> Result<Vec<(String, String, String)>> {
    Ok(dispatch!(h, c => sqlx::query_as(
        "SELECT event_id, event_type, outcome FROM processed_webhook_events WHERE store_id = $1 \
         ORDER BY received_at DESC LIMIT $2",
    )
    .bind(scope.uuid())
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?))
}

/// Forgets events received before `before` (all stores). Returns how many.
pub async fn purge_events(tx: &mut Tx, before: OffsetDateTime) -> Result<u64> {
    Ok(
        dispatch!(tx, c => sqlx::query("DELETE FROM processed_webhook_events WHERE received_at < $1")
        .bind(before)
        .execute(&mut *c)
        .await?
        .rows_affected()),
    )
}

// ---------------------------------------------------------------- Idempotency-Key records

/// Whose key it is: the store (nil for routes outside one), the principal, the key.
#[derive(Debug, Clone, Copy)]
pub struct KeyOwner<'a> {
    pub store: Uuid,
    pub principal: &'a str,
    pub key: &'a str,
}

impl KeyOwner<'_> {
    #[must_use]
    pub fn store_of(scope: Option<&StoreScope>) -> Uuid {
        scope.map_or(Uuid::nil(), StoreScope::uuid)
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct KeyRecord {
    pub request_hash: Vec<u8>,
    /// in_progress or done.
    pub status: String,
    pub response_status: Option<i32>,
    pub response_body: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Inserts an in-progress record; `false` when one exists already.
pub async fn claim_key(
    tx: &mut Tx,
    owner: KeyOwner<'_>,
    request_hash: &[u8],
    expires_at: OffsetDateTime,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "INSERT INTO idempotency_keys (store_id, principal, key, request_hash, status, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, 'in_progress', $5, $6) ON CONFLICT (store_id, principal, key) DO NOTHING",
    )
    .bind(owner.store)
    .bind(owner.principal)
    .bind(owner.key)
    .bind(request_hash)
    .bind(now())
    .bind(expires_at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

pub async fn find_key(h: &mut impl Handle, owner: KeyOwner<'_>) -> Result<Option<KeyRecord>> {
    Ok(dispatch!(h, c => sqlx::query_as(
        "SELECT request_hash, status, response_status, response_body, created_at, expires_at FROM idempotency_keys \
         WHERE store_id = $1 AND principal = $2 AND key = $3",
    )
    .bind(owner.store)
    .bind(owner.principal)
    .bind(owner.key)
    .fetch_optional(&mut *c)
    .await?))
}

pub async fn complete_key(tx: &mut Tx, owner: KeyOwner<'_>, status: u16, sealed_body: &[u8]) -> Result<()> {
    dispatch!(tx, c => sqlx::query(
        "UPDATE idempotency_keys SET status = 'done', response_status = $4, response_body = $5 \
         WHERE store_id = $1 AND principal = $2 AND key = $3",
    )
    .bind(owner.store)
    .bind(owner.principal)
    .bind(owner.key)
    .bind(i32::from(status))
    .bind(sealed_body)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

/// Removes a record: the request failed in a way worth retrying, or it expired.
pub async fn delete_key(tx: &mut Tx, owner: KeyOwner<'_>, expired_only: bool) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "DELETE FROM idempotency_keys WHERE store_id = $1 AND principal = $2 AND key = $3 AND (NOT $4 OR expires_at <= $5)",
    )
    .bind(owner.store)
    .bind(owner.principal)
    .bind(owner.key)
    .bind(expired_only)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

pub async fn purge_keys(tx: &mut Tx, at: OffsetDateTime) -> Result<u64> {
    Ok(
        dispatch!(tx, c => sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected()),
    )
}
