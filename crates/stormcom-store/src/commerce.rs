//! Customers, discount codes, carts, orders, reservations, domain events and alerts:
//! the storage half of checkout. Every stock and counter change is one conditional
//! statement, guarded again by the table's CHECK constraints.

use sqlx::FromRow;
use stormcom_domain::checkout::{DiscountKind, OrderStatus};
use stormcom_domain::{AlertId, CartId, CartLineId, CustomerId, DiscountId, OrderId, ProductId, VariantId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Conn, Handle, Result, StoreError, StoreScope, Tx, dispatch, insert_movement, now};

fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

// ---------------------------------------------------------------- customers

/// Finds or creates the customer with this blind index; returns their id. The sealed
/// fields are written by [`set_customer_fields`] once the id (part of their associated
/// data) is known.
pub async fn upsert_customer(tx: &mut Tx, scope: &StoreScope, email_index: &[u8]) -> Result<CustomerId> {
    let at = now();
    let id: Uuid = dispatch!(tx, c => sqlx::query_scalar(
        "INSERT INTO customers (store_id, id, email_index, email, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (store_id, email_index) DO UPDATE SET updated_at = excluded.updated_at RETURNING id",
    )
    .bind(scope.uuid())
    .bind(CustomerId::generate().as_uuid())
    .bind(email_index)
    .bind(&[] as &[u8])
    .bind(at)
    .fetch_one(&mut *c)
    .await?);
    Ok(CustomerId::from_uuid(id))
}

