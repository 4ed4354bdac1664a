-- The tenant's SAML service-provider encryption key pair: IdPs encrypt assertions to its
-- certificate (published in SP metadata with use="encryption"); kept apart from the
-- signing key. The private key is sealed with the master key (AAD = tenant id).
CREATE TABLE saml_sp_encryption_keys (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    private_key  BYTEA NOT NULL,
    certificate  TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);


-- A flow started from the account page to link another sign-in method to the signed-in
-- user (instead of signing someone in).
ALTER TABLE federation_flows ADD COLUMN link_user_id TEXT;

-- The rest of the OpenID Connect Core §5.1 claims a user record holds (the profile scope).
ALTER TABLE users ADD COLUMN preferred_username TEXT;
ALTER TABLE users ADD COLUMN picture TEXT;
ALTER TABLE users ADD COLUMN zoneinfo TEXT;
