-- Passkeys (WebAuthn): each user's random user handle (what authenticators store instead
-- of the account's id), the registered credentials with the signature counter and the
-- backup flags of their last use, and the state of ceremonies between their two requests
-- (single use, short-lived, so any instance can finish what another started).
CREATE TABLE webauthn_users (
    user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    handle     TEXT NOT NULL
);
CREATE UNIQUE INDEX webauthn_users_by_handle ON webauthn_users (tenant_id, handle);

CREATE TABLE passkeys (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    credential_id    TEXT NOT NULL,
    name             TEXT NOT NULL,
    passkey          TEXT NOT NULL,
    counter          BIGINT NOT NULL,
    backup_eligible  BOOLEAN NOT NULL,
    backup_state     BOOLEAN NOT NULL,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT
);
CREATE UNIQUE INDEX passkeys_by_credential ON passkeys (tenant_id, credential_id);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

CREATE TABLE webauthn_ceremonies (
    id_hash     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    state       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_by_expiry ON webauthn_ceremonies (expires_at);
