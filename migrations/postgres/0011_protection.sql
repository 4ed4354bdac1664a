-- Banned client addresses (an IPv4 address, an IPv6 /64, or a CIDR range): repeat
-- offenders of the rate limiter and operators' bans. Shared by every instance.
CREATE TABLE ip_bans (
    ip          TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    created_by  TEXT NOT NULL
);

-- Background jobs that must run once across instances: the instance that moves
-- next_run_at forward runs the job.
CREATE TABLE job_runs (
    name         TEXT PRIMARY KEY,
    next_run_at  BIGINT NOT NULL,
    last_run_at  BIGINT NOT NULL,
    holder       TEXT NOT NULL,
    runs         BIGINT NOT NULL
);
