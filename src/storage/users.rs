//! Users table.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub email_key: String,
    pub email_verified: bool,
    pub password_hash: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub locale: Option<String>,
    pub attributes: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn insert_user(pool: &Pool, u: &UserRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO users (id, tenant_id, email, email_key, email_verified, password_hash, name, given_name, family_name, locale, attributes, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&u.id).bind(&u.tenant_id).bind(&u.email).bind(&u.email_key).bind(u.email_verified)
    .bind(&u.password_hash).bind(&u.name).bind(&u.given_name).bind(&u.family_name).bind(&u.locale)
    .bind(&u.attributes).bind(u.disabled).bind(u.created_at).bind(u.updated_at)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn find_user_by_email(
    pool: &Pool,
    tenant_id: &str,
    email_key: &str,
) -> DbResult<Option<UserRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE tenant_id = $1 AND email_key = $2")
        .bind(tenant_id)
        .bind(email_key)
        .fetch_optional(p)
        .await)
}

pub async fn find_user(pool: &Pool, tenant_id: &str, user_id: &str) -> DbResult<Option<UserRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(p)
        .await)
}

pub async fn update_password_hash(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    hash: &str,
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("UPDATE users SET password_hash = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()))
}

/// A page of users ordered by creation, after the cursor `(created_at, id)`.
pub async fn list_users(
    pool: &Pool,
    tenant_id: &str,
    after: Option<(i64, &str)>,
    limit: i64,
) -> DbResult<Vec<UserRow>> {
    let (t, id) = after.unwrap_or((i64::MIN, ""));
    dispatch!(pool, p => sqlx::query_as::<_, UserRow>(
        "SELECT * FROM users WHERE tenant_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) ORDER BY created_at, id LIMIT $4",
    )
    .bind(tenant_id)
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(p)
    .await)
}

pub async fn delete_user(pool: &Pool, tenant_id: &str, user_id: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}
