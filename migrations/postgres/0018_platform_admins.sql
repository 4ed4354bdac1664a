-- Platform administrators (the console at the root `/admin`: tenants and bans), created by
-- `portcullis admin create`, their console sessions (the cookie holds a random token, the
-- table only its SHA-256 digest) and their failed sign-ins (the columns of login_failures,
-- with tenant_id always '', so that the same statements count them).
CREATE TABLE platform_admins (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_sign_in_at BIGINT
);

CREATE TABLE platform_sessions (
    id_hash     TEXT PRIMARY KEY,
    admin_id    TEXT NOT NULL REFERENCES platform_admins(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX platform_sessions_by_expiry ON platform_sessions (expires_at);

CREATE TABLE platform_login_failures (
    tenant_id     TEXT NOT NULL,
    email_key     TEXT NOT NULL,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    locked_until  BIGINT,
    PRIMARY KEY (tenant_id, email_key)
);
