-- Scopes a client declares privileged: requesting one needs the second factor.
ALTER TABLE clients ADD COLUMN privileged_scopes TEXT NOT NULL DEFAULT '[]';
