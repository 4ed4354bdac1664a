//! Refresh tokens (stored as digests), the deny list of revoked access tokens, and the
//! outbox of back-channel logout deliveries.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub family_id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub sid: Option<String>,
    pub scope: String,
    pub claims: Option<String>,
    pub auth_time: Option<i64>,
    pub amr: String,
    pub acr: String,
    pub code_hash: Option<String>,
    pub access_token_jti: Option<String>,
    pub access_token_exp: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Thumbprint of the DPoP key a public client's refresh token is bound to (RFC 9449 §5).
    pub dpop_jkt: Option<String>,
}

const INSERT_REFRESH: &str = "INSERT INTO refresh_tokens (token_hash, family_id, tenant_id, client_id, user_id, sid, scope, claims, auth_time, amr, acr, code_hash, access_token_jti, access_token_exp, created_at, expires_at, used_at, revoked_at, dpop_jkt) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";

/// [`INSERT_REFRESH`] with the values of a row bound.
macro_rules! insert_refresh {
    ($t:expr) => {{
        let t = $t;
        sqlx::query(INSERT_REFRESH)
            .bind(&t.token_hash)
            .bind(&t.family_id)
            .bind(&t.tenant_id)
            .bind(&t.client_id)
            .bind(&t.user_id)
            .bind(&t.sid)
            .bind(&t.scope)
            .bind(&t.claims)
            .bind(t.auth_time)
            .bind(&t.amr)
            .bind(&t.acr)
            .bind(&t.code_hash)
            .bind(&t.access_token_jti)
            .bind(t.access_token_exp)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(t.used_at)
            .bind(t.revoked_at)
            .bind(&t.dpop_jkt)
    }};
}

pub async fn insert_refresh_token(pool: &Pool, t: &RefreshTokenRow) -> DbResult<()> {
    dispatch!(pool, p => insert_refresh!(t).execute(p).await.map(|_| ()))
}

/// Rotates a refresh token: marks the live token `parent_hash` used (`first_use`; else it
/// must already be used and is only locked) and stores its successor in one transaction. Of
/// concurrent first rotations of one token exactly one gets `true`; the others find it used
/// — and by then its successor is stored, so revoking the family covers the successor too.
/// A revoked parent gives `false`.
pub async fn rotate_refresh_token(
    pool: &Pool,
    parent_hash: &str,
    next: &RefreshTokenRow,
    now: i64,
    first_use: bool,
) -> DbResult<bool> {
    let claim = if first_use {
        "UPDATE refresh_tokens SET used_at = $3 WHERE token_hash = $1 AND tenant_id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3"
    } else {
        "UPDATE refresh_tokens SET used_at = used_at WHERE token_hash = $1 AND tenant_id = $2 AND used_at IS NOT NULL AND revoked_at IS NULL AND expires_at > $3"
    };
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        let claimed = sqlx::query(claim)
        .bind(parent_hash)
        .bind(&next.tenant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected() == 1;
        if !claimed {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_refresh!(next).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    })
}

pub async fn find_refresh_token(
    pool: &Pool,
    tenant_id: &str,
    token_hash: &str,
) -> DbResult<Option<RefreshTokenRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, RefreshTokenRow>("SELECT * FROM refresh_tokens WHERE token_hash = $1 AND tenant_id = $2")
        .bind(token_hash)
        .bind(tenant_id)
        .fetch_optional(p)
        .await)
}

/// Which refresh tokens a revocation covers (a fixed SQL condition on `$2`).
#[derive(Clone, Copy)]
enum Revocation {
    Family,
    User,
    /// Those bound to a browser session, i.e. granted without `offline_access`.
    SessionBound,
}

impl Revocation {
    fn condition(self) -> &'static str {
        match self {
            Revocation::Family => "family_id = $2",
            Revocation::User => "user_id = $2",
            Revocation::SessionBound => "sid = $2 AND scope NOT LIKE '%\"offline_access\"%'",
        }
    }
}

/// Revokes the refresh tokens a revocation covers and, in the same transaction, deny-lists
/// the access tokens issued with them. Returns how many refresh tokens were still unrevoked.
async fn revoke(
    pool: &Pool,
    which: Revocation,
    tenant_id: &str,
    key: &str,
    now: i64,
) -> DbResult<u64> {
    let condition = which.condition();
    let deny = format!(
        "INSERT INTO revoked_access_tokens (jti, tenant_id, expires_at) \
         SELECT access_token_jti, tenant_id, access_token_exp FROM refresh_tokens \
         WHERE tenant_id = $1 AND {condition} AND access_token_jti IS NOT NULL AND access_token_exp > $3 \
         ON CONFLICT (jti) DO NOTHING"
    );
    let revoke = format!("UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND {condition} AND revoked_at IS NULL");
    // On PostgreSQL (READ COMMITTED) an UPDATE that waited for a concurrent rotation does
    // not see the successor that rotation inserted; the next statement does. Repeating
    // until nothing is left to revoke covers successors stored meanwhile.
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        let mut total = 0;
        for _ in 0..8 {
            sqlx::query(&deny).bind(tenant_id).bind(key).bind(now).execute(&mut *tx).await?;
            let r = sqlx::query(&revoke).bind(tenant_id).bind(key).bind(now).execute(&mut *tx).await?;
            total += r.rows_affected();
            if r.rows_affected() == 0 {
                break;
            }
        }
        tx.commit().await?;
        Ok(total)
    })
}

