//! Banned client addresses.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BanRow {
    pub ip: String,
    pub reason: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub created_by: String,
}

/// Inserts a ban, or replaces the one on the same address.
pub async fn upsert_ban(pool: &Pool, b: &BanRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO ip_bans (ip, reason, created_at, expires_at, created_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (ip) DO UPDATE SET reason = $2, created_at = $3, expires_at = $4, created_by = $5",
    )
    .bind(&b.ip).bind(&b.reason).bind(b.created_at).bind(b.expires_at).bind(&b.created_by)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn list_live_bans(pool: &Pool, now: i64) -> DbResult<Vec<BanRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, BanRow>(
        "SELECT * FROM ip_bans WHERE expires_at IS NULL OR expires_at > $1 ORDER BY created_at, ip",
    )
    .bind(now)
    .fetch_all(p)
    .await)
}

pub async fn delete_ban(pool: &Pool, ip: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM ip_bans WHERE ip = $1")
        .bind(ip)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn delete_expired_bans(pool: &Pool, now: i64) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query("DELETE FROM ip_bans WHERE expires_at IS NOT NULL AND expires_at <= $1")
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
