-- Least privilege and a tamper-evident history: roles, grants, MFA, API tokens, the
-- hash-chained audit log and its signed checkpoints.

-- Custom roles: named permission sets of one store. Built-in roles live in code.
CREATE TABLE roles (
    store_id    UUID        NOT NULL,
    id          UUID        NOT NULL,
    name        TEXT        NOT NULL,
    permissions TEXT        NOT NULL,
    created_by  UUID        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT roles_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT roles_name_key UNIQUE (store_id, name),
    CONSTRAINT roles_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id)
);

-- A grant gives one user, in one store, exactly one of: a built-in role, a custom role or
-- a single permission. Membership of a store is holding at least one live grant in it.
CREATE TABLE grants (
    store_id     UUID        NOT NULL,
    id           UUID        NOT NULL,
    user_id      UUID        NOT NULL,
    builtin_role TEXT,
    role_id      UUID,
    permission   TEXT,
    granted_by   UUID        NOT NULL,
    granted_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    revoked_by   UUID,
    CONSTRAINT grants_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT grants_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT grants_user_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT grants_role_fkey FOREIGN KEY (store_id, role_id) REFERENCES roles (store_id, id),
    CONSTRAINT grants_one_subject_check CHECK (
        (builtin_role IS NOT NULL)::int + (role_id IS NOT NULL)::int + (permission IS NOT NULL)::int = 1
    ),
    CONSTRAINT grants_builtin_role_check CHECK (builtin_role IN ('owner', 'admin', 'staff', 'viewer'))
);
CREATE INDEX grants_member_idx ON grants (store_id, user_id);
CREATE INDEX grants_user_idx ON grants (user_id);

INSERT INTO grants (store_id, id, user_id, builtin_role, granted_by, granted_at)
    SELECT store_id, gen_random_uuid(), user_id, role, user_id, created_at FROM store_members;
DROP TABLE store_members;

ALTER TABLE users ADD COLUMN is_superuser BOOLEAN NOT NULL DEFAULT FALSE;
-- TOTP secret sealed with a key kept outside the database (AES-256-GCM, bound to the user).
ALTER TABLE users ADD COLUMN totp_secret BYTEA;
ALTER TABLE users ADD COLUMN totp_enabled_at TIMESTAMPTZ;
-- The last accepted time step: a code is accepted at most once.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN stepped_up_at TIMESTAMPTZ;

CREATE TABLE recovery_codes (
    user_id   UUID        NOT NULL,
    code_hash BYTEA       NOT NULL,
    used_at   TIMESTAMPTZ,
    CONSTRAINT recovery_codes_pkey PRIMARY KEY (user_id, code_hash),
    CONSTRAINT recovery_codes_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE api_tokens (
    store_id     UUID        NOT NULL,
    id           UUID        NOT NULL,
    name         TEXT        NOT NULL,
    token_hash   BYTEA       NOT NULL,
    scopes       TEXT        NOT NULL,
    created_by   UUID        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT api_tokens_hash_key UNIQUE (store_id, token_hash),
    CONSTRAINT api_tokens_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT api_tokens_creator_fkey FOREIGN KEY (created_by) REFERENCES users (id)
);

-- One hash chain per store (chain_id = the store id) plus the platform chain (the nil
-- UUID). The head row serialises appends: each append updates it first, which takes
-- its row lock until commit.
CREATE TABLE audit_heads (
    chain_id UUID   NOT NULL,
    seq      BIGINT NOT NULL,
    hash     BYTEA  NOT NULL,
    CONSTRAINT audit_heads_pkey PRIMARY KEY (chain_id)
);

CREATE TABLE audit_log (
    chain_id  UUID        NOT NULL,
    seq       BIGINT      NOT NULL,
    prev_hash BYTEA       NOT NULL,
    hash      BYTEA       NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT        NOT NULL,
    actor_ip  TEXT,
    action    TEXT        NOT NULL,
    target    TEXT        NOT NULL,
    summary   TEXT        NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (chain_id, seq)
);

CREATE TABLE audit_checkpoints (
    chain_id  UUID        NOT NULL,
    seq       BIGINT      NOT NULL,
    head_hash BYTEA       NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    key_id    TEXT        NOT NULL,
    signature BYTEA       NOT NULL,
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (chain_id, seq, key_id)
);

CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION stormcom_refuse_change();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION stormcom_refuse_change();
CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION stormcom_refuse_change();
CREATE TRIGGER audit_checkpoints_no_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION stormcom_refuse_change();

-- Every chain has a head row from the start: the platform chain here, a store's chain
-- when the store is created (and for stores that exist already, here).
INSERT INTO audit_heads (chain_id, seq, hash)
    VALUES ('00000000-0000-0000-0000-000000000000', 0, decode(repeat('00', 32), 'hex'));
INSERT INTO audit_heads (chain_id, seq, hash)
    SELECT id, 0, decode(repeat('00', 32), 'hex') FROM stores;