pub async fn set_customer_fields(
    tx: &mut Tx,
    scope: &StoreScope,
    id: CustomerId,
    email: &[u8],
    name: Option<&[u8]>,
    address: Option<&[u8]>,
) -> Result<()> {
    dispatch!(tx, c => sqlx::query("UPDATE customers SET email = $3, name = $4, address = $5 WHERE store_id = $1 AND id = $2")
        .bind(scope.uuid())
        .bind(id.as_uuid())
        .bind(email)
        .bind(name)
        .bind(address)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(())
}

/// A customer's sealed fields.
#[derive(Debug, Clone, FromRow)]
pub struct SealedCustomer {
    pub email: Vec<u8>,
    pub name: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
}

pub async fn find_customer(h: &mut impl Handle, scope: &StoreScope, id: CustomerId) -> Result<Option<SealedCustomer>> {
    Ok(
        dispatch!(h, c => sqlx::query_as("SELECT email, name, address FROM customers WHERE store_id = $1 AND id = $2")
        .bind(scope.uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *c)
        .await?),
    )
}

// ---------------------------------------------------------------- discounts

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountFields {
    pub code: String,
    pub kind: DiscountKind,
    pub value: i64,
    pub starts_at: Option<OffsetDateTime>,
    pub ends_at: Option<OffsetDateTime>,
    pub min_subtotal: i64,
    pub usage_limit: Option<i64>,
    pub per_customer_limit: Option<i64>,
    pub velocity_per_minute: Option<i64>,
    /// active, disabled or frozen.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    pub id: DiscountId,
    pub fields: DiscountFields,
    pub times_used: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(FromRow)]
struct DiscountRow {
    id: Uuid,
    code: String,
    kind: String,
    value: i64,
    starts_at: Option<OffsetDateTime>,
    ends_at: Option<OffsetDateTime>,
    min_subtotal: i64,
    usage_limit: Option<i64>,
    per_customer_limit: Option<i64>,
    velocity_per_minute: Option<i64>,
    times_used: i64,
    status: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<DiscountRow> for Discount {
    type Error = StoreError;

    fn try_from(r: DiscountRow) -> Result<Self> {
        Ok(Self {
            id: DiscountId::from_uuid(r.id),
            fields: DiscountFields {
                code: r.code,
                kind: r
                    .kind
                    .parse()
                    .map_err(|()| corrupt(format!("discount kind '{}'", r.kind)))?,
                value: r.value,
                starts_at: r.starts_at,
                ends_at: r.ends_at,
                min_subtotal: r.min_subtotal,
                usage_limit: r.usage_limit,
                per_customer_limit: r.per_customer_limit,
                velocity_per_minute: r.velocity_per_minute,
                status: r.status,
            },
            times_used: r.times_used,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

macro_rules! discount_columns {
    () => {
        "id, code, kind, value, starts_at, ends_at, min_subtotal, usage_limit, per_customer_limit, velocity_per_minute, \
         times_used, status, created_at, updated_at"
    };
}

pub async fn insert_discount(tx: &mut Tx, scope: &StoreScope, code_key: &str, f: &DiscountFields) -> Result<Discount> {
    let id = DiscountId::generate();
    let at = now();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO discount_codes (store_id, id, code, code_key, kind, value, starts_at, ends_at, min_subtotal, usage_limit, \
         per_customer_limit, velocity_per_minute, times_used, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13, $14, $14)",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(&f.code)
    .bind(code_key)
    .bind(f.kind.as_str())
    .bind(f.value)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.min_subtotal)
    .bind(f.usage_limit)
    .bind(f.per_customer_limit)
    .bind(f.velocity_per_minute)
    .bind(&f.status)
    .bind(at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(Discount {
        id,
        fields: f.clone(),
        times_used: 0,
        created_at: at,
        updated_at: at,
    })
}

/// Replaces the editable fields (never `times_used`, which only redemptions move).
pub async fn update_discount(
    tx: &mut Tx,
    scope: &StoreScope,
    id: DiscountId,
    f: &DiscountFields,
) -> Result<Option<Discount>> {
    let row: Option<DiscountRow> = dispatch!(tx, c => sqlx::query_as(concat!(
        "UPDATE discount_codes SET kind = $3, value = $4, starts_at = $5, ends_at = $6, min_subtotal = $7, usage_limit = $8, \
         per_customer_limit = $9, velocity_per_minute = $10, status = $11, updated_at = $12 \
         WHERE store_id = $1 AND id = $2 RETURNING ", discount_columns!()
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(f.kind.as_str())
    .bind(f.value)
    .bind(f.starts_at)
    .bind(f.ends_at)
    .bind(f.min_subtotal)
    .bind(f.usage_limit)
    .bind(f.per_customer_limit)
    .bind(f.velocity_per_minute)
    .bind(&f.status)
    .bind(now())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Discount::try_from).transpose()
}

pub async fn find_discount(h: &mut impl Handle, scope: &StoreScope, id: DiscountId) -> Result<Option<Discount>> {
    let row: Option<DiscountRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", discount_columns!(), " FROM discount_codes WHERE store_id = $1 AND id = $2"
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Discount::try_from).transpose()
}

pub async fn find_discount_by_code(
    h: &mut impl Handle,
    scope: &StoreScope,
    code_key: &str,
) -> Result<Option<Discount>> {
    let row: Option<DiscountRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", discount_columns!(), " FROM discount_codes WHERE store_id = $1 AND code_key = $2"
    ))
    .bind(scope.uuid())
    .bind(code_key)
    .fetch_optional(&mut *c)
    .await?);
    row.map(Discount::try_from).transpose()
}

pub async fn list_discounts(h: &mut impl Handle, scope: &StoreScope) -> Result<Vec<Discount>> {
    let rows: Vec<DiscountRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", discount_columns!(), " FROM discount_codes WHERE store_id = $1 ORDER BY id"
    ))
    .bind(scope.uuid())
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(Discount::try_from).collect()
}

/// What [`redeem`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// Counted; `recent` is how many redemptions the code had in the last minute.
    Redeemed {
        recent: i64,
        velocity_per_minute: Option<i64>,
    },
    /// This order already redeemed this code: nothing changed.
    AlreadyApplied,
    /// Not active, or the total usage limit is reached.
    Exhausted,
    /// The customer reached their limit. The caller must roll back.
    CustomerLimitReached,
}

/// Redeems a code for an order inside the checkout transaction. The conditional
/// increment takes the code's row lock, so redemptions of one code are serialised and
/// the per-customer count read after it is exact.
pub async fn redeem(
    tx: &mut Tx,
    scope: &StoreScope,
    discount: DiscountId,
    order: OrderId,
    customer_index: &[u8],
) -> Result<Redemption> {
    let at = now();
    let inserted = dispatch!(tx, c => sqlx::query(
        "INSERT INTO discount_redemptions (store_id, discount_id, order_id, customer_index, status, created_at) \
         VALUES ($1, $2, $3, $4, 'active', $5) ON CONFLICT (store_id, discount_id, order_id) DO NOTHING",
    )
    .bind(scope.uuid())
    .bind(discount.as_uuid())
    .bind(order.as_uuid())
    .bind(customer_index)
    .bind(at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    if inserted == 0 {
        return Ok(Redemption::AlreadyApplied);
    }
    let counted: Option<(Option<i64>, Option<i64>)> = dispatch!(tx, c => sqlx::query_as(
        "UPDATE discount_codes SET times_used = times_used + 1, updated_at = $3 \
         WHERE store_id = $1 AND id = $2 AND status = 'active' AND (usage_limit IS NULL OR times_used < usage_limit) \
         RETURNING per_customer_limit, velocity_per_minute",
    )
    .bind(scope.uuid())
    .bind(discount.as_uuid())
    .bind(at)
    .fetch_optional(&mut *c)
    .await?);
    let Some((per_customer, velocity)) = counted else {
        return Ok(Redemption::Exhausted);
    };
    let (mine, recent): (i64, i64) = dispatch!(tx, c => {
        let mine: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM discount_redemptions \
             WHERE store_id = $1 AND discount_id = $2 AND customer_index = $3 AND status = 'active'",
        )
        .bind(scope.uuid())
        .bind(discount.as_uuid())
        .bind(customer_index)
        .fetch_one(&mut *c)
        .await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM discount_redemptions WHERE store_id = $1 AND discount_id = $2 AND created_at > $3",
        )
        .bind(scope.uuid())
        .bind(discount.as_uuid())
        .bind(at - time::Duration::minutes(1))
        .fetch_one(&mut *c)
        .await?;
        (mine, recent)
    });
    if per_customer.is_some_and(|limit| mine > limit) {
        return Ok(Redemption::CustomerLimitReached);
    }
    Ok(Redemption::Redeemed {
        recent,
        velocity_per_minute: velocity,
    })
}

/// Gives a use back, at most once per (code, order). `true` when it did.
pub async fn give_back(tx: &mut Tx, scope: &StoreScope, discount: DiscountId, order: OrderId) -> Result<bool> {
    let at = now();
    let returned = dispatch!(tx, c => {
        let n = sqlx::query(
            "UPDATE discount_redemptions SET status = 'returned', returned_at = $4 \
             WHERE store_id = $1 AND discount_id = $2 AND order_id = $3 AND status = 'active'",
        )
        .bind(scope.uuid())
        .bind(discount.as_uuid())
        .bind(order.as_uuid())
        .bind(at)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if n > 0 {
            // A decrement, never an overwrite: concurrent redemptions keep their counts.
            sqlx::query("UPDATE discount_codes SET times_used = times_used - 1, updated_at = $3 WHERE store_id = $1 AND id = $2")
                .bind(scope.uuid())
                .bind(discount.as_uuid())
                .bind(at)
                .execute(&mut *c)
                .await?;
        }
        n > 0
    });
    Ok(returned)
}

/// Sets a code's status when it currently has `from`; `true` when it changed.
pub async fn set_discount_status(
    tx: &mut Tx,
    scope: &StoreScope,
    id: DiscountId,
    from: &str,
    to: &str,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE discount_codes SET status = $4, updated_at = $5 WHERE store_id = $1 AND id = $2 AND status = $3",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(from)
    .bind(to)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Active redemptions of a code (what `times_used` must equal).
pub async fn active_redemptions(h: &mut impl Handle, scope: &StoreScope, id: DiscountId) -> Result<i64> {
    Ok(dispatch!(h, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM discount_redemptions WHERE store_id = $1 AND discount_id = $2 AND status = 'active'",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_one(&mut *c)
    .await?))
}

// ---------------------------------------------------------------- carts

#[derive(Debug, Clone)]
pub struct Cart {
    pub id: CartId,
    pub secret_hash: Vec<u8>,
    pub email_index: Option<Vec<u8>>,
    pub email: Option<Vec<u8>>,
    pub name: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub discount_code: Option<String>,
    pub open: bool,
}

#[derive(FromRow)]
struct CartRow {
    id: Uuid,
    secret_hash: Vec<u8>,
    email_index: Option<Vec<u8>>,
    email: Option<Vec<u8>>,
    name: Option<Vec<u8>>,
    address: Option<Vec<u8>>,
    discount_code: Option<String>,
    status: String,
}

pub async fn create_cart(tx: &mut Tx, scope: &StoreScope, secret_hash: &[u8]) -> Result<CartId> {
    let id = CartId::generate();
    let at = now();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO carts (store_id, id, secret_hash, status, created_at, updated_at) VALUES ($1, $2, $3, 'open', $4, $4)",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(secret_hash)
    .bind(at)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(id)
}

pub async fn find_cart(h: &mut impl Handle, scope: &StoreScope, id: CartId) -> Result<Option<Cart>> {
    let row: Option<CartRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, secret_hash, email_index, email, name, address, discount_code, status FROM carts WHERE store_id = $1 AND id = $2",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    Ok(row.map(|r| Cart {
        id: CartId::from_uuid(r.id),
        secret_hash: r.secret_hash,
        email_index: r.email_index,
        email: r.email,
        name: r.name,
        address: r.address,
        discount_code: r.discount_code,
        open: r.status == "open",
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLine {
    pub id: CartLineId,
    pub variant_id: VariantId,
    pub quantity: i64,
}

pub async fn cart_lines(h: &mut impl Handle, scope: &StoreScope, cart: CartId) -> Result<Vec<CartLine>> {
    let rows: Vec<(Uuid, Uuid, i64)> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, variant_id, quantity FROM cart_lines WHERE store_id = $1 AND cart_id = $2 ORDER BY id",
    )
    .bind(scope.uuid())
    .bind(cart.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(id, variant, quantity)| CartLine {
            id: CartLineId::from_uuid(id),
            variant_id: VariantId::from_uuid(variant),
            quantity,
        })
        .collect())
}

pub async fn add_cart_line(
    tx: &mut Tx,
    scope: &StoreScope,
    cart: CartId,
    variant: VariantId,
    quantity: i64,
) -> Result<CartLineId> {
    let id = CartLineId::generate();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO cart_lines (store_id, cart_id, id, variant_id, quantity, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope.uuid())
    .bind(cart.as_uuid())
    .bind(id.as_uuid())
    .bind(variant.as_uuid())
    .bind(quantity)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(id)
}

pub async fn set_cart_line(
    tx: &mut Tx,
    scope: &StoreScope,
    cart: CartId,
    line: CartLineId,
    quantity: i64,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query("UPDATE cart_lines SET quantity = $4 WHERE store_id = $1 AND cart_id = $2 AND id = $3")
        .bind(scope.uuid())
        .bind(cart.as_uuid())
        .bind(line.as_uuid())
        .bind(quantity)
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(n > 0)
}

pub async fn remove_cart_line(tx: &mut Tx, scope: &StoreScope, cart: CartId, line: CartLineId) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query("DELETE FROM cart_lines WHERE store_id = $1 AND cart_id = $2 AND id = $3")
        .bind(scope.uuid())
        .bind(cart.as_uuid())
        .bind(line.as_uuid())
        .execute(&mut *c)
        .await?
        .rows_affected());
    Ok(n > 0)
}

