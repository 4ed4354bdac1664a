//! API keys table.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub previous_hash: Option<String>,
    pub previous_expires_at: Option<i64>,
    pub scopes: String,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub use_count: i64,
}

pub async fn insert_api_key(pool: &Pool, k: &ApiKeyRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, previous_hash, previous_expires_at, scopes, created_by, created_at, expires_at, revoked_at, last_used_at, use_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&k.id).bind(&k.tenant_id).bind(&k.name).bind(&k.prefix).bind(&k.key_hash).bind(&k.previous_hash)
    .bind(k.previous_expires_at).bind(&k.scopes).bind(&k.created_by).bind(k.created_at).bind(k.expires_at)
    .bind(k.revoked_at).bind(k.last_used_at).bind(k.use_count)
    .execute(p)
    .await
    .map(|_| ()))
}

/// The key whose current digest, or whose previous digest within its grace period, is `hash`.
pub async fn find_api_key_by_hash(
    pool: &Pool,
    hash: &str,
    now: i64,
) -> DbResult<Option<ApiKeyRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ApiKeyRow>(
        "SELECT * FROM api_keys WHERE key_hash = $1 UNION ALL SELECT * FROM api_keys WHERE previous_hash = $1 AND previous_expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .fetch_optional(p)
    .await)
}

pub async fn find_api_key(
    pool: &Pool,
    tenant_id: Option<&str>,
    id: &str,
) -> DbResult<Option<ApiKeyRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ApiKeyRow>(
        "SELECT * FROM api_keys WHERE id = $1 AND (tenant_id = $2 OR (tenant_id IS NULL AND $2 IS NULL))",
    )
    .bind(id)
    .bind(tenant_id)
    .fetch_optional(p)
    .await)
}

pub async fn list_api_keys(pool: &Pool, tenant_id: Option<&str>) -> DbResult<Vec<ApiKeyRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ApiKeyRow>(
        "SELECT * FROM api_keys WHERE tenant_id = $1 OR (tenant_id IS NULL AND $1 IS NULL) ORDER BY created_at, id",
    )
    .bind(tenant_id)
    .fetch_all(p)
    .await)
}

/// Replaces a live key's secret; the old digest stays valid until `grace_until`.
pub async fn rotate_api_key(
    pool: &Pool,
    id: &str,
    new_hash: &str,
    new_prefix: &str,
    grace_until: i64,
    now: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE api_keys SET previous_hash = key_hash, previous_expires_at = $4, key_hash = $2, prefix = $3 \
         WHERE id = $1 AND revoked_at IS NULL AND expires_at > $5",
    )
    .bind(id).bind(new_hash).bind(new_prefix).bind(grace_until).bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

pub async fn revoke_api_key(pool: &Pool, id: &str, now: i64) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// Adds usage counted in memory since the last flush.
pub async fn add_api_key_usage(
    pool: &Pool,
    id: &str,
    count: i64,
    last_used_at: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE api_keys SET use_count = use_count + $2, last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $3 THEN $3 ELSE last_used_at END WHERE id = $1",
    )
    .bind(id)
    .bind(count)
    .bind(last_used_at)
    .execute(p)
    .await
    .map(|_| ()))
}
