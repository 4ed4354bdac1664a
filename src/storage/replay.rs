//! Identifiers of single-use JWTs (client assertions, DPoP proofs) until they expire.

use super::{dispatch, is_unique_violation, DbResult, Pool};

/// Records `jti` of `issuer` until `expires_at`: true the first time, false when it was
/// already recorded (a replay), on whichever instance saw it first.
pub async fn remember_jti(
    pool: &Pool,
    tenant_id: &str,
    issuer: &str,
    jti: &str,
    expires_at: i64,
) -> DbResult<bool> {
    let inserted = dispatch!(pool, p => sqlx::query(
        "INSERT INTO used_jtis (tenant_id, issuer, jti, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant_id).bind(issuer).bind(jti).bind(expires_at)
    .execute(p)
    .await
    .map(|_| ()));
    match inserted {
        Ok(_) => Ok(true),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes identifiers whose JWTs expired at or before `cutoff`.
pub async fn delete_expired_jtis(pool: &Pool, cutoff: i64) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query("DELETE FROM used_jtis WHERE expires_at <= $1")
        .bind(cutoff)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}
