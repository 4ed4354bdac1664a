//! Failed sign-ins per tenant and e-mail address, and of the platform console.

use super::{dispatch, DbResult, Pool};

/// Whose sign-ins are counted: a tenant's users, or the platform administrators.
#[derive(Debug, Clone, Copy)]
pub enum Ledger<'a> {
    Tenant(&'a str),
    Platform,
}

impl Ledger<'_> {
    fn table(self) -> &'static str {
        match self {
            Ledger::Tenant(_) => "login_failures",
            Ledger::Platform => "platform_login_failures",
        }
    }

    fn tenant_id(&self) -> &str {
        match self {
            Ledger::Tenant(id) => id,
            Ledger::Platform => "",
        }
    }
}

/// The instant until which sign-ins for this address are refused, if that is in the future.
pub async fn find_lock(
    pool: &Pool,
    ledger: Ledger<'_>,
    email_key: &str,
    now: i64,
) -> DbResult<Option<i64>> {
    let sql = format!(
        "SELECT locked_until FROM {} WHERE tenant_id = $1 AND email_key = $2 AND locked_until > $3",
        ledger.table()
    );
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>(&sql)
    .bind(ledger.tenant_id())
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
    ledger: Ledger<'_>,
    email_key: &str,
    now: i64,
    window: i64,
    threshold: i64,
    duration: i64,
) -> DbResult<Option<i64>> {
    let sql = format!(
        "INSERT INTO {t} (tenant_id, email_key, failures, window_start, locked_until) \
         VALUES ($1, $2, 1, $3, CASE WHEN 1 >= $5 THEN $3 + $6 ELSE NULL END) \
         ON CONFLICT (tenant_id, email_key) DO UPDATE SET \
           failures = CASE WHEN {t}.window_start <= $3 - $4 THEN 1 ELSE {t}.failures + 1 END, \
           window_start = CASE WHEN {t}.window_start <= $3 - $4 THEN $3 ELSE {t}.window_start END, \
           locked_until = CASE WHEN (CASE WHEN {t}.window_start <= $3 - $4 THEN 1 ELSE {t}.failures + 1 END) >= $5 \
                               THEN $3 + $6 ELSE {t}.locked_until END \
         RETURNING locked_until",
        t = ledger.table()
    );
    dispatch!(pool, p => sqlx::query_scalar::<_, Option<i64>>(&sql)
    .bind(ledger.tenant_id())
    .bind(email_key)
    .bind(now)
    .bind(window)
    .bind(threshold)
    .bind(duration)
    .fetch_one(p)
    .await)
}

/// Forgets the failures of an address (after a successful sign-in, or an admin's unlock).
pub async fn clear_failures(pool: &Pool, ledger: Ledger<'_>, email_key: &str) -> DbResult<()> {
    let sql = format!(
        "DELETE FROM {} WHERE tenant_id = $1 AND email_key = $2",
        ledger.table()
    );
    dispatch!(pool, p => sqlx::query(&sql)
        .bind(ledger.tenant_id())
        .bind(email_key)
        .execute(p)
        .await
        .map(|_| ()))
}
