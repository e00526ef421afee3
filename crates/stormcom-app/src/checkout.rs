//! The storefront cart and checkout. A cart is addressed by its id plus a secret that
//! only its creator holds; totals are always computed here from current prices. Checkout
//! is one transaction: close the cart, record the customer, redeem the discount (under
//! the code's row lock), reserve stock (one conditional UPDATE per variant, in id order
//! so concurrent checkouts cannot deadlock), then write the order with the next number,
//! its audit entry and its domain event.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use stormcom_domain::catalog::{InventoryPolicy, ProductStatus};
use stormcom_domain::checkout::{self as rules, MAX_CART_LINES, MAX_LINE_QUANTITY, OrderStatus};
use stormcom_domain::{CartId, CartLineId, Currency, OrderId, ValidationErrors, VariantId};
use stormcom_store::commerce::{self, Cart, Discount, Order, OrderLine, Redemption};
use stormcom_store::tenancy::Store;
use stormcom_store::{Handle, StoreScope, Tx, audit, catalog};
use time::OffsetDateTime;

use crate::access::entry;
use crate::auth::normalize_email;
use crate::pii::{Address, Contact};
use crate::{App, AppError, Result, currency_of};

/// A cart as the shopper sees it, priced now.
#[derive(Debug, Clone)]
pub struct CartView {
    pub id: CartId,
    pub currency: Currency,
    pub lines: Vec<PricedLine>,
    pub subtotal: i64,
    pub discount_code: Option<String>,
    pub discount_total: i64,
    pub total: i64,
    pub has_contact: bool,
}

#[derive(Debug, Clone)]
pub struct PricedLine {
    pub id: CartLineId,
    pub variant_id: VariantId,
    pub title: String,
    pub unit_price: i64,
    pub quantity: i64,
    pub line_total: i64,
}

/// A new cart: the secret is shown once.
#[derive(Debug)]
pub struct NewCart {
    pub view: CartView,
    pub secret: String,
}

fn secret_digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Constant-time comparison of two digests.
fn same_digest(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_quantity(quantity: i64) -> Result<()> {
    if (1..=MAX_LINE_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(AppError::invalid(
            "quantity",
            "invalid_quantity",
            format!("must be 1 to {MAX_LINE_QUANTITY}"),
        ))
    }
}

fn conflict(code: &'static str, message: &str) -> AppError {
    AppError::Conflict {
        code,
        message: message.to_owned(),
    }
}

/// Whether a code can be used at `now` for `subtotal`; the reason when not.
pub(crate) fn discount_usable(
    d: &Discount,
    now: OffsetDateTime,
    subtotal: i64,
) -> std::result::Result<(), &'static str> {
    let f = &d.fields;
    if f.status != "active" {
        return Err("the code is not active");
    }
    if f.starts_at.is_some_and(|s| now < s) || f.ends_at.is_some_and(|e| now >= e) {
        return Err("the code is not valid at this time");
    }
    if subtotal < f.min_subtotal {
        return Err("the cart is below the code's minimum subtotal");
    }
    if f.usage_limit.is_some_and(|limit| d.times_used >= limit) {
        return Err("the code has been used up");
    }
    Ok(())
}

impl App {
    /// The store, and the cart if the secret matches. A wrong secret answers exactly like
    /// a cart that does not exist.
    async fn open_cart(&self, store_handle: &str, cart: CartId, secret: &str) -> Result<(Store, Cart)> {
        let store = self.store_by_handle(store_handle).await?;
        let mut reader = self.db().reader().await?;
        let found = commerce::find_cart(&mut reader, &store.scope(), cart)
            .await?
            .ok_or(AppError::NotFound)?;
        if !same_digest(&found.secret_hash, &secret_digest(secret)) {
            return Err(AppError::NotFound);
        }
        Ok((store, found))
    }

