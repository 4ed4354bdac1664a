//! Passkeys (WebAuthn credentials), users' WebAuthn handles and pending ceremonies.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PasskeyRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    /// base64url of the credential id.
    pub credential_id: String,
    pub name: String,
    /// The credential as webauthn-rs keeps it (public key, counter, flags), JSON.
    pub passkey: String,
    pub counter: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The user's WebAuthn handle, or `None` before their first passkey.
pub async fn find_handle(pool: &Pool, user_id: &str) -> DbResult<Option<String>> {
    dispatch!(pool, p => sqlx::query_scalar("SELECT handle FROM webauthn_users WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(p)
        .await)
}

/// Records `handle` for the user unless one exists; returns the one that holds.
pub async fn ensure_handle(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    handle: &str,
) -> DbResult<String> {
    dispatch!(pool, p => {
        sqlx::query("INSERT INTO webauthn_users (user_id, tenant_id, handle) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(user_id).bind(tenant_id).bind(handle)
            .execute(p).await?;
        sqlx::query_scalar("SELECT handle FROM webauthn_users WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(p)
            .await
    })
}

/// The user a handle belongs to in a tenant.
pub async fn find_user_by_handle(
    pool: &Pool,
    tenant_id: &str,
    handle: &str,
) -> DbResult<Option<String>> {
    dispatch!(pool, p => sqlx::query_scalar("SELECT user_id FROM webauthn_users WHERE tenant_id = $1 AND handle = $2")
        .bind(tenant_id).bind(handle)
        .fetch_optional(p)
        .await)
}

pub async fn insert_passkey(pool: &Pool, r: &PasskeyRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO passkeys (id, tenant_id, user_id, credential_id, name, passkey, counter, backup_eligible, backup_state, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&r.id).bind(&r.tenant_id).bind(&r.user_id).bind(&r.credential_id).bind(&r.name)
    .bind(&r.passkey).bind(r.counter).bind(r.backup_eligible).bind(r.backup_state)
    .bind(r.created_at).bind(r.last_used_at)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn list_passkeys(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
) -> DbResult<Vec<PasskeyRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, PasskeyRow>(
        "SELECT * FROM passkeys WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id",
    )
    .bind(tenant_id).bind(user_id)
    .fetch_all(p)
    .await)
}

pub async fn has_passkey(pool: &Pool, tenant_id: &str, user_id: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>(
        "SELECT id FROM passkeys WHERE tenant_id = $1 AND user_id = $2 LIMIT 1",
    )
    .bind(tenant_id).bind(user_id)
    .fetch_optional(p)
    .await
    .map(|r| r.is_some()))
}

pub async fn find_passkey(
    pool: &Pool,
    tenant_id: &str,
    credential_id: &str,
) -> DbResult<Option<PasskeyRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, PasskeyRow>(
        "SELECT * FROM passkeys WHERE tenant_id = $1 AND credential_id = $2",
    )
    .bind(tenant_id).bind(credential_id)
    .fetch_optional(p)
    .await)
}

/// Records a use: the new counter, flags and credential, only if the counter moved forward
/// (or both are 0, as synced passkeys report). False when it did not: another copy of the
/// authenticator got there first, or this one is a clone.
pub async fn record_use(pool: &Pool, r: &PasskeyRow, now: i64) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE passkeys SET counter = $3, passkey = $4, backup_eligible = $5, backup_state = $6, last_used_at = $7 \
         WHERE tenant_id = $1 AND id = $2 AND (counter < $3 OR ($3 = 0 AND counter = 0))",
    )
    .bind(&r.tenant_id).bind(&r.id).bind(r.counter).bind(&r.passkey)
    .bind(r.backup_eligible).bind(r.backup_state).bind(now)
    .execute(p)
    .await
    .map(|x| x.rows_affected() == 1))
}

pub async fn delete_passkey(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    id: &str,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND user_id = $2 AND id = $3")
        .bind(tenant_id).bind(user_id).bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn delete_user_passkeys(pool: &Pool, tenant_id: &str, user_id: &str) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query("DELETE FROM passkeys WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id).bind(user_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

pub async fn insert_ceremony(
    pool: &Pool,
    id_hash: &str,
    tenant_id: &str,
    purpose: &str,
    state: &str,
    expires_at: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO webauthn_ceremonies (id_hash, tenant_id, purpose, state, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id_hash).bind(tenant_id).bind(purpose).bind(state).bind(expires_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Takes a ceremony's state out (single use), if it exists for this tenant and purpose and
/// has not expired.
pub async fn take_ceremony(
    pool: &Pool,
    id_hash: &str,
    tenant_id: &str,
    purpose: &str,
    now: i64,
) -> DbResult<Option<String>> {
    dispatch!(pool, p => sqlx::query_scalar(
        "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 AND tenant_id = $2 AND purpose = $3 AND expires_at > $4 RETURNING state",
    )
    .bind(id_hash).bind(tenant_id).bind(purpose).bind(now)
    .fetch_optional(p)
    .await)
}

pub async fn delete_expired_ceremonies(pool: &Pool, cutoff: i64) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
        .bind(cutoff)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
