-- Checkout integrity: customers (PII sealed per field), discount codes and their
-- redemptions, carts, orders, inventory reservations, domain events (transactional
-- outbox), alerts, and inventory drift flags.

-- Customer PII is sealed per field (AES-256-GCM, per-store key derived from a master key
-- kept outside the database; the associated data binds store, customer and field) and
-- found by a keyed blind index of the normalised email.
CREATE TABLE customers (
    store_id    UUID        NOT NULL,
    id          UUID        NOT NULL,
    email_index BYTEA       NOT NULL,
    email       BYTEA       NOT NULL,
    name        BYTEA,
    address     BYTEA,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT customers_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT customers_email_key UNIQUE (store_id, email_index),
    CONSTRAINT customers_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id)
);

CREATE TABLE discount_codes (
    store_id            UUID        NOT NULL,
    id                  UUID        NOT NULL,
    code                TEXT        NOT NULL,
    code_key            TEXT        NOT NULL,
    kind                TEXT        NOT NULL,
    value               BIGINT      NOT NULL,
    starts_at           TIMESTAMPTZ,
    ends_at             TIMESTAMPTZ,
    min_subtotal        BIGINT      NOT NULL,
    usage_limit         BIGINT,
    per_customer_limit  BIGINT,
    velocity_per_minute BIGINT,
    times_used          BIGINT      NOT NULL,
    status              TEXT        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    CONSTRAINT discount_codes_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT discount_codes_code_key UNIQUE (store_id, code_key),
    CONSTRAINT discount_codes_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT discount_codes_kind_check CHECK (kind IN ('percent', 'fixed')),
    CONSTRAINT discount_codes_value_check CHECK (value > 0 AND (kind <> 'percent' OR value <= 100)),
    CONSTRAINT discount_codes_status_check CHECK (status IN ('active', 'disabled', 'frozen')),
    CONSTRAINT discount_codes_usage_check CHECK (times_used >= 0 AND (usage_limit IS NULL OR times_used <= usage_limit))
);

CREATE TABLE carts (
    store_id      UUID        NOT NULL,
    id            UUID        NOT NULL,
    secret_hash   BYTEA       NOT NULL,
    email_index   BYTEA,
    email         BYTEA,
    name          BYTEA,
    address       BYTEA,
    discount_code TEXT,
    status        TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT carts_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT carts_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT carts_status_check CHECK (status IN ('open', 'checked_out'))
);

CREATE TABLE cart_lines (
    store_id   UUID        NOT NULL,
    cart_id    UUID        NOT NULL,
    id         UUID        NOT NULL,
    variant_id UUID        NOT NULL,
    quantity   BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT cart_lines_pkey PRIMARY KEY (store_id, cart_id, id),
    CONSTRAINT cart_lines_cart_fkey FOREIGN KEY (store_id, cart_id) REFERENCES carts (store_id, id) ON DELETE CASCADE,
    CONSTRAINT cart_lines_quantity_check CHECK (quantity > 0 AND quantity <= 1000)
);

-- Order numbers are sequential per store: the counter row is bumped in the checkout
-- transaction (and locked until it commits).
CREATE TABLE order_counters (
    store_id    UUID   NOT NULL,
    last_number BIGINT NOT NULL,
    CONSTRAINT order_counters_pkey PRIMARY KEY (store_id),
    CONSTRAINT order_counters_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id)
);

CREATE TABLE orders (
    store_id       UUID        NOT NULL,
    id             UUID        NOT NULL,
    number         BIGINT      NOT NULL,
    cart_id        UUID        NOT NULL,
    customer_id    UUID        NOT NULL,
    status         TEXT        NOT NULL,
    currency       TEXT        NOT NULL,
    subtotal       BIGINT      NOT NULL,
    discount_total BIGINT      NOT NULL,
    total          BIGINT      NOT NULL,
    discount_id    UUID,
    reserved_until TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT orders_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT orders_number_key UNIQUE (store_id, number),
    CONSTRAINT orders_cart_key UNIQUE (store_id, cart_id),
    CONSTRAINT orders_customer_fkey FOREIGN KEY (store_id, customer_id) REFERENCES customers (store_id, id),
    CONSTRAINT orders_status_check CHECK (status IN ('pending_payment', 'paid', 'fulfilled', 'cancelled', 'expired')),
    CONSTRAINT orders_totals_check CHECK (
        subtotal >= 0 AND discount_total >= 0 AND discount_total <= subtotal AND total = subtotal - discount_total
    )
);
CREATE INDEX orders_pending_idx ON orders (status, reserved_until);

