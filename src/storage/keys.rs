//! Signing keys table: per tenant and algorithm, one `active` key that signs, one `next`
//! key already published, and `retired` keys published until `expires_at`.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub tenant_id: String,
    pub alg: String,
    pub state: String,
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// Keys that are published now: next, active, and retired ones not yet expired.
pub async fn list_published_keys(
    pool: &Pool,
    tenant_id: &str,
    now: i64,
) -> DbResult<Vec<SigningKeyRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, SigningKeyRow>(
        "SELECT * FROM signing_keys WHERE tenant_id = $1 AND (state <> 'retired' OR expires_at > $2) ORDER BY created_at, kid",
    )
    .bind(tenant_id)
    .bind(now)
    .fetch_all(p)
    .await)
}

/// Inserts new keys and applies one rotation step atomically: for each algorithm of
/// `promote`, the active key retires (kept until `retire_until`) and the next key becomes
/// active; then `new_keys` are inserted and the tenant's version is bumped.
pub async fn rotate_signing_keys(
    pool: &Pool,
    tenant_id: &str,
    promote: &[String],
    retire_until: i64,
    new_keys: &[SigningKeyRow],
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => {
        let mut tx = p.begin().await?;
        for alg in promote {
            sqlx::query("UPDATE signing_keys SET state = 'retired', retired_at = $3, expires_at = $4 WHERE tenant_id = $1 AND alg = $2 AND state = 'active'")
                .bind(tenant_id).bind(alg).bind(now).bind(retire_until)
                .execute(&mut *tx).await?;
            sqlx::query("UPDATE signing_keys SET state = 'active', activated_at = $3 WHERE tenant_id = $1 AND alg = $2 AND state = 'next'")
                .bind(tenant_id).bind(alg).bind(now)
                .execute(&mut *tx).await?;
        }
        for k in new_keys {
            sqlx::query("INSERT INTO signing_keys (kid, tenant_id, alg, state, private_key, public_jwk, created_at, activated_at, retired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                .bind(&k.kid).bind(&k.tenant_id).bind(&k.alg).bind(&k.state).bind(&k.private_key)
                .bind(&k.public_jwk).bind(k.created_at).bind(k.activated_at).bind(k.retired_at).bind(k.expires_at)
                .execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE tenants SET updated_at = CASE WHEN updated_at >= $2 THEN updated_at + 1 ELSE $2 END WHERE id = $1")
            .bind(tenant_id).bind(now)
            .execute(&mut *tx).await?;
        tx.commit().await
    })
}

pub async fn delete_expired_keys(pool: &Pool, now: i64) -> DbResult<u64> {
    dispatch!(pool, p => sqlx::query("DELETE FROM signing_keys WHERE state = 'retired' AND expires_at <= $1")
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

/// Tenants whose active key of some algorithm was activated at or before `cutoff`.
pub async fn list_tenants_with_keys_activated_before(
    pool: &Pool,
    cutoff: i64,
) -> DbResult<Vec<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT tenant_id FROM signing_keys WHERE state = 'active' AND COALESCE(activated_at, created_at) <= $1",
    )
    .bind(cutoff)
    .fetch_all(p)
    .await)
}
