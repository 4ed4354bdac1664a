//! Browser sessions and the clients each session has signed in to.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id_hash: String,
    pub sid: String,
    pub tenant_id: String,
    pub user_id: String,
    pub auth_time: i64,
    pub amr: String,
    pub acr: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

pub async fn insert_session(pool: &Pool, s: &SessionRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO browser_sessions (id_hash, sid, tenant_id, user_id, auth_time, amr, acr, ip, user_agent, created_at, expires_at, ended_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&s.id_hash).bind(&s.sid).bind(&s.tenant_id).bind(&s.user_id).bind(s.auth_time)
    .bind(&s.amr).bind(&s.acr).bind(&s.ip).bind(&s.user_agent).bind(s.created_at).bind(s.expires_at).bind(s.ended_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// A live session: of this tenant, not ended, not expired.
pub async fn find_live_session(
    pool: &Pool,
    tenant_id: &str,
    id_hash: &str,
    now: i64,
) -> DbResult<Option<SessionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, SessionRow>(
        "SELECT * FROM browser_sessions WHERE id_hash = $1 AND tenant_id = $2 AND ended_at IS NULL AND expires_at > $3",
    )
    .bind(id_hash)
    .bind(tenant_id)
    .bind(now)
    .fetch_optional(p)
    .await)
}

pub async fn find_live_session_by_sid(
    pool: &Pool,
    tenant_id: &str,
    sid: &str,
    now: i64,
) -> DbResult<Option<SessionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, SessionRow>(
        "SELECT * FROM browser_sessions WHERE sid = $1 AND tenant_id = $2 AND ended_at IS NULL AND expires_at > $3",
    )
    .bind(sid)
    .bind(tenant_id)
    .bind(now)
    .fetch_optional(p)
    .await)
}

/// Records a fresh authentication in a live session: new cookie digest (no fixation), new
/// auth_time and methods, same `sid`.
#[allow(clippy::too_many_arguments)] // one row's columns
pub async fn update_session_authentication(
    pool: &Pool,
    tenant_id: &str,
    sid: &str,
    id_hash: &str,
    auth_time: i64,
    amr: &str,
    acr: &str,
    expires_at: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE browser_sessions SET id_hash = $3, auth_time = $4, amr = $5, acr = $6, expires_at = $7 WHERE tenant_id = $1 AND sid = $2 AND ended_at IS NULL",
    )
    .bind(tenant_id).bind(sid).bind(id_hash).bind(auth_time).bind(amr).bind(acr).bind(expires_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

/// Ends a session; returns whether it was live.
pub async fn end_session(pool: &Pool, tenant_id: &str, sid: &str, now: i64) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("UPDATE browser_sessions SET ended_at = $3 WHERE tenant_id = $1 AND sid = $2 AND ended_at IS NULL")
        .bind(tenant_id)
        .bind(sid)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn insert_session_client(pool: &Pool, sid: &str, client_id: &str) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("INSERT INTO session_clients (sid, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(sid)
        .bind(client_id)
        .execute(p)
        .await
        .map(|_| ()))
}

pub async fn list_session_clients(pool: &Pool, sid: &str) -> DbResult<Vec<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>("SELECT client_id FROM session_clients WHERE sid = $1 ORDER BY client_id")
        .bind(sid)
        .fetch_all(p)
        .await)
}

pub async fn delete_expired_sessions(pool: &Pool, now: i64) -> DbResult<u64> {
    dispatch!(pool, p => {
        sqlx::query("DELETE FROM session_clients WHERE sid IN (SELECT sid FROM browser_sessions WHERE expires_at <= $1 OR ended_at <= $1)")
            .bind(now).execute(p).await?;
        sqlx::query("DELETE FROM browser_sessions WHERE expires_at <= $1 OR ended_at <= $1")
            .bind(now).execute(p).await.map(|r| r.rows_affected())
    })
}

/// A user's live sessions, newest first.
pub async fn list_user_sessions(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    now: i64,
) -> DbResult<Vec<SessionRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, SessionRow>(
        "SELECT * FROM browser_sessions WHERE tenant_id = $1 AND user_id = $2 AND ended_at IS NULL AND expires_at > $3 ORDER BY created_at DESC",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(now)
    .fetch_all(p)
    .await)
}

/// How many live browser sessions a tenant has.
pub async fn count_live_sessions(pool: &Pool, tenant_id: &str, now: i64) -> DbResult<i64> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM browser_sessions WHERE tenant_id = $1 AND ended_at IS NULL AND expires_at > $2",
    )
    .bind(tenant_id).bind(now)
    .fetch_one(p)
    .await)
}
