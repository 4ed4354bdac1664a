-- RFC 7592: the registration access token of a dynamically registered client, as a digest.
ALTER TABLE clients ADD COLUMN registration_token_hash TEXT;
