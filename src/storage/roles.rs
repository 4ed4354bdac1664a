//! Roles and role assignments.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoleRow {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub permissions: String,
    pub inherits: String,
    pub created_at: i64,
}

pub async fn insert_role(pool: &Pool, r: &RoleRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO roles (id, tenant_id, client_id, name, description, permissions, inherits, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&r.id).bind(&r.tenant_id).bind(&r.client_id).bind(&r.name).bind(&r.description)
    .bind(&r.permissions).bind(&r.inherits).bind(r.created_at)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn list_roles(pool: &Pool, tenant_id: &str) -> DbResult<Vec<RoleRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, RoleRow>("SELECT * FROM roles WHERE tenant_id = $1 ORDER BY client_id, name")
        .bind(tenant_id)
        .fetch_all(p)
        .await)
}

pub async fn find_role_by_name(
    pool: &Pool,
    tenant_id: &str,
    client_id: &str,
    name: &str,
) -> DbResult<Option<RoleRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, RoleRow>("SELECT * FROM roles WHERE tenant_id = $1 AND client_id = $2 AND name = $3")
        .bind(tenant_id)
        .bind(client_id)
        .bind(name)
        .fetch_optional(p)
        .await)
}

/// Names of the roles assigned directly to a user, with the client they are scoped to
/// (`''` for tenant-wide roles).
pub async fn list_user_role_ids(pool: &Pool, user_id: &str) -> DbResult<Vec<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>("SELECT role_id FROM user_roles WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(p)
        .await)
}

pub async fn insert_user_role(pool: &Pool, user_id: &str, role_id: &str) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .bind(role_id)
        .execute(p)
        .await
        .map(|_| ()))
}

pub async fn update_role(pool: &Pool, tenant_id: &str, r: &RoleRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE roles SET description = $3, permissions = $4, inherits = $5 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id).bind(&r.id).bind(&r.description).bind(&r.permissions).bind(&r.inherits)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn delete_role(pool: &Pool, tenant_id: &str, id: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn delete_user_role(pool: &Pool, user_id: &str, role_id: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
        .bind(user_id)
        .bind(role_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}