/// Revokes every refresh token of a family and the access tokens issued with them.
pub async fn revoke_refresh_family(
    pool: &Pool,
    tenant_id: &str,
    family_id: &str,
    now: i64,
) -> DbResult<u64> {
    revoke(pool, Revocation::Family, tenant_id, family_id, now).await
}

/// Revokes every refresh token of a user in a tenant (sign out everywhere) and the access
/// tokens issued with them.
pub async fn revoke_user_refresh_tokens(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    now: i64,
) -> DbResult<u64> {
    revoke(pool, Revocation::User, tenant_id, user_id, now).await
}

/// Revokes the refresh tokens bound to a browser session (granted without
/// `offline_access`) and the access tokens issued with them.
pub async fn revoke_session_refresh_tokens(
    pool: &Pool,
    tenant_id: &str,
    sid: &str,
    now: i64,
) -> DbResult<u64> {
    revoke(pool, Revocation::SessionBound, tenant_id, sid, now).await
}

/// The families started by the redemption of an authorization code.
pub async fn list_families_of_code(
    pool: &Pool,
    tenant_id: &str,
    code_hash: &str,
) -> DbResult<Vec<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>("SELECT DISTINCT family_id FROM refresh_tokens WHERE tenant_id = $1 AND code_hash = $2")
        .bind(tenant_id)
        .bind(code_hash)
        .fetch_all(p)
        .await)
}

pub async fn insert_revoked_access_token(
    pool: &Pool,
    tenant_id: &str,
    jti: &str,
    expires_at: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("INSERT INTO revoked_access_tokens (jti, tenant_id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING")
        .bind(jti)
        .bind(tenant_id)
        .bind(expires_at)
        .execute(p)
        .await
        .map(|_| ()))
}

pub async fn is_access_token_revoked(pool: &Pool, tenant_id: &str, jti: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1 AND tenant_id = $2")
        .bind(jti)
        .bind(tenant_id)
        .fetch_one(p)
        .await
        .map(|n| n > 0))
}

pub async fn delete_expired_tokens(pool: &Pool, now: i64) -> DbResult<u64> {
    dispatch!(pool, p => {
        let a = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= $1").bind(now).execute(p).await?;
        let b = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1").bind(now).execute(p).await?;
        Ok(a.rows_affected() + b.rows_affected())
    })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub uri: String,
    pub logout_token: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub delivered_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

pub async fn insert_delivery(pool: &Pool, d: &DeliveryRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO backchannel_deliveries (id, tenant_id, client_id, uri, logout_token, attempts, next_attempt_at, delivered_at, last_error, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&d.id).bind(&d.tenant_id).bind(&d.client_id).bind(&d.uri).bind(&d.logout_token)
    .bind(d.attempts).bind(d.next_attempt_at).bind(d.delivered_at).bind(&d.last_error).bind(d.created_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Claims one due delivery for an attempt: pushes its next attempt out by `lease` seconds so
/// no other instance takes it meanwhile, and returns it.
pub async fn claim_due_delivery(
    pool: &Pool,
    now: i64,
    lease: i64,
    max_attempts: i64,
) -> DbResult<Option<DeliveryRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, DeliveryRow>(
        "UPDATE backchannel_deliveries SET next_attempt_at = $2, attempts = attempts + 1 \
         WHERE id = (SELECT id FROM backchannel_deliveries WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND attempts < $3 ORDER BY next_attempt_at LIMIT 1) \
         AND delivered_at IS NULL AND next_attempt_at <= $1 RETURNING *",
    )
    .bind(now)
    .bind(now + lease)
    .bind(max_attempts)
    .fetch_optional(p)
    .await)
}

pub async fn claim_delivery(
    pool: &Pool,
    id: &str,
    now: i64,
    lease: i64,
) -> DbResult<Option<DeliveryRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, DeliveryRow>(
        "UPDATE backchannel_deliveries SET next_attempt_at = $3, attempts = attempts + 1 WHERE id = $1 AND delivered_at IS NULL AND next_attempt_at <= $2 RETURNING *",
    )
    .bind(id)
    .bind(now)
    .bind(now + lease)
    .fetch_optional(p)
    .await)
}

pub async fn mark_delivery(
    pool: &Pool,
    id: &str,
    delivered_at: Option<i64>,
    next_attempt_at: i64,
    error: Option<&str>,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("UPDATE backchannel_deliveries SET delivered_at = $2, next_attempt_at = $3, last_error = $4 WHERE id = $1")
        .bind(id)
        .bind(delivered_at)
        .bind(next_attempt_at)
        .bind(error)
        .execute(p)
        .await
        .map(|_| ()))
}
