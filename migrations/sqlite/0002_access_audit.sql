-- Least privilege and a tamper-evident history: roles, grants, MFA, API tokens, the
-- hash-chained audit log and its signed checkpoints.
-- SQLite dialect: see 0001 for the type mapping.

-- Custom roles: named permission sets of one store. Built-in roles live in code.
CREATE TABLE roles (
    store_id    BLOB        NOT NULL,
    id          BLOB        NOT NULL,
    name        TEXT        NOT NULL,
    permissions TEXT        NOT NULL,
    created_by  BLOB        NOT NULL,
    created_at  TEXT        NOT NULL,
    CONSTRAINT roles_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT roles_name_key UNIQUE (store_id, name),
    CONSTRAINT roles_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id)
) STRICT;

-- A grant gives one user, in one store, exactly one of: a built-in role, a custom role or
-- a single permission. Membership of a store is holding at least one live grant in it.
CREATE TABLE grants (
    store_id     BLOB        NOT NULL,
    id           BLOB        NOT NULL,
    user_id      BLOB        NOT NULL,
    builtin_role TEXT,
    role_id      BLOB,
    permission   TEXT,
    granted_by   BLOB        NOT NULL,
    granted_at   TEXT        NOT NULL,
    expires_at   TEXT       ,
    revoked_at   TEXT       ,
    revoked_by   BLOB,
    CONSTRAINT grants_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT grants_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT grants_user_fkey FOREIGN KEY (user_id) REFERENCES users (id),
    CONSTRAINT grants_role_fkey FOREIGN KEY (store_id, role_id) REFERENCES roles (store_id, id),
    CONSTRAINT grants_one_subject_check CHECK (
        (builtin_role IS NOT NULL) + (role_id IS NOT NULL) + (permission IS NOT NULL) = 1
    ),
    CONSTRAINT grants_builtin_role_check CHECK (builtin_role IN ('owner', 'admin', 'staff', 'viewer'))
) STRICT;
CREATE INDEX grants_member_idx ON grants (store_id, user_id);
CREATE INDEX grants_user_idx ON grants (user_id);

INSERT INTO grants (store_id, id, user_id, builtin_role, granted_by, granted_at)
    SELECT store_id, randomblob(16), user_id, role, user_id, created_at FROM store_members;
DROP TABLE store_members;

ALTER TABLE users ADD COLUMN is_superuser INTEGER NOT NULL DEFAULT 0;
-- TOTP secret sealed with a key kept outside the database (AES-256-GCM, bound to the user).
ALTER TABLE users ADD COLUMN totp_secret BLOB ;
ALTER TABLE users ADD COLUMN totp_enabled_at TEXT       ;
-- The last accepted time step: a code is accepted at most once.
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN stepped_up_at TEXT       ;

CREATE TABLE recovery_codes (
    user_id   BLOB        NOT NULL,
    code_hash BLOB        NOT NULL,
    used_at   TEXT       ,
    CONSTRAINT recovery_codes_pkey PRIMARY KEY (user_id, code_hash),
    CONSTRAINT recovery_codes_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) STRICT;

CREATE TABLE api_tokens (
    store_id     BLOB        NOT NULL,
    id           BLOB        NOT NULL,
    name         TEXT        NOT NULL,
    token_hash   BLOB        NOT NULL,
    scopes       TEXT        NOT NULL,
    created_by   BLOB        NOT NULL,
    created_at   TEXT        NOT NULL,
    expires_at   TEXT       ,
    last_used_at TEXT       ,
    revoked_at   TEXT       ,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (store_id, id),
    CONSTRAINT api_tokens_hash_key UNIQUE (store_id, token_hash),
    CONSTRAINT api_tokens_store_fkey FOREIGN KEY (store_id) REFERENCES stores (id),
    CONSTRAINT api_tokens_creator_fkey FOREIGN KEY (created_by) REFERENCES users (id)
) STRICT;

-- One hash chain per store (chain_id = the store id) plus the platform chain (the nil
-- BLOB). The head row serialises appends: each append updates it first, which takes
-- its row lock until commit.
CREATE TABLE audit_heads (
    chain_id BLOB   NOT NULL,
    seq      INTEGER NOT NULL,
    hash     BLOB   NOT NULL,
    CONSTRAINT audit_heads_pkey PRIMARY KEY (chain_id)
) STRICT;

CREATE TABLE audit_log (
    chain_id  BLOB        NOT NULL,
    seq       INTEGER      NOT NULL,
    prev_hash BLOB        NOT NULL,
    hash      BLOB        NOT NULL,
    at        TEXT        NOT NULL,
    actor     TEXT        NOT NULL,
    actor_ip  TEXT,
    action    TEXT        NOT NULL,
    target    TEXT        NOT NULL,
    summary   TEXT        NOT NULL,
    CONSTRAINT audit_log_pkey PRIMARY KEY (chain_id, seq)
) STRICT;

CREATE TABLE audit_checkpoints (
    chain_id  BLOB        NOT NULL,
    seq       INTEGER      NOT NULL,
    head_hash BLOB        NOT NULL,
    at        TEXT        NOT NULL,
    key_id    TEXT        NOT NULL,
    signature BLOB        NOT NULL,
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (chain_id, seq, key_id)
) STRICT;

CREATE TRIGGER audit_log_no_update
    BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'append_only: audit_log rows cannot be changed or deleted'); END;
CREATE TRIGGER audit_log_no_delete
    BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'append_only: audit_log rows cannot be changed or deleted'); END;
CREATE TRIGGER audit_checkpoints_no_update
    BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'append_only: audit_checkpoints rows cannot be changed or deleted'); END;
CREATE TRIGGER audit_checkpoints_no_delete
    BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'append_only: audit_checkpoints rows cannot be changed or deleted'); END;

-- Every chain has a head row from the start: the platform chain here, a store's chain
-- when the store is created (and for stores that exist already, here).
INSERT INTO audit_heads (chain_id, seq, hash) VALUES (zeroblob(16), 0, zeroblob(32));
INSERT INTO audit_heads (chain_id, seq, hash) SELECT id, 0, zeroblob(32) FROM stores;
