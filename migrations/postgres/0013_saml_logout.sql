-- SAML Single Logout: which upstream SAML session a Portcullis session came from (the IdP's
-- NameID, as given, and SessionIndex), so that signing out here can end it at the IdP and a
-- LogoutRequest from the IdP can find the sessions it names. A row goes with its session.
CREATE TABLE saml_sessions (
    sid                TEXT PRIMARY KEY REFERENCES browser_sessions(sid) ON DELETE CASCADE,
    tenant_id          TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    connection_id      TEXT NOT NULL REFERENCES sso_connections(id) ON DELETE CASCADE,
    name_id            TEXT NOT NULL,
    name_id_format     TEXT,
    name_qualifier     TEXT,
    sp_name_qualifier  TEXT,
    session_index      TEXT,
    created_at         BIGINT NOT NULL
);
CREATE INDEX saml_sessions_subject ON saml_sessions (connection_id, name_id);

-- A flow that is a sign-out round trip to the IdP (SP-initiated Single Logout): where the
-- browser goes once the IdP answers ('' for the signed-out page).
ALTER TABLE federation_flows ADD COLUMN logout_return TEXT;

-- The upstream SAML session of a federated sign-in that still owes the second factor.
ALTER TABLE authorization_requests ADD COLUMN upstream_session TEXT;
