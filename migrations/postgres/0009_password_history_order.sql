-- Insertion order of password history (several changes can share a second).
ALTER TABLE password_history ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
