-- private_key_jwt (RFC 7523, OpenID Connect Core §9): how a client authenticates at the
-- token, introspection, revocation and PAR endpoints, and the public keys it registered
-- (inline `jwks` or a `jwks_uri`, never both). PAR (RFC 9126): a client may be required to
-- push its authorization requests.
ALTER TABLE clients ADD COLUMN token_endpoint_auth_method TEXT NOT NULL DEFAULT 'client_secret_basic';
ALTER TABLE clients ADD COLUMN jwks TEXT;
ALTER TABLE clients ADD COLUMN jwks_uri TEXT;
ALTER TABLE clients ADD COLUMN token_endpoint_auth_signing_alg TEXT;
ALTER TABLE clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE clients SET token_endpoint_auth_method = 'none' WHERE NOT confidential;

-- Identifiers of single-use JWTs (client assertions now, DPoP proofs later) until they
-- expire: the primary key refuses a second use on every instance sharing the database.
CREATE TABLE used_jtis (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, issuer, jti)
);
CREATE INDEX used_jtis_by_expiry ON used_jtis (expires_at);

-- Pushed authorization requests (RFC 9126): the validated request, found by the digest of
-- its request_uri, bound to its client, used once.
CREATE TABLE pushed_requests (
    uri_hash    TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    params      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX pushed_requests_by_expiry ON pushed_requests (expires_at);
