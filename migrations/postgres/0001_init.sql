-- Portcullis schema, version 1. Instants are Unix seconds (BIGINT); ids are TEXT;
-- lists are JSON arrays in TEXT columns. Secrets appear only as digests or sealed bytes.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    alg           TEXT NOT NULL,
    state         TEXT NOT NULL,
    private_key   BYTEA NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    activated_at  BIGINT,
    retired_at    BIGINT,
    expires_at    BIGINT
);
CREATE INDEX signing_keys_by_tenant ON signing_keys (tenant_id, state);

CREATE TABLE clients (
    client_id                  TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                       TEXT NOT NULL,
    secret_hash                TEXT,
    confidential               BOOLEAN NOT NULL,
    redirect_uris              TEXT NOT NULL,
    post_logout_redirect_uris  TEXT NOT NULL,
    grant_types                TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    allowed_origins            TEXT NOT NULL,
    backchannel_logout_uri     TEXT,
    skip_consent               BOOLEAN NOT NULL,
    require_pkce               BOOLEAN NOT NULL,
    signing_alg                TEXT NOT NULL,
    access_token_ttl           BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL
);
CREATE INDEX clients_by_tenant ON clients (tenant_id);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL,
    email_verified  BOOLEAN NOT NULL,
    password_hash   TEXT,
    name            TEXT,
    given_name      TEXT,
    family_name     TEXT,
    locale          TEXT,
    attributes      TEXT NOT NULL DEFAULT '{}',
    disabled        BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (tenant_id, email_key)
);

CREATE TABLE roles (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    permissions  TEXT NOT NULL,
    inherits     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, client_id, name)
);

CREATE TABLE user_roles (
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id  TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE browser_sessions (
    id_hash      TEXT PRIMARY KEY,
    sid          TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    auth_time    BIGINT NOT NULL,
    amr          TEXT NOT NULL,
    acr          TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX browser_sessions_by_user ON browser_sessions (user_id);

CREATE TABLE session_clients (
    sid        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    PRIMARY KEY (sid, client_id)
);

CREATE TABLE authorization_requests (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id    TEXT NOT NULL,
    params       TEXT NOT NULL,
    sid          TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE TABLE consents (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE authorization_codes (
    code_hash         TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    sid               TEXT NOT NULL,
    redirect_uri      TEXT NOT NULL,
    scope             TEXT NOT NULL,
    nonce             TEXT,
    code_challenge    TEXT,
    claims            TEXT,
    auth_time         BIGINT NOT NULL,
    amr               TEXT NOT NULL,
    acr               TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    redeemed_at       BIGINT,
    access_token_jti  TEXT,
    access_token_exp  BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash        TEXT PRIMARY KEY,
    family_id         TEXT NOT NULL,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id         TEXT NOT NULL,
    user_id           TEXT,
    sid               TEXT,
    scope             TEXT NOT NULL,
    claims            TEXT,
    auth_time         BIGINT,
    amr               TEXT NOT NULL,
    acr               TEXT NOT NULL,
    code_hash         TEXT,
    access_token_jti  TEXT,
    access_token_exp  BIGINT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    used_at           BIGINT,
    revoked_at        BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_code ON refresh_tokens (code_hash);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);

CREATE TABLE revoked_access_tokens (
    jti         TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT,
    event           TEXT NOT NULL,
    actor           TEXT,
    client_id       TEXT,
    ip              TEXT,
    user_agent      TEXT,
    correlation_id  TEXT,
    details         TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, created_at);

CREATE TABLE backchannel_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id        TEXT NOT NULL,
    uri              TEXT NOT NULL,
    logout_token     TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    delivered_at     BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX backchannel_pending ON backchannel_deliveries (delivered_at, next_attempt_at);

CREATE TABLE platform_settings (
    key    TEXT PRIMARY KEY,
    value  BYTEA NOT NULL
);
