-- A client's own second-factor policy (off, optional, required); the stricter of the
-- tenant's and the client's applies.
ALTER TABLE clients ADD COLUMN mfa_policy TEXT;
