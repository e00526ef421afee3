-- SQLite dialect: see 0001 for the type mapping.
-- Subscription plans: each organization is on one plan (its quotas and request rates
-- are configuration, not data). Existing organizations start on the free plan.
ALTER TABLE organizations ADD COLUMN plan TEXT NOT NULL DEFAULT 'free'
    CONSTRAINT organizations_plan_check CHECK (plan IN ('free', 'pro', 'enterprise'));
