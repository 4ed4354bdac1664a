-- API keys: tenant-scoped (tenant_id NULL = platform key), stored as a keyed digest
-- (HMAC-SHA256 under a key derived from the master key) with a visible prefix. Rotation
-- keeps the previous digest valid until previous_expires_at (grace period).

CREATE TABLE api_keys (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    name                 TEXT NOT NULL,
    prefix               TEXT NOT NULL,
    key_hash             TEXT NOT NULL UNIQUE,
    previous_hash        TEXT UNIQUE,
    previous_expires_at  BIGINT,
    scopes               TEXT NOT NULL,
    created_by           TEXT,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    revoked_at           BIGINT,
    last_used_at         BIGINT,
    use_count            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id);
