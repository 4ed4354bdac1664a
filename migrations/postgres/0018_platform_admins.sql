-- Platform administrators (the console at the root `/admin`: tenants and bans), created by
-- `portcullis admin create`, and their console sessions (the cookie holds a random token,
-- the table only its SHA-256 digest).
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