/// Sets the sealed contact fields of an open cart.
pub async fn set_cart_contact(
    tx: &mut Tx,
    scope: &StoreScope,
    cart: CartId,
    email_index: &[u8],
    email: &[u8],
    name: Option<&[u8]>,
    address: Option<&[u8]>,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE carts SET email_index = $3, email = $4, name = $5, address = $6, updated_at = $7 \
         WHERE store_id = $1 AND id = $2 AND status = 'open'",
    )
    .bind(scope.uuid())
    .bind(cart.as_uuid())
    .bind(email_index)
    .bind(email)
    .bind(name)
    .bind(address)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

pub async fn set_cart_discount(tx: &mut Tx, scope: &StoreScope, cart: CartId, code_key: Option<&str>) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE carts SET discount_code = $3, updated_at = $4 WHERE store_id = $1 AND id = $2 AND status = 'open'",
    )
    .bind(scope.uuid())
    .bind(cart.as_uuid())
    .bind(code_key)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Closes an open cart; `false` when it was already checked out (a concurrent checkout won).
pub async fn close_cart(tx: &mut Tx, scope: &StoreScope, cart: CartId) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE carts SET status = 'checked_out', updated_at = $3 WHERE store_id = $1 AND id = $2 AND status = 'open'",
    )
    .bind(scope.uuid())
    .bind(cart.as_uuid())
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

