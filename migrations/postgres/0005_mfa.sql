-- TOTP (RFC 6238) second factor: the secret sealed with the master key; last_step makes
-- every code single-use. Backup codes as SHA-256 digests. MFA challenges of the JSON API.
CREATE TABLE mfa_totp (
    user_id     TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    secret      BYTEA NOT NULL,
    enabled     BOOLEAN NOT NULL,
    last_step   BIGINT,
    created_at  BIGINT NOT NULL,
    enabled_at  BIGINT
);

CREATE TABLE mfa_backup_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE mfa_challenges (
    id_hash     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    attempts    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- A sign-in waiting for its second factor.
ALTER TABLE authorization_requests ADD COLUMN mfa_user_id TEXT;
