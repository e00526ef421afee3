-- SQLite dialect: see 0001 for the type mapping.
-- Payments and refunds: per-store provider settings (webhook secrets sealed), one payment
-- per order, refunds bounded by the captured amount, the ledger of processed gateway
-- events (replay protection), and Idempotency-Key records of the API.

CREATE TABLE payment_providers (
    store_id       BLOB        NOT NULL,
    provider       TEXT        NOT NULL,
    -- AES-256-GCM under the store's key; never returned by the API.
    webhook_secret BLOB       NOT NULL,
    enabled        INTEGER     NOT NULL,
    created_at     TEXT        NOT NULL,
    updated_at     TEXT        NOT NULL,
    CONSTRAINT payment_providers_pkey PRIMARY KEY (store_id, provider),
    CONSTRAINT payment_providers_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT payment_providers_provider_check CHECK (provider IN ('test', 'stripe'))
) STRICT;

-- refunded_amount counts pending and succeeded refunds: it is raised by one conditional
-- UPDATE before a refund exists, and the CHECK holds the line even if that is bypassed.
CREATE TABLE payments (
    store_id        BLOB        NOT NULL,
    id              BLOB        NOT NULL,
    order_id        BLOB        NOT NULL,
    provider        TEXT        NOT NULL,
    provider_ref    TEXT        NOT NULL,
    status          TEXT        NOT NULL,
    amount          INTEGER      NOT NULL,
    currency        TEXT        NOT NULL,
    captured_amount INTEGER      NOT NULL,
    refunded_amount INTEGER      NOT NULL,
    created_at      TEXT        NOT NULL,
    updated_at      TEXT        NOT NULL,
    CONSTRAINT payments_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT payments_order_key UNIQUE (store_id, order_id),
    CONSTRAINT payments_ref_key UNIQUE (store_id, provider, provider_ref),
    CONSTRAINT payments_order_fkey FOREIGN KEY (store_id, order_id) REFERENCES orders (store_id, id),
    CONSTRAINT payments_status_check CHECK (status IN ('pending', 'captured', 'failed', 'flagged')),
    CONSTRAINT payments_refund_check CHECK (
        amount >= 0 AND captured_amount >= 0 AND refunded_amount >= 0 AND refunded_amount <= captured_amount
    )
) STRICT;

CREATE TABLE refunds (
    store_id     BLOB        NOT NULL,
    id           BLOB        NOT NULL,
    order_id     BLOB        NOT NULL,
    payment_id   BLOB        NOT NULL,
    amount       INTEGER      NOT NULL,
    reason       TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    source       TEXT        NOT NULL,
    provider_ref TEXT,
    created_by   TEXT        NOT NULL,
    created_at   TEXT        NOT NULL,
    updated_at   TEXT        NOT NULL,
    CONSTRAINT refunds_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT refunds_ref_key UNIQUE (store_id, payment_id, provider_ref),
    CONSTRAINT refunds_payment_fkey FOREIGN KEY (store_id, payment_id) REFERENCES payments (store_id, id),
    CONSTRAINT refunds_amount_check CHECK (amount > 0),
    CONSTRAINT refunds_status_check CHECK (status IN ('pending', 'succeeded', 'failed')),
    CONSTRAINT refunds_source_check CHECK (source IN ('api', 'gateway'))
) STRICT;
CREATE INDEX refunds_order_idx ON refunds (store_id, order_id);

-- One row per gateway event ever acted on, written in the transaction of its effect:
-- a redelivery (same id, fresh timestamp and signature) finds its row and does nothing.
-- Kept at least 30 days (gateways retry for days), then purged by `serve`.
CREATE TABLE processed_webhook_events (
    store_id    BLOB        NOT NULL,
    provider    TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    event_type  TEXT        NOT NULL,
    outcome     TEXT        NOT NULL,
    received_at TEXT        NOT NULL,
    CONSTRAINT processed_webhook_events_pkey PRIMARY KEY (store_id, provider, event_id),
    CONSTRAINT processed_webhook_events_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id)
) STRICT;
CREATE INDEX processed_webhook_events_age_idx ON processed_webhook_events (received_at);

-- Idempotency-Key records: (store, principal, key) → the request's hash and, once done,
-- its sealed answer. store_id is the nil UUID for routes outside a store.
CREATE TABLE idempotency_keys (
    store_id        BLOB        NOT NULL,
    principal       TEXT        NOT NULL,
    key             TEXT        NOT NULL,
    request_hash    BLOB       NOT NULL,
    status          TEXT        NOT NULL,
    response_status INTEGER,
    response_body   BLOB,
    created_at      TEXT        NOT NULL,
    expires_at      TEXT        NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (store_id, principal, key),
    CONSTRAINT idempotency_keys_status_check CHECK (status IN ('in_progress', 'done'))
) STRICT;
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

-- An order whose payment did not match it (amount, currency, or it was no longer
-- payable): it is not paid, the sweeper leaves it alone, and staff are alerted.
ALTER TABLE orders ADD COLUMN flagged_reason TEXT;
