-- The purge job deletes by age alone: audit events older than `audit_retention_days` across
-- all tenants (deleted ones too), and the refresh tokens and codes that expired more than
-- `expired_retention_secs` ago. Without these indexes each run scanned the whole table while
-- holding the write lock (SQLite) for as long as the scan took.
CREATE INDEX audit_events_by_time ON audit_events (created_at);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
