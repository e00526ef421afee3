-- Foundation: platform identity, organizations, stores, catalog and inventory.
-- Tenant tables lead every key with store_id (Citus-ready; the tenant is in every index).

CREATE FUNCTION stormcom_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'append_only: % rows cannot be changed or deleted', TG_TABLE_NAME
        USING ERRCODE = 'raise_exception';
END
$$;

CREATE TABLE users (
    id            UUID        NOT NULL,
    email         TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE sessions (
    id           UUID        NOT NULL,
    user_id      UUID        NOT NULL,
    token_hash   BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE organizations (
    id            UUID        NOT NULL,
    name          TEXT        NOT NULL,
    owner_user_id UUID        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT organizations_pkey PRIMARY KEY (id),
    CONSTRAINT organizations_owner_fkey FOREIGN KEY (owner_user_id) REFERENCES users (id)
);
CREATE INDEX organizations_owner_idx ON organizations (owner_user_id);

CREATE TABLE stores (
    id         UUID        NOT NULL,
    org_id     UUID        NOT NULL,
    name       TEXT        NOT NULL,
    handle     TEXT        NOT NULL,
    currency   TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT stores_pkey PRIMARY KEY (id),
    CONSTRAINT stores_handle_key UNIQUE (handle),
    CONSTRAINT stores_org_fkey FOREIGN KEY (org_id) REFERENCES organizations (id)
);
CREATE INDEX stores_org_idx ON stores (org_id);

CREATE TABLE store_members (
    store_id   UUID        NOT NULL,
    user_id    UUID        NOT NULL,
    role       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT store_members_pkey PRIMARY KEY (store_id, user_id),
    CONSTRAINT store_members_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT store_members_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT store_members_role_check CHECK (role IN ('owner'))
);
CREATE INDEX store_members_user_idx ON store_members (user_id);

CREATE TABLE products (
    store_id         UUID        NOT NULL,
    id               UUID        NOT NULL,
    handle           TEXT        NOT NULL,
    title            TEXT        NOT NULL,
    description_html TEXT        NOT NULL,
    vendor           TEXT        NOT NULL,
    product_type     TEXT        NOT NULL,
    tags             TEXT        NOT NULL,
    option1_name     TEXT        NOT NULL,
    option2_name     TEXT        NOT NULL,
    option3_name     TEXT        NOT NULL,
    status           TEXT        NOT NULL,
    published        BOOLEAN     NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT products_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT products_handle_key UNIQUE (store_id, handle),
    CONSTRAINT products_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT products_status_check CHECK (status IN ('active', 'draft', 'archived'))
);

CREATE TABLE variants (
    store_id         UUID        NOT NULL,
    id               UUID        NOT NULL,
    product_id       UUID        NOT NULL,
    sku              TEXT,
    option1          TEXT        NOT NULL,
    option2          TEXT        NOT NULL,
    option3          TEXT        NOT NULL,
    price            BIGINT      NOT NULL,
    compare_at_price BIGINT,
    grams            BIGINT      NOT NULL,
    inventory_policy TEXT        NOT NULL,
    position         BIGINT      NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT variants_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT variants_options_key UNIQUE (store_id, product_id, option1, option2, option3),
    CONSTRAINT variants_sku_key UNIQUE (store_id, sku),
    CONSTRAINT variants_product_fkey FOREIGN KEY (store_id, product_id)
        REFERENCES products (store_id, id) ON DELETE CASCADE,
    CONSTRAINT variants_price_check CHECK (price >= 0),
    CONSTRAINT variants_compare_at_price_check CHECK (compare_at_price IS NULL OR compare_at_price >= 0),
    CONSTRAINT variants_grams_check CHECK (grams >= 0),
    CONSTRAINT variants_inventory_policy_check CHECK (inventory_policy IN ('deny', 'continue'))
);

CREATE TABLE product_images (
    store_id   UUID        NOT NULL,
    id         UUID        NOT NULL,
    product_id UUID        NOT NULL,
    src        TEXT        NOT NULL,
    position   BIGINT      NOT NULL,
    alt_text   TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT product_images_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT product_images_src_key UNIQUE (store_id, product_id, src),
    CONSTRAINT product_images_product_fkey FOREIGN KEY (store_id, product_id)
        REFERENCES products (store_id, id) ON DELETE CASCADE
);

CREATE TABLE inventory_levels (
    store_id   UUID        NOT NULL,
    variant_id UUID        NOT NULL,
    on_hand    BIGINT      NOT NULL,
    reserved   BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT inventory_levels_pkey PRIMARY KEY (store_id, variant_id),
    CONSTRAINT inventory_levels_variant_fkey FOREIGN KEY (store_id, variant_id)
        REFERENCES variants (store_id, id) ON DELETE CASCADE,
    CONSTRAINT inventory_on_hand_nonnegative CHECK (on_hand >= 0),
    CONSTRAINT inventory_reserved_within_on_hand CHECK (reserved >= 0 AND reserved <= on_hand)
);

-- The movement ledger outlives the variant it describes (no FK to variants): history is
-- never rewritten, and balances can always be recomputed from it.
CREATE TABLE inventory_movements (
    store_id      UUID        NOT NULL,
    id            UUID        NOT NULL,
    variant_id    UUID        NOT NULL,
    kind          TEXT        NOT NULL,
    delta         BIGINT      NOT NULL,
    on_hand_after BIGINT      NOT NULL,
    reason        TEXT        NOT NULL,
    actor         TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT inventory_movements_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT inventory_movements_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT inventory_movements_kind_check
        CHECK (kind IN ('initial', 'adjustment', 'import', 'reserved', 'released', 'committed'))
);
CREATE INDEX inventory_movements_variant_idx ON inventory_movements (store_id, variant_id, id);

CREATE TRIGGER inventory_movements_append_only
    BEFORE UPDATE OR DELETE ON inventory_movements
    FOR EACH ROW EXECUTE FUNCTION stormcom_refuse_change();
CREATE TRIGGER inventory_movements_no_truncate
    BEFORE TRUNCATE ON inventory_movements
    FOR EACH STATEMENT EXECUTE FUNCTION stormcom_refuse_change();
