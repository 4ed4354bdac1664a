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
    pub preferred_username: Option<String>,
    pub picture: Option<String>,
    pub zoneinfo: Option<String>,
    pub attributes: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn insert_user(pool: &Pool, u: &UserRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO users (id, tenant_id, email, email_key, email_verified, password_hash, name, given_name, family_name, locale, attributes, disabled, created_at, updated_at, preferred_username, picture, zoneinfo) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&u.id).bind(&u.tenant_id).bind(&u.email).bind(&u.email_key).bind(u.email_verified)
    .bind(&u.password_hash).bind(&u.name).bind(&u.given_name).bind(&u.family_name).bind(&u.locale)
    .bind(&u.attributes).bind(u.disabled).bind(u.created_at).bind(u.updated_at)
    .bind(&u.preferred_username).bind(&u.picture).bind(&u.zoneinfo)
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

/// Replaces the profile claims of a user (bumping `updated_at`); false when there is none.
#[allow(clippy::too_many_arguments)] // one column each, bound once
pub async fn update_user_profile(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    profile: [&Option<String>; 7],
    now: i64,
) -> DbResult<bool> {
    let [name, given, family, preferred, picture, locale, zoneinfo] = profile;
    dispatch!(pool, p => sqlx::query(
        "UPDATE users SET name = $3, given_name = $4, family_name = $5, preferred_username = $6, picture = $7, locale = $8, zoneinfo = $9, updated_at = $10 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id).bind(user_id).bind(name).bind(given).bind(family).bind(preferred)
    .bind(picture).bind(locale).bind(zoneinfo).bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
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

/// A page of users ordered by creation, after the cursor `(created_at, id)`; with
/// `contains`, only those whose normalised e-mail contains it (lower case, no wildcards).
pub async fn list_users(
    pool: &Pool,
    tenant_id: &str,
    after: Option<(i64, &str)>,
    contains: Option<&str>,
    limit: i64,
) -> DbResult<Vec<UserRow>> {
    let (t, id) = after.unwrap_or((i64::MIN, ""));
    let pattern = contains.map(|c| {
        let escaped = c
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    dispatch!(pool, p => sqlx::query_as::<_, UserRow>(
        "SELECT * FROM users WHERE tenant_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3)) \
         AND ($5 IS NULL OR email_key LIKE $5 ESCAPE '\\') ORDER BY created_at, id LIMIT $4",
    )
    .bind(tenant_id)
    .bind(t)
    .bind(id)
    .bind(limit)
    .bind(pattern.as_deref())
    .fetch_all(p)
    .await)
}

/// Disables or enables a user; false when there is no such user.
pub async fn set_disabled(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    disabled: bool,
    now: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("UPDATE users SET disabled = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .bind(disabled)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn delete_user(pool: &Pool, tenant_id: &str, user_id: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn insert_password_history(
    pool: &Pool,
    user_id: &str,
    hash: &str,
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO password_history (user_id, hash, created_at, seq) \
         SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1 FROM password_history WHERE user_id = $1",
    )
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()))
}

/// The most recent previous hashes, newest first.
pub async fn list_password_history(
    pool: &Pool,
    user_id: &str,
    limit: i64,
) -> DbResult<Vec<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>("SELECT hash FROM password_history WHERE user_id = $1 ORDER BY seq DESC, created_at DESC LIMIT $2")
        .bind(user_id)
        .bind(limit)
        .fetch_all(p)
        .await)
}

pub async fn set_email_verified(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("UPDATE users SET email_verified = TRUE, updated_at = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .execute(p)
        .await
        .map(|_| ()))
}

pub async fn insert_email_token(
    pool: &Pool,
    token_hash: &str,
    tenant_id: &str,
    user_id: &str,
    purpose: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("INSERT INTO email_tokens (token_hash, tenant_id, user_id, purpose, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)")
        .bind(token_hash).bind(tenant_id).bind(user_id).bind(purpose).bind(now).bind(expires_at)
        .execute(p)
        .await
        .map(|_| ()))
}

/// Uses a live e-mail token once; returns its user.
pub async fn use_email_token(
    pool: &Pool,
    token_hash: &str,
    tenant_id: &str,
    purpose: &str,
    now: i64,
) -> DbResult<Option<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>(
        "UPDATE email_tokens SET used_at = $4 WHERE token_hash = $1 AND tenant_id = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $4 RETURNING user_id",
    )
    .bind(token_hash).bind(tenant_id).bind(purpose).bind(now)
    .fetch_optional(p)
    .await)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: String,
    pub tenant_id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

pub async fn insert_outbox(pool: &Pool, m: &OutboxRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("INSERT INTO outbox (id, tenant_id, recipient, subject, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&m.id).bind(&m.tenant_id).bind(&m.recipient).bind(&m.subject).bind(&m.body).bind(m.created_at)
        .execute(p)
        .await
        .map(|_| ()))
}

pub async fn list_outbox(
    pool: &Pool,
    tenant_id: &str,
    recipient: &str,
) -> DbResult<Vec<OutboxRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, OutboxRow>("SELECT * FROM outbox WHERE tenant_id = $1 AND recipient = $2 ORDER BY created_at, id")
        .bind(tenant_id)
        .bind(recipient)
        .fetch_all(p)
        .await)
}
