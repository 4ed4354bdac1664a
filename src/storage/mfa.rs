//! TOTP secrets, backup codes and MFA challenges.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TotpRow {
    pub user_id: String,
    pub tenant_id: String,
    pub secret: Vec<u8>,
    pub enabled: bool,
    pub last_step: Option<i64>,
    pub created_at: i64,
    pub enabled_at: Option<i64>,
}

/// Stores a new, not yet enabled secret (replacing a pending one; an enabled one stays).
pub async fn upsert_pending_totp(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    secret: &[u8],
    now: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO mfa_totp (user_id, tenant_id, secret, enabled, last_step, created_at, enabled_at) VALUES ($1, $2, $3, FALSE, NULL, $4, NULL) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = NULL, created_at = excluded.created_at WHERE mfa_totp.enabled = FALSE",
    )
    .bind(user_id).bind(tenant_id).bind(secret).bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

pub async fn find_totp(pool: &Pool, tenant_id: &str, user_id: &str) -> DbResult<Option<TotpRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, TotpRow>("SELECT * FROM mfa_totp WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(p)
        .await)
}

/// Accepts a code's time step once: only a step later than every accepted one passes.
pub async fn use_totp_step(pool: &Pool, user_id: &str, step: i64) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("UPDATE mfa_totp SET last_step = $2 WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)")
        .bind(user_id)
        .bind(step)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// Enables the pending secret and replaces the backup codes, atomically.
pub async fn enable_totp(
    pool: &Pool,
    user_id: &str,
    backup_hashes: &[String],
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        sqlx::query("UPDATE mfa_totp SET enabled = TRUE, enabled_at = $2 WHERE user_id = $1")
            .bind(user_id).bind(now).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for h in backup_hashes {
            sqlx::query("INSERT INTO mfa_backup_codes (user_id, code_hash, used_at) VALUES ($1, $2, NULL)")
                .bind(user_id).bind(h).execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

pub async fn replace_backup_codes(
    pool: &Pool,
    user_id: &str,
    backup_hashes: &[String],
) -> DbResult<()> {
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for h in backup_hashes {
            sqlx::query("INSERT INTO mfa_backup_codes (user_id, code_hash, used_at) VALUES ($1, $2, NULL)")
                .bind(user_id).bind(h).execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

pub async fn delete_totp(pool: &Pool, user_id: &str) -> DbResult<()> {
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        sqlx::query("DELETE FROM mfa_backup_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM mfa_totp WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await
    })
}

/// Uses a backup code once.
pub async fn use_backup_code(
    pool: &Pool,
    user_id: &str,
    code_hash: &str,
    now: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("UPDATE mfa_backup_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL")
        .bind(user_id)
        .bind(code_hash)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn count_backup_codes(pool: &Pool, user_id: &str) -> DbResult<i64> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM mfa_backup_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .fetch_one(p)
        .await)
}

pub async fn insert_challenge(
    pool: &Pool,
    id_hash: &str,
    tenant_id: &str,
    user_id: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("INSERT INTO mfa_challenges (id_hash, tenant_id, user_id, attempts, created_at, expires_at) VALUES ($1, $2, $3, 0, $4, $5)")
        .bind(id_hash).bind(tenant_id).bind(user_id).bind(now).bind(expires_at)
        .execute(p)
        .await
        .map(|_| ()))
}

/// The user of a live challenge, counting the attempt; a challenge allows `max` attempts.
pub async fn attempt_challenge(
    pool: &Pool,
    id_hash: &str,
    tenant_id: &str,
    now: i64,
    max: i64,
) -> DbResult<Option<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>(
        "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id_hash = $1 AND tenant_id = $2 AND expires_at > $3 AND attempts < $4 RETURNING user_id",
    )
    .bind(id_hash)
    .bind(tenant_id)
    .bind(now)
    .bind(max)
    .fetch_optional(p)
    .await)
}

pub async fn delete_challenge(pool: &Pool, id_hash: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM mfa_challenges WHERE id_hash = $1")
        .bind(id_hash)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}
