-- DPoP (RFC 9449): a client may be required to send proofs (`dpop_bound_access_tokens`,
-- §5.2); an authorization code may be bound to a key (`dpop_jkt`, §10) and so may the
-- refresh tokens of public clients (§5). FAPI 2.0: a client may follow a security profile.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN profile TEXT;
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT;
