//! Failed sign-ins per tenant and e-mail address.

use super::{dispatch, DbResult, Pool};

/// The instant until which sign-ins for this address are refused, if that is in the future.
pub async fn find_lock(
    pool: &Pool,
    tenant_id: &str,
    email_key: &str,
    now: i64,
) -> DbResult<Option<i64>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>(
        "SELECT locked_until FROM login_failures WHERE tenant_id = $1 AND email_key = $2 AND locked_until > $3",
    )
    .bind(tenant_id)
    .bind(email_key)
    .bind(now)
    .fetch_optional(p)
    .await)
}

/// Counts a failure atomically: within `window` seconds of the first failure the count
/// grows, after it restarts at 1; reaching `threshold` locks for `duration` seconds.
/// Returns the lock's end when this failure locked (or the address was locked).
pub async fn record_failure(
    pool: &Pool,
    tenant_id: &str,
    email_key: &str,
    now: i64,
    window: i64,
    threshold: i64,
    duration: i64,
) -> DbResult<Option<i64>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, Option<i64>>(
        "INSERT INTO login_failures (tenant_id, email_key, failures, window_start, locked_until) \
         VALUES ($1, $2, 1, $3, CASE WHEN 1 >= $5 THEN $3 + $6 ELSE NULL END) \
         ON CONFLICT (tenant_id, email_key) DO UPDATE SET \
           failures = CASE WHEN login_failures.window_start <= $3 - $4 THEN 1 ELSE login_failures.failures + 1 END, \
           window_start = CASE WHEN login_failures.window_start <= $3 - $4 THEN $3 ELSE login_failures.window_start END, \
           locked_until = CASE WHEN (CASE WHEN login_failures.window_start <= $3 - $4 THEN 1 ELSE login_failures.failures + 1 END) >= $5 \
                               THEN $3 + $6 ELSE login_failures.locked_until END \
         RETURNING locked_until",
    )
    .bind(tenant_id)
    .bind(email_key)
    .bind(now)
    .bind(window)
    .bind(threshold)
    .bind(duration)
    .fetch_one(p)
    .await)
}

/// Forgets the failures of an address (after a successful sign-in, or an admin's unlock).
pub async fn clear_failures(pool: &Pool, tenant_id: &str, email_key: &str) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("DELETE FROM login_failures WHERE tenant_id = $1 AND email_key = $2")
        .bind(tenant_id)
        .bind(email_key)
        .execute(p)
        .await
        .map(|_| ()))
}