CREATE TABLE order_lines (
    store_id   UUID   NOT NULL,
    order_id   UUID   NOT NULL,
    line_no    BIGINT NOT NULL,
    variant_id UUID   NOT NULL,
    product_id UUID   NOT NULL,
    title      TEXT   NOT NULL,
    sku        TEXT,
    unit_price BIGINT NOT NULL,
    quantity   BIGINT NOT NULL,
    line_total BIGINT NOT NULL,
    CONSTRAINT order_lines_pkey PRIMARY KEY (store_id, order_id, line_no),
    CONSTRAINT order_lines_order_fkey FOREIGN KEY (store_id, order_id) REFERENCES orders (store_id, id),
    CONSTRAINT order_lines_amounts_check CHECK (unit_price >= 0 AND quantity > 0 AND line_total = unit_price * quantity)
);

-- Stock held for an order: taken by the conditional UPDATE on inventory_levels in the
-- checkout transaction, and settled exactly once (committed or released). No foreign key
-- to orders: checkout reserves first and writes the order (with its number, under the
-- store's counter lock) last, to hold per-store locks as briefly as possible.
CREATE TABLE reservations (
    store_id   UUID        NOT NULL,
    order_id   UUID        NOT NULL,
    variant_id UUID        NOT NULL,
    quantity   BIGINT      NOT NULL,
    status     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    settled_at TIMESTAMPTZ,
    CONSTRAINT reservations_pkey PRIMARY KEY (store_id, order_id, variant_id),
    CONSTRAINT reservations_status_check CHECK (status IN ('active', 'committed', 'released')),
    CONSTRAINT reservations_quantity_check CHECK (quantity >= 0)
);
CREATE INDEX reservations_variant_idx ON reservations (store_id, variant_id, status);

-- One row per (code, order): applying the same code to the same order twice is a no-op,
-- and a use is given back at most once (status active → returned).
CREATE TABLE discount_redemptions (
    store_id       UUID        NOT NULL,
    discount_id    UUID        NOT NULL,
    order_id       UUID        NOT NULL,
    customer_index BYTEA       NOT NULL,
    status         TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    returned_at    TIMESTAMPTZ,
    CONSTRAINT discount_redemptions_pkey PRIMARY KEY (store_id, discount_id, order_id),
    CONSTRAINT discount_redemptions_code_fkey FOREIGN KEY (store_id, discount_id) REFERENCES discount_codes (store_id, id),
    CONSTRAINT discount_redemptions_status_check CHECK (status IN ('active', 'returned'))
);
CREATE INDEX discount_redemptions_customer_idx ON discount_redemptions (store_id, discount_id, customer_index);
CREATE INDEX discount_redemptions_time_idx ON discount_redemptions (store_id, discount_id, created_at);

-- Domain events, written in the same transaction as the change (transactional outbox):
-- they feed webhooks, metrics and replay later.
CREATE TABLE domain_events (
    store_id   UUID        NOT NULL,
    id         UUID        NOT NULL,
    kind       TEXT        NOT NULL,
    subject    TEXT        NOT NULL,
    payload    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT domain_events_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT domain_events_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id)
);

CREATE TABLE alerts (
    store_id    UUID        NOT NULL,
    id          UUID        NOT NULL,
    kind        TEXT        NOT NULL,
    subject     TEXT        NOT NULL,
    detail      TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    resolved_by TEXT,
    CONSTRAINT alerts_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT alerts_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id)
);

-- A variant whose balances disagree with the ledger: its fulfilment is blocked until
-- staff resolve the drift.
ALTER TABLE inventory_levels ADD COLUMN drift_detected_at TIMESTAMPTZ;
ALTER TABLE inventory_levels ADD COLUMN drift_detail TEXT;

CREATE TRIGGER domain_events_append_only
    BEFORE UPDATE OR DELETE ON domain_events
    FOR EACH ROW EXECUTE FUNCTION stormcom_refuse_change();
CREATE TRIGGER domain_events_no_truncate
    BEFORE TRUNCATE ON domain_events
    FOR EACH STATEMENT EXECUTE FUNCTION stormcom_refuse_change();