    pub async fn create_cart(&self, store_handle: &str) -> Result<NewCart> {
        let store = self.store_by_handle(store_handle).await?;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| AppError::Internal(e.to_string()))?;
        let secret = format!("cs_{}", hex::encode(bytes));
        let mut tx = self.db().begin().await?;
        let id = commerce::create_cart(&mut tx, &store.scope(), &secret_digest(&secret)).await?;
        tx.commit().await?;
        let view = self.cart_view(&store, id).await?;
        Ok(NewCart { view, secret })
    }

    pub async fn get_cart(&self, store_handle: &str, cart: CartId, secret: &str) -> Result<CartView> {
        let (store, _) = self.open_cart(store_handle, cart, secret).await?;
        self.cart_view(&store, cart).await
    }

    async fn cart_view(&self, store: &Store, cart: CartId) -> Result<CartView> {
        let mut reader = self.db().reader().await?;
        let found = commerce::find_cart(&mut reader, &store.scope(), cart)
            .await?
            .ok_or(AppError::NotFound)?;
        let lines = commerce::cart_lines(&mut reader, &store.scope(), cart).await?;
        let priced = price_lines(&mut reader, &store.scope(), &lines).await?;
        let subtotal = priced.iter().map(|l| l.line_total).sum::<i64>();
        let discount_total = match &found.discount_code {
            Some(code) => commerce::find_discount_by_code(&mut reader, &store.scope(), code)
                .await?
                .filter(|d| discount_usable(d, OffsetDateTime::now_utc(), subtotal).is_ok())
                .map_or(0, |d| rules::discount_amount(d.fields.kind, d.fields.value, subtotal)),
            None => 0,
        };
        Ok(CartView {
            id: cart,
            currency: currency_of(&store.currency)?,
            lines: priced,
            subtotal,
            discount_code: found.discount_code,
            discount_total,
            total: subtotal - discount_total,
            has_contact: found.email.is_some(),
        })
    }

    async fn writable_cart(&self, store_handle: &str, cart: CartId, secret: &str) -> Result<Store> {
        let (store, found) = self.open_cart(store_handle, cart, secret).await?;
        if !found.open {
            return Err(conflict("cart_closed", "this cart has been checked out"));
        }
        Ok(store)
    }

    pub async fn add_cart_line(
        &self,
        store_handle: &str,
        cart: CartId,
        secret: &str,
        variant: VariantId,
        quantity: i64,
    ) -> Result<CartView> {
        check_quantity(quantity)?;
        let store = self.writable_cart(store_handle, cart, secret).await?;
        let scope = store.scope();
        // Checked on a reader, outside the write transaction: on SQLite every write waits
        // for the one writer, so the less a write transaction reads, the more carts per
        // second. Checkout re-checks every line under its own transaction anyway.
        {
            let mut reader = self.db().reader().await?;
            sellable(&mut reader, &scope, variant).await?;
        }
        let mut tx = self.db().begin().await?;
        if commerce::cart_lines(&mut tx, &scope, cart).await?.len() >= MAX_CART_LINES {
            return Err(AppError::invalid(
                "lines",
                "too_many",
                format!("a cart holds at most {MAX_CART_LINES} lines"),
            ));
        }
        commerce::add_cart_line(&mut tx, &scope, cart, variant, quantity).await?;
        tx.commit().await?;
        self.cart_view(&store, cart).await
    }

    pub async fn update_cart_line(
        &self,
        store_handle: &str,
        cart: CartId,
        secret: &str,
        line: CartLineId,
        quantity: i64,
    ) -> Result<CartView> {
        check_quantity(quantity)?;
        let store = self.writable_cart(store_handle, cart, secret).await?;
        let mut tx = self.db().begin().await?;
        if !commerce::set_cart_line(&mut tx, &store.scope(), cart, line, quantity).await? {
            return Err(AppError::NotFound);
        }
        tx.commit().await?;
        self.cart_view(&store, cart).await
    }

    pub async fn remove_cart_line(
        &self,
        store_handle: &str,
        cart: CartId,
        secret: &str,
        line: CartLineId,
    ) -> Result<CartView> {
        let store = self.writable_cart(store_handle, cart, secret).await?;
        let mut tx = self.db().begin().await?;
        if !commerce::remove_cart_line(&mut tx, &store.scope(), cart, line).await? {
            return Err(AppError::NotFound);
        }
        tx.commit().await?;
        self.cart_view(&store, cart).await
    }

    pub async fn set_cart_contact(
        &self,
        store_handle: &str,
        cart: CartId,
        secret: &str,
        contact: Contact,
    ) -> Result<CartView> {
        let contact = validate_contact(contact)?;
        let store = self.writable_cart(store_handle, cart, secret).await?;
        let (email, name, address) = self.seal_contact(store.id, &cart.to_string(), &contact)?;
        let index = self.email_index(store.id, &contact.email);
        let mut tx = self.db().begin().await?;
        commerce::set_cart_contact(
            &mut tx,
            &store.scope(),
            cart,
            &index,
            &email,
            name.as_deref(),
            address.as_deref(),
        )
        .await?;
        tx.commit().await?;
        self.cart_view(&store, cart).await
    }

    /// Applies a code (checked now, and again at checkout). `None` removes it.
    pub async fn set_cart_discount(
        &self,
        store_handle: &str,
        cart: CartId,
        secret: &str,
        code: Option<&str>,
    ) -> Result<CartView> {
        let store = self.writable_cart(store_handle, cart, secret).await?;
        let key = match code {
            None => None,
            Some(code) => {
                let key = rules::code_key(code)
                    .ok_or_else(|| AppError::invalid("code", "invalid_code", "not a discount code"))?;
                let mut reader = self.db().reader().await?;
                let lines = commerce::cart_lines(&mut reader, &store.scope(), cart).await?;
                let subtotal = price_lines(&mut reader, &store.scope(), &lines)
                    .await?
                    .iter()
                    .map(|l| l.line_total)
                    .sum();
                let discount = commerce::find_discount_by_code(&mut reader, &store.scope(), &key)
                    .await?
                    .ok_or_else(|| AppError::invalid("code", "unknown_code", "no such discount code"))?;
                discount_usable(&discount, OffsetDateTime::now_utc(), subtotal)
                    .map_err(|why| AppError::invalid("code", "discount_unavailable", why))?;
                Some(key)
            }
        };
        let mut tx = self.db().begin().await?;
        commerce::set_cart_discount(&mut tx, &store.scope(), cart, key.as_deref()).await?;
        tx.commit().await?;
        self.cart_view(&store, cart).await
    }

    /// Turns the cart into an order in `pending_payment`, with its stock reserved until
    /// `reservation_ttl` from now.
    pub async fn checkout(&self, store_handle: &str, cart: CartId, secret: &str) -> Result<Order> {
        let (store, found) = self.open_cart(store_handle, cart, secret).await?;
        let scope = store.scope();
        if !found.open {
            return Err(conflict("cart_closed", "this cart has been checked out"));
        }
        let (Some(email_index), Some(sealed_email)) = (found.email_index.clone(), found.email.clone()) else {
            return Err(AppError::invalid(
                "email",
                "missing_contact",
                "set the customer's email before checkout",
            ));
        };
        let contact = self.open_contact(
            store.id,
            &cart.to_string(),
            &sealed_email,
            found.name.as_deref(),
            found.address.as_deref(),
        )?;
        let order_id = OrderId::generate();
        let actor = cart.to_string();
        let now = OffsetDateTime::now_utc();
        let mut tx = self.db().begin().await?;
        if !commerce::close_cart(&mut tx, &scope, cart).await? {
            return Err(conflict("cart_closed", "this cart has been checked out"));
        }
        let lines = commerce::cart_lines(&mut tx, &scope, cart).await?;
        if lines.is_empty() {
            return Err(AppError::invalid("lines", "empty_cart", "the cart has no lines"));
        }
        // Lines of one variant are summed before reserving.
        let mut wanted: BTreeMap<VariantId, i64> = BTreeMap::new();
        for line in &lines {
            *wanted.entry(line.variant_id).or_default() += line.quantity;
        }
        let mut order_lines = Vec::with_capacity(wanted.len());
        let mut policies = Vec::with_capacity(wanted.len());
        for (&variant_id, &quantity) in &wanted {
            let (variant, title) = sellable(&mut tx, &scope, variant_id).await?;
            policies.push(variant.fields.inventory_policy);
            order_lines.push(OrderLine {
                variant_id,
                product_id: variant.product_id,
                title,
                sku: variant.fields.sku.clone(),
                unit_price: variant.fields.price,
                quantity,
            });
        }
        let subtotal = order_lines
            .iter()
            .try_fold(0i64, |sum, l| {
                l.unit_price.checked_mul(l.quantity).and_then(|t| sum.checked_add(t))
            })
            .ok_or_else(|| AppError::invalid("lines", "total_too_large", "the order total is too large"))?;

        let customer = commerce::upsert_customer(&mut tx, &scope, &email_index).await?;
        let (email, name, address) = self.seal_contact(store.id, &customer.to_string(), &contact)?;
        commerce::set_customer_fields(&mut tx, &scope, customer, &email, name.as_deref(), address.as_deref()).await?;

        let mut discount_total = 0;
        let mut discount_id = None;
        let mut velocity_breach = None;
        if let Some(code) = &found.discount_code {
            let discount = commerce::find_discount_by_code(&mut tx, &scope, code)
                .await?
                .ok_or_else(|| conflict("discount_unavailable", "the discount code no longer exists"))?;
            discount_usable(&discount, now, subtotal).map_err(|why| conflict("discount_unavailable", why))?;
            match commerce::redeem(&mut tx, &scope, discount.id, order_id, &email_index).await? {
                Redemption::Redeemed {
                    recent,
                    velocity_per_minute,
                } => {
                    if velocity_per_minute.is_some_and(|limit| recent > limit) {
                        velocity_breach = Some((discount.id, recent));
                    }
                }
                Redemption::AlreadyApplied => {}
                Redemption::Exhausted => return Err(conflict("discount_unavailable", "the code has been used up")),
                Redemption::CustomerLimitReached => {
                    return Err(conflict(
                        "discount_limit_reached",
                        "this customer has already used the code",
                    ));
                }
            }
            discount_total = rules::discount_amount(discount.fields.kind, discount.fields.value, subtotal);
            discount_id = Some(discount.id);
        }
        if let Some((code, recent)) = velocity_breach {
            drop(tx);
            self.freeze_for_velocity(&scope, code, recent).await;
            return Err(conflict("discount_unavailable", "the code is temporarily frozen"));
        }

        let reserved_until = now + self.config.reservation_ttl;
        for (line, policy) in order_lines.iter().zip(&policies) {
            let reserved = commerce::reserve(
                &mut tx,
                &scope,
                order_id,
                line.variant_id,
                line.quantity,
                reserved_until,
                &actor,
            )
            .await?;
            // `continue` variants may be sold beyond stock (a backorder): nothing to hold.
            if !reserved && *policy == InventoryPolicy::Deny {
                return Err(AppError::InsufficientStock {
                    available: available(&mut tx, &scope, line.variant_id).await?,
                });
            }
        }

        let number = commerce::next_order_number(&mut tx, &scope).await?;
        let order = Order {
            id: order_id,
            number,
            cart_id: cart,
            customer_id: customer,
            status: OrderStatus::PendingPayment,
            currency: store.currency.clone(),
            subtotal,
            discount_total,
            total: subtotal - discount_total,
            discount_id,
            reserved_until,
            created_at: now,
            updated_at: now,
            flagged_reason: None,
        };
        commerce::insert_order(&mut tx, &scope, &order, &order_lines).await?;
        let summary = [
            ("number", number.to_string()),
            ("total", order.total.to_string()),
            ("lines", order_lines.len().to_string()),
            ("customer", customer.to_string()),
        ];
        audit::append(&mut tx, &scope, entry(actor, None, "order.created", order_id, &summary)).await?;
        emit(
            &mut tx,
            &scope,
            "order.created",
            &order,
            &[("total", order.total.to_string())],
        )
        .await?;
        tx.commit().await?;
        Ok(order)
    }

    /// Freezes a code that is being redeemed faster than its threshold: alert, audit and
    /// event, in a transaction of its own (the checkout that tripped it was rolled back).
    async fn freeze_for_velocity(&self, scope: &StoreScope, code: stormcom_domain::DiscountId, recent: i64) {
        let result = async {
            let mut tx = self.db().begin().await?;
            let frozen = commerce::set_discount_status(&mut tx, scope, code, "active", "frozen").await?;
            if frozen {
                let detail = format!("{recent} redemptions in the last minute");
                commerce::raise_alert(&mut tx, scope, "discount_velocity", &code.to_string(), &detail).await?;
                let summary = [("recent", recent.to_string())];
                audit::append(
                    &mut tx,
                    scope,
                    entry("monitor".into(), None, "discount.frozen", code, &summary),
                )
                .await?;
                commerce::emit(
                    &mut tx,
                    scope,
                    "discount.frozen",
                    &code.to_string(),
                    &format!("{{\"recent\":{recent}}}"),
                )
                .await?;
            }
            tx.commit().await?;
            Ok::<_, stormcom_store::StoreError>(frozen)
        }
        .await;
        match result {
            Ok(true) => crate::alert_raised("discount_velocity"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "could not freeze a discount code"),
        }
    }
}

