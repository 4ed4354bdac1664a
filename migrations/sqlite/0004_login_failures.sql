-- Brute-force protection: failed sign-ins per tenant and e-mail address (known or not, so
-- that a lockout says nothing about whether an account exists).
CREATE TABLE login_failures (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email_key     TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    locked_until  BIGINT,
    PRIMARY KEY (tenant_id, email_key)
);
