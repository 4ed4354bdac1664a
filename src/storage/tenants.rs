//! Tenants table.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub settings: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn insert_tenant(pool: &Pool, row: &TenantRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO tenants (id, slug, name, settings, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&row.id)
    .bind(&row.slug)
    .bind(&row.name)
    .bind(&row.settings)
    .bind(row.created_at)
    .bind(row.updated_at)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn find_tenant_by_slug(pool: &Pool, slug: &str) -> DbResult<Option<TenantRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, TenantRow>("SELECT * FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(p)
        .await)
}

pub async fn list_tenants(pool: &Pool) -> DbResult<Vec<TenantRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, TenantRow>("SELECT * FROM tenants ORDER BY slug")
        .fetch_all(p)
        .await)
}

/// The instant of the tenant's last configuration change (settings, keys, clients), which
/// instances compare against their cache.
pub async fn find_tenant_version(pool: &Pool, slug: &str) -> DbResult<Option<i64>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>("SELECT updated_at FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(p)
        .await)
}

/// Marks the tenant's configuration as changed so that every instance reloads it.
pub async fn touch_tenant(pool: &Pool, tenant_id: &str, now: i64) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE tenants SET updated_at = CASE WHEN updated_at >= $2 THEN updated_at + 1 ELSE $2 END WHERE id = $1",
    )
    .bind(tenant_id)
    .bind(now)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn update_tenant_settings(
    pool: &Pool,
    tenant_id: &str,
    settings: &str,
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE tenants SET settings = $2, updated_at = CASE WHEN updated_at >= $3 THEN updated_at + 1 ELSE $3 END WHERE id = $1",
    )
    .bind(tenant_id)
    .bind(settings)
    .bind(now)
    .execute(p)
    .await
    .map(|_| ()))
}
