//! Platform-wide settings (key → sealed or plain bytes).

use super::{dispatch, DbResult, Pool};

pub async fn find_setting(pool: &Pool, key: &str) -> DbResult<Option<Vec<u8>>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM platform_settings WHERE key = $1")
        .bind(key)
        .fetch_optional(p)
        .await)
}

pub async fn upsert_setting(pool: &Pool, key: &str, value: &[u8]) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("INSERT INTO platform_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(p)
        .await
        .map(|_| ()))
}