// ---------------------------------------------------------------- orders and reservations

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub variant_id: VariantId,
    pub product_id: ProductId,
    pub title: String,
    pub sku: Option<String>,
    pub unit_price: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub number: i64,
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    pub status: OrderStatus,
    pub currency: String,
    pub subtotal: i64,
    pub discount_total: i64,
    pub total: i64,
    pub discount_id: Option<DiscountId>,
    pub reserved_until: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Set when a payment did not match the order; staff must look at it.
    pub flagged_reason: Option<String>,
}

#[derive(FromRow)]
struct OrderRow {
    id: Uuid,
    number: i64,
    cart_id: Uuid,
    customer_id: Uuid,
    status: String,
    currency: String,
    subtotal: i64,
    discount_total: i64,
    total: i64,
    discount_id: Option<Uuid>,
    reserved_until: OffsetDateTime,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    flagged_reason: Option<String>,
}

impl TryFrom<OrderRow> for Order {
    type Error = StoreError;

    fn try_from(r: OrderRow) -> Result<Self> {
        Ok(Self {
            id: OrderId::from_uuid(r.id),
            number: r.number,
            cart_id: CartId::from_uuid(r.cart_id),
            customer_id: CustomerId::from_uuid(r.customer_id),
            status: r
                .status
                .parse()
                .map_err(|()| corrupt(format!("order status '{}'", r.status)))?,
            currency: r.currency,
            subtotal: r.subtotal,
            discount_total: r.discount_total,
            total: r.total,
            discount_id: r.discount_id.map(DiscountId::from_uuid),
            reserved_until: r.reserved_until,
            created_at: r.created_at,
            updated_at: r.updated_at,
            flagged_reason: r.flagged_reason,
        })
    }
}

