//! Identifiers of single-use JWTs (client assertions, DPoP proofs) until they expire.

use super::{dispatch, DbResult, Pool};

/// Records `jti` of `issuer` until `expires_at`: true the first time, false when it was
/// already recorded (a replay), on whichever instance saw it first.
pub async fn remember_jti(
    pool: &Pool,
    tenant_id: &str,
    issuer: &str,
    jti: &str,
    expires_at: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO used_jtis (tenant_id, issuer, jti, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id).bind(issuer).bind(jti).bind(expires_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected() == 1))
}

/// Deletes identifiers whose JWTs expired at or before `cutoff`.
pub async fn delete_expired_jtis(pool: &Pool, cutoff: i64) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query("DELETE FROM used_jtis WHERE expires_at <= $1")
        .bind(cutoff)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