async fn available(h: &mut impl Handle, scope: &StoreScope, variant: VariantId) -> Result<i64> {
    Ok(stormcom_store::inventory::level(h, scope, variant)
        .await?
        .map_or(0, |l| l.available()))
}

/// The variant, if shoppers may buy it (it exists in this store and its product is
/// published and active), with its display title.
async fn sellable(h: &mut impl Handle, scope: &StoreScope, variant: VariantId) -> Result<(catalog::Variant, String)> {
    let unknown = || {
        AppError::invalid(
            "variant_id",
            "unknown_variant",
            "no such variant for sale in this store",
        )
    };
    let found = catalog::find_variant_by_id(h, scope, variant)
        .await?
        .ok_or_else(unknown)?;
    let product = catalog::find_product(h, scope, found.product_id)
        .await?
        .ok_or_else(unknown)?;
    if !product.fields.published || product.fields.status != ProductStatus::Active {
        return Err(unknown());
    }
    let options: Vec<&str> = found
        .fields
        .options
        .iter()
        .map(String::as_str)
        .filter(|o| !o.is_empty())
        .collect();
    let title = if options.is_empty() || options == ["Default Title"] {
        product.fields.title.clone()
    } else {
        format!("{} - {}", product.fields.title, options.join(" / "))
    };
    Ok((found, title))
}