macro_rules! order_columns {
    () => {
        "id, number, cart_id, customer_id, status, currency, subtotal, discount_total, total, discount_id, reserved_until, \
         created_at, updated_at"
    };
}

/// What order queries read: the inserted columns plus those set later.
macro_rules! order_select {
    () => {
        concat!(order_columns!(), ", flagged_reason")
    };
}

/// The next order number of the store (1, 2, 3…), taken under the counter's row lock.
pub async fn next_order_number(tx: &mut Tx, scope: &StoreScope) -> Result<i64> {
    Ok(dispatch!(tx, c => {
        sqlx::query("INSERT INTO order_counters (store_id, last_number) VALUES ($1, 0) ON CONFLICT (store_id) DO NOTHING")
            .bind(scope.uuid())
            .execute(&mut *c)
            .await?;
        sqlx::query_scalar::<_, i64>("UPDATE order_counters SET last_number = last_number + 1 WHERE store_id = $1 RETURNING last_number")
            .bind(scope.uuid())
            .fetch_one(&mut *c)
            .await?
    }))
}

pub async fn insert_order(tx: &mut Tx, scope: &StoreScope, order: &Order, lines: &[OrderLine]) -> Result<()> {
    dispatch!(tx, c => {
        sqlx::query(concat!(
            "INSERT INTO orders (store_id, ", order_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(scope.uuid())
        .bind(order.id.as_uuid())
        .bind(order.number)
        .bind(order.cart_id.as_uuid())
        .bind(order.customer_id.as_uuid())
        .bind(order.status.as_str())
        .bind(&order.currency)
        .bind(order.subtotal)
        .bind(order.discount_total)
        .bind(order.total)
        .bind(order.discount_id.map(|d| d.as_uuid()))
        .bind(order.reserved_until)
        .bind(order.created_at)
        .bind(order.updated_at)
        .execute(&mut *c)
        .await?;
        for (no, line) in lines.iter().enumerate() {
            sqlx::query(
                "INSERT INTO order_lines (store_id, order_id, line_no, variant_id, product_id, title, sku, unit_price, quantity, line_total) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(scope.uuid())
            .bind(order.id.as_uuid())
            .bind(i64::try_from(no).unwrap_or(i64::MAX) + 1)
            .bind(line.variant_id.as_uuid())
            .bind(line.product_id.as_uuid())
            .bind(&line.title)
            .bind(line.sku.as_deref())
            .bind(line.unit_price)
            .bind(line.quantity)
            .bind(line.unit_price.saturating_mul(line.quantity))
            .execute(&mut *c)
            .await?;
        }
        0u64
    });
    Ok(())
}

pub async fn find_order(h: &mut impl Handle, scope: &StoreScope, id: OrderId) -> Result<Option<Order>> {
    let row: Option<OrderRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", order_select!(), " FROM orders WHERE store_id = $1 AND id = $2"
    ))
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_optional(&mut *c)
    .await?);
    row.map(Order::try_from).transpose()
}

