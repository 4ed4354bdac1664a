-- Federation: upstream identity providers per tenant (Google and other OIDC providers,
-- SAML 2.0 IdPs), the identities they vouch for, and the flows in flight.
CREATE TABLE sso_connections (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    protocol            TEXT NOT NULL,
    provider            TEXT,
    -- Protocol settings as JSON (issuer, client id, metadata URL, options).
    config              TEXT NOT NULL,
    -- The upstream client secret, sealed with the master key (AAD = connection id).
    client_secret       BLOB,
    -- SAML: the IdP metadata document last fetched (or given inline).
    metadata_xml        TEXT,
    metadata_fetched_at BIGINT,
    domains             TEXT NOT NULL,
    attribute_mapping   TEXT NOT NULL,
    enabled             BOOLEAN NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX sso_connections_tenant ON sso_connections (tenant_id);

CREATE TABLE federated_identities (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL REFERENCES sso_connections(id) ON DELETE CASCADE,
    subject        TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    last_login_at  BIGINT NOT NULL,
    PRIMARY KEY (connection_id, subject)
);
CREATE INDEX federated_identities_user ON federated_identities (user_id);

-- A redirect to an upstream provider awaiting its answer. id_hash is the SHA-256 of the
-- state (OIDC) or RelayState (SAML) value; browser_hash binds an OIDC flow to the browser
-- that started it; secrets (PKCE verifier, nonce) are sealed.
CREATE TABLE federation_flows (
    id_hash          TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id    TEXT NOT NULL REFERENCES sso_connections(id) ON DELETE CASCADE,
    request_id       TEXT,
    browser_hash     TEXT,
    secrets          BLOB,
    saml_request_id  TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    consumed_at      BIGINT
);

-- SAML assertion ids already accepted (replay detection) until they expire.
CREATE TABLE saml_assertions_seen (
    connection_id  TEXT NOT NULL REFERENCES sso_connections(id) ON DELETE CASCADE,
    assertion_id   TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (connection_id, assertion_id)
);

-- The tenant's SAML service-provider key pair (signs AuthnRequests; published in SP
-- metadata). The private key is sealed with the master key (AAD = tenant id).
CREATE TABLE saml_sp_keys (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    private_key  BLOB NOT NULL,
    certificate  TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- A sign-in finished upstream that still owes the tenant's second factor.
ALTER TABLE authorization_requests ADD COLUMN first_factor TEXT;