async fn price_lines(h: &mut impl Handle, scope: &StoreScope, lines: &[commerce::CartLine]) -> Result<Vec<PricedLine>> {
    let mut priced = Vec::with_capacity(lines.len());
    for line in lines {
        // A line whose variant vanished since it was added is shown at zero; checkout refuses it.
        let (title, unit_price) = match sellable(h, scope, line.variant_id).await {
            Ok((variant, title)) => (title, variant.fields.price),
            Err(AppError::Validation(_)) => ("(no longer available)".to_owned(), 0),
            Err(e) => return Err(e),
        };
        priced.push(PricedLine {
            id: line.id,
            variant_id: line.variant_id,
            title,
            unit_price,
            quantity: line.quantity,
            line_total: unit_price.saturating_mul(line.quantity),
        });
    }
    Ok(priced)
}

fn validate_contact(contact: Contact) -> Result<Contact> {
    let email = normalize_email(&contact.email)?;
    let mut errors = ValidationErrors::default();
    let name = contact.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        errors.add("name", "too_long", "at most 200 characters");
    }
    if let Some(Address {
        line1,
        line2,
        city,
        postal_code,
        country,
    }) = &contact.address
    {
        for (field, value, required) in [
            ("address.line1", line1, true),
            ("address.line2", line2, false),
            ("address.city", city, true),
            ("address.postal_code", postal_code, true),
        ] {
            if (required && value.trim().is_empty()) || value.chars().count() > 200 {
                errors.add(field, "invalid", "required, at most 200 characters");
            }
        }
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.add(
                "address.country",
                "invalid_country",
                "an ISO 3166-1 alpha-2 code such as US",
            );
        }
    }
    errors.finish()?;
    Ok(Contact {
        email,
        name,
        address: contact.address,
    })
}

/// Writes a domain event for an order in the caller's transaction.
pub(crate) async fn emit(
    tx: &mut Tx,
    scope: &StoreScope,
    kind: &str,
    order: &Order,
    extra: &[(&str, String)],
) -> Result<()> {
    let mut payload = serde_json::Map::new();
    payload.insert("order_id".into(), order.id.to_string().into());
    payload.insert("number".into(), order.number.into());
    for (k, v) in extra {
        payload.insert((*k).into(), v.clone().into());
    }
    let payload = serde_json::Value::Object(payload).to_string();
    commerce::emit(tx, scope, kind, &order.id.to_string(), &payload).await?;
    Ok(())
}
