-- Brute-force defence (NIST SP 800-63B §5.2.2; threat model §5 "Failed Auth Attempts").
-- Counters live here, not in process memory, so every server process sees the same state.

-- Consecutive failures per subject: an account (keyed hash of the normalised email, so
-- unknown emails are counted exactly like real accounts) or a client address (IPv4, IPv6
-- /64), also keyed-hashed. `blocked_until`: no attempt of the subject is evaluated before.
CREATE TABLE auth_failures (
    subject_kind    TEXT        NOT NULL,
    subject_key     BYTEA       NOT NULL,
    failures        BIGINT      NOT NULL,
    last_attempt_at TIMESTAMPTZ NOT NULL,
    blocked_until   TIMESTAMPTZ,
    CONSTRAINT auth_failures_pkey PRIMARY KEY (subject_kind, subject_key),
    CONSTRAINT auth_failures_failures_check CHECK (failures >= 0)
);

-- Failed authentications per 15-minute window (unix seconds of its start) and kind
-- (password, totp, step_up, api_token): the baseline of the spike rule.
CREATE TABLE auth_failure_windows (
    window_start BIGINT      NOT NULL,
    kind         TEXT        NOT NULL,
    failures     BIGINT      NOT NULL,
    CONSTRAINT auth_failure_windows_pkey PRIMARY KEY (window_start, kind)
);

-- Alerts about the platform as a whole (the `alerts` table belongs to stores). One per
-- (kind, subject): a spike alert's subject is its window, so it is written once.
CREATE TABLE platform_alerts (
    id          UUID        NOT NULL,
    kind        TEXT        NOT NULL,
    subject     TEXT        NOT NULL,
    detail      TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    resolved_by TEXT,
    CONSTRAINT platform_alerts_pkey PRIMARY KEY (id),
    CONSTRAINT platform_alerts_kind_subject_key UNIQUE (kind, subject)
);
