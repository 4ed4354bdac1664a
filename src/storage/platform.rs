//! Platform administrators and their console sessions.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlatformAdminRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    pub last_sign_in_at: Option<i64>,
}

/// Inserts an administrator; false when the address is taken.
pub async fn insert_admin(pool: &Pool, r: &PlatformAdminRow) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO platform_admins (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING",
    )
    .bind(&r.id).bind(&r.email).bind(&r.password_hash).bind(r.created_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

pub async fn find_admin_by_email(pool: &Pool, email: &str) -> DbResult<Option<PlatformAdminRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, PlatformAdminRow>(
        "SELECT * FROM platform_admins WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(p)
    .await)
}

/// Stores a re-hashed password (after a sign-in with outdated hash parameters) and the
/// time of the sign-in.
pub async fn record_sign_in(
    pool: &Pool,
    id: &str,
    new_hash: Option<&str>,
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE platform_admins SET last_sign_in_at = $2, password_hash = COALESCE($3, password_hash) WHERE id = $1",
    )
    .bind(id).bind(now).bind(new_hash)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn insert_session(
    pool: &Pool,
    id_hash: &str,
    admin_id: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO platform_sessions (id_hash, admin_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash).bind(admin_id).bind(now).bind(expires_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// The administrator of a live session.
pub async fn find_session_admin(
    pool: &Pool,
    id_hash: &str,
    now: i64,
) -> DbResult<Option<PlatformAdminRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, PlatformAdminRow>(
        "SELECT a.* FROM platform_sessions s JOIN platform_admins a ON a.id = s.admin_id WHERE s.id_hash = $1 AND s.expires_at > $2",
    )
    .bind(id_hash).bind(now)
    .fetch_optional(p)
    .await)
}

pub async fn delete_session(pool: &Pool, id_hash: &str) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("DELETE FROM platform_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(p)
        .await
        .map(|_| ()))
}

pub async fn delete_expired_sessions(pool: &Pool, now: i64) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query("DELETE FROM platform_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

pub async fn list_admins(pool: &Pool) -> DbResult<Vec<PlatformAdminRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, PlatformAdminRow>(
        "SELECT * FROM platform_admins ORDER BY created_at, id",
    )
    .fetch_all(p)
    .await)
}

/// Removes an administrator and, with them (ON DELETE CASCADE), their sessions; false when
/// there is none.
pub async fn delete_admin(pool: &Pool, email: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM platform_admins WHERE email = $1")
        .bind(email)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// Sets an administrator's password hash and ends their sessions; false when there is none.
pub async fn set_password_hash(pool: &Pool, email: &str, hash: &str) -> DbResult<bool> {
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        let found = sqlx::query("UPDATE platform_admins SET password_hash = $2 WHERE email = $1")
            .bind(email)
            .bind(hash)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        sqlx::query("DELETE FROM platform_sessions WHERE admin_id IN (SELECT id FROM platform_admins WHERE email = $1)")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(found)
    })
}