/// Reads an order and locks its row for the rest of `tx` (PostgreSQL; SQLite's single
/// writer already serialises): every gateway event and refund about one order queues
/// here, so what it reads of the order and its payment stays true until it commits.
pub async fn lock_order(tx: &mut Tx, scope: &StoreScope, id: OrderId) -> Result<Option<Order>> {
    const READ: &str = concat!(
        "SELECT ",
        order_select!(),
        " FROM orders WHERE store_id = $1 AND id = $2"
    );
    const LOCK: &str = concat!(
        "SELECT ",
        order_select!(),
        " FROM orders WHERE store_id = $1 AND id = $2 FOR NO KEY UPDATE"
    );
    let sql = if matches!(tx.conn(), Conn::Postgres(_)) {
        LOCK
    } else {
        READ
    };
    let row: Option<OrderRow> = dispatch!(tx, c => sqlx::query_as(sql)
        .bind(scope.uuid())
        .bind(id.as_uuid())
        .fetch_optional(&mut *c)
        .await?);
    row.map(Order::try_from).transpose()
}

pub async fn list_orders(
    h: &mut impl Handle,
    scope: &StoreScope,
    after: Option<OrderId>,
    limit: u32,
) -> Result<Vec<Order>> {
    let rows: Vec<OrderRow> = dispatch!(h, c => sqlx::query_as(concat!(
        "SELECT ", order_select!(), " FROM orders WHERE store_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
    .bind(scope.uuid())
    .bind(after.map_or(Uuid::nil(), |o| o.as_uuid()))
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(Order::try_from).collect()
}

pub async fn order_lines(h: &mut impl Handle, scope: &StoreScope, id: OrderId) -> Result<Vec<OrderLine>> {
    let rows: Vec<(Uuid, Uuid, String, Option<String>, i64, i64)> = dispatch!(h, c => sqlx::query_as(
        "SELECT variant_id, product_id, title, sku, unit_price, quantity FROM order_lines \
         WHERE store_id = $1 AND order_id = $2 ORDER BY line_no",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(variant, product, title, sku, unit_price, quantity)| OrderLine {
            variant_id: VariantId::from_uuid(variant),
            product_id: ProductId::from_uuid(product),
            title,
            sku,
            unit_price,
            quantity,
        })
        .collect())
}

/// Moves an order from `from` to `to` if it is still in `from` (and, for payment, its
/// reservation has not run out). Exactly one of two racing transitions wins.
pub async fn transition_order(
    tx: &mut Tx,
    scope: &StoreScope,
    id: OrderId,
    from: OrderStatus,
    to: OrderStatus,
    reserved_after: Option<OffsetDateTime>,
) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE orders SET status = $4, updated_at = $5 \
         WHERE store_id = $1 AND id = $2 AND status = $3 AND ($6 OR reserved_until > $7)",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now())
    .bind(reserved_after.is_none())
    .bind(reserved_after.unwrap_or_else(now))
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Marks an order for staff attention (a payment that does not match it). `false` when
/// it was flagged already.
pub async fn flag_order(tx: &mut Tx, scope: &StoreScope, id: OrderId, reason: &str) -> Result<bool> {
    let n = dispatch!(tx, c => sqlx::query(
        "UPDATE orders SET flagged_reason = $3, updated_at = $4 WHERE store_id = $1 AND id = $2 AND flagged_reason IS NULL",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(reason)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(n > 0)
}

/// Holds `quantity` units for an order: one conditional UPDATE (`on_hand − reserved ≥
/// quantity`), a reservation row and a ledger entry. `Ok(false)` when the stock is not
/// there; nothing was written then.
pub async fn reserve(
    tx: &mut Tx,
    scope: &StoreScope,
    order: OrderId,
    variant: VariantId,
    quantity: i64,
    expires_at: OffsetDateTime,
    actor: &str,
) -> Result<bool> {
    let at = now();
    let level: Option<i64> = dispatch!(tx, c => sqlx::query_scalar(
        "UPDATE inventory_levels SET reserved = reserved + $3, updated_at = $4 \
         WHERE store_id = $1 AND variant_id = $2 AND on_hand - reserved >= $3 RETURNING on_hand",
    )
    .bind(scope.uuid())
    .bind(variant.as_uuid())
    .bind(quantity)
    .bind(at)
    .fetch_optional(&mut *c)
    .await?);
    let Some(on_hand) = level else { return Ok(false) };
    dispatch!(tx, c => {
        sqlx::query(
            "INSERT INTO reservations (store_id, order_id, variant_id, quantity, status, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6)",
        )
        .bind(scope.uuid())
        .bind(order.as_uuid())
        .bind(variant.as_uuid())
        .bind(quantity)
        .bind(expires_at)
        .bind(at)
        .execute(&mut *c)
        .await?;
        insert_movement!(c, scope, stormcom_domain::MovementId::generate(), variant, "reserved", quantity, on_hand, &format!("order {order}"), actor, at)
    });
    Ok(true)
}

/// Settles every active reservation of an order exactly once: committed (on payment:
/// on_hand and reserved both drop) or released (reserved drops). Returns the units settled.
pub async fn settle_reservations(
    tx: &mut Tx,
    scope: &StoreScope,
    order: OrderId,
    commit: bool,
    actor: &str,
) -> Result<i64> {
    let at = now();
    let status = if commit { "committed" } else { "released" };
    let active: Vec<(Uuid, i64)> = dispatch!(tx, c => sqlx::query_as(
        "SELECT variant_id, quantity FROM reservations WHERE store_id = $1 AND order_id = $2 AND status = 'active' ORDER BY variant_id",
    )
    .bind(scope.uuid())
    .bind(order.as_uuid())
    .fetch_all(&mut *c)
    .await?);
    let mut settled = 0;
    for (variant, quantity) in active {
        let variant = VariantId::from_uuid(variant);
        let done = dispatch!(tx, c => {
            let n = sqlx::query(
                "UPDATE reservations SET status = $4, settled_at = $5 \
                 WHERE store_id = $1 AND order_id = $2 AND variant_id = $3 AND status = 'active'",
            )
            .bind(scope.uuid())
            .bind(order.as_uuid())
            .bind(variant.as_uuid())
            .bind(status)
            .bind(at)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                false
            } else {
                let on_hand: i64 = sqlx::query_scalar(
                    "UPDATE inventory_levels SET reserved = reserved - $3, on_hand = on_hand - $4, updated_at = $5 \
                     WHERE store_id = $1 AND variant_id = $2 RETURNING on_hand",
                )
                .bind(scope.uuid())
                .bind(variant.as_uuid())
                .bind(quantity)
                .bind(if commit { quantity } else { 0 })
                .bind(at)
                .fetch_one(&mut *c)
                .await?;
                insert_movement!(c, scope, stormcom_domain::MovementId::generate(), variant, status, -quantity, on_hand, &format!("order {order}"), actor, at);
                true
            }
        });
        if done {
            settled += quantity;
        }
    }
    Ok(settled)
}

/// Orders whose reservation ran out while still unpaid, across all stores (sweeper).
pub async fn overdue_orders(h: &mut impl Handle, at: OffsetDateTime, limit: u32) -> Result<Vec<(StoreScope, OrderId)>> {
    let rows: Vec<(Uuid, Uuid)> = dispatch!(h, c => sqlx::query_as(
        "SELECT store_id, id FROM orders WHERE status = 'pending_payment' AND reserved_until <= $1 AND flagged_reason IS NULL \
         ORDER BY reserved_until LIMIT $2",
    )
    .bind(at)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(store, order)| {
            (
                StoreScope::new(stormcom_domain::StoreId::from_uuid(store)),
                OrderId::from_uuid(order),
            )
        })
        .collect())
}

// ---------------------------------------------------------------- events and alerts

/// Appends a domain event in the caller's transaction (transactional outbox).
pub async fn emit(tx: &mut Tx, scope: &StoreScope, kind: &str, subject: &str, payload: &str) -> Result<()> {
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO domain_events (store_id, id, kind, subject, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope.uuid())
    .bind(Uuid::now_v7())
    .bind(kind)
    .bind(subject)
    .bind(payload)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DomainEvent {
    pub kind: String,
    pub subject: String,
    pub payload: String,
    pub created_at: OffsetDateTime,
}

pub async fn events(h: &mut impl Handle, scope: &StoreScope, limit: u32) -> Result<Vec<DomainEvent>> {
    Ok(dispatch!(h, c => sqlx::query_as(
        "SELECT kind, subject, payload, created_at FROM domain_events WHERE store_id = $1 ORDER BY id LIMIT $2",
    )
    .bind(scope.uuid())
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: AlertId,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    pub created_at: OffsetDateTime,
    pub resolved_at: Option<OffsetDateTime>,
}

pub async fn raise_alert(tx: &mut Tx, scope: &StoreScope, kind: &str, subject: &str, detail: &str) -> Result<AlertId> {
    let id = AlertId::generate();
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO alerts (store_id, id, kind, subject, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope.uuid())
    .bind(id.as_uuid())
    .bind(kind)
    .bind(subject)
    .bind(detail)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(id)
}

pub async fn list_alerts(h: &mut impl Handle, scope: &StoreScope) -> Result<Vec<Alert>> {
    let rows: Vec<(Uuid, String, String, String, OffsetDateTime, Option<OffsetDateTime>)> = dispatch!(h, c => sqlx::query_as(
        "SELECT id, kind, subject, detail, created_at, resolved_at FROM alerts WHERE store_id = $1 ORDER BY id",
    )
    .bind(scope.uuid())
    .fetch_all(&mut *c)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(id, kind, subject, detail, created_at, resolved_at)| Alert {
            id: AlertId::from_uuid(id),
            kind,
            subject,
            detail,
            created_at,
            resolved_at,
        })
        .collect())
}

pub async fn resolve_alerts(tx: &mut Tx, scope: &StoreScope, kind: &str, subject: &str, by: &str) -> Result<u64> {
    Ok(dispatch!(tx, c => sqlx::query(
        "UPDATE alerts SET resolved_at = $5, resolved_by = $4 WHERE store_id = $1 AND kind = $2 AND subject = $3 AND resolved_at IS NULL",
    )
    .bind(scope.uuid())
    .bind(kind)
    .bind(subject)
    .bind(by)
    .bind(now())
    .execute(&mut *c)
    .await?
    .rows_affected()))
}
