//! Pending authorization requests, remembered consents and authorization codes.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthorizationRequestRow {
    pub id: String,
    pub tenant_id: String,
    pub client_id: String,
    pub params: String,
    pub sid: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// A user who gave the right password and must now give the second factor.
    pub mfa_user_id: Option<String>,
    /// How that user proved their identity first (`pwd` when unset, `fed` upstream).
    pub first_factor: Option<String>,
    /// The upstream SAML session of a federated first factor (JSON), recorded with the
    /// session once the second factor is given.
    pub upstream_session: Option<String>,
}

pub async fn insert_authorization_request(
    pool: &Pool,
    r: &AuthorizationRequestRow,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO authorization_requests (id, tenant_id, client_id, params, sid, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&r.id).bind(&r.tenant_id).bind(&r.client_id).bind(&r.params).bind(&r.sid).bind(r.created_at).bind(r.expires_at)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn find_authorization_request(
    pool: &Pool,
    tenant_id: &str,
    id: &str,
    now: i64,
) -> DbResult<Option<AuthorizationRequestRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, AuthorizationRequestRow>(
        "SELECT * FROM authorization_requests WHERE id = $1 AND tenant_id = $2 AND expires_at > $3",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(now)
    .fetch_optional(p)
    .await)
}

/// Records that `user_id` passed the first factor for this request (the second is due).
pub async fn set_mfa_user(
    pool: &Pool,
    tenant_id: &str,
    id: &str,
    user_id: Option<&str>,
    first_factor: Option<&str>,
    upstream_session: Option<&str>,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("UPDATE authorization_requests SET mfa_user_id = $3, first_factor = $4, upstream_session = $5 WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .bind(user_id)
        .bind(first_factor)
        .bind(upstream_session)
        .execute(p)
        .await
        .map(|_| ()))
}

/// Records that the user authenticated for this request in session `sid`.
pub async fn bind_authorization_request(
    pool: &Pool,
    tenant_id: &str,
    id: &str,
    sid: &str,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query("UPDATE authorization_requests SET sid = $3 WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .bind(sid)
        .execute(p)
        .await
        .map(|_| ()))
}

/// Deletes a finished request; returns whether it was still there (a request completes once).
pub async fn delete_authorization_request(
    pool: &Pool,
    tenant_id: &str,
    id: &str,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM authorization_requests WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn find_consent(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    client_id: &str,
) -> DbResult<Option<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>("SELECT scopes FROM consents WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3")
        .bind(tenant_id)
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(p)
        .await)
}

pub async fn upsert_consent(
    pool: &Pool,
    tenant_id: &str,
    user_id: &str,
    client_id: &str,
    scopes: &str,
    now: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO consents (tenant_id, user_id, client_id, scopes, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
    )
    .bind(tenant_id).bind(user_id).bind(client_id).bind(scopes).bind(now)
    .execute(p)
    .await
    .map(|_| ()))
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CodeRow {
    pub code_hash: String,
    pub tenant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub sid: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub claims: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub acr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub redeemed_at: Option<i64>,
    pub access_token_jti: Option<String>,
    pub access_token_exp: Option<i64>,
    /// Thumbprint of the DPoP key the code is bound to (RFC 9449 §10).
    pub dpop_jkt: Option<String>,
}

pub async fn insert_code(pool: &Pool, c: &CodeRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO authorization_codes (code_hash, tenant_id, client_id, user_id, sid, redirect_uri, scope, nonce, code_challenge, claims, auth_time, amr, acr, created_at, expires_at, redeemed_at, access_token_jti, access_token_exp, dpop_jkt) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(&c.code_hash).bind(&c.tenant_id).bind(&c.client_id).bind(&c.user_id).bind(&c.sid)
    .bind(&c.redirect_uri).bind(&c.scope).bind(&c.nonce).bind(&c.code_challenge).bind(&c.claims)
    .bind(c.auth_time).bind(&c.amr).bind(&c.acr).bind(c.created_at).bind(c.expires_at)
    .bind(c.redeemed_at).bind(&c.access_token_jti).bind(c.access_token_exp).bind(&c.dpop_jkt)
    .execute(p)
    .await
    .map(|_| ()))
}

/// What a redemption must match: client, redirect URI, PKCE challenge (the S256 digest
/// of the presented verifier, or none when no verifier was presented) and, for a code bound
/// to a DPoP key, that key's thumbprint.
pub struct Redemption<'a> {
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    pub code_hash: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub challenge: Option<&'a str>,
    pub dpop_jkt: Option<&'a str>,
    pub access_token_jti: &'a str,
    pub access_token_exp: i64,
}

/// Marks a code redeemed, atomically and only if it is unexpired and every binding matches:
/// exactly one caller gets the row back however many redeem it at once, and a request that
/// fails a check (say, a wrong PKCE verifier) does not use the code up. The access token's
/// id is recorded so that a later replay can revoke it.
pub async fn redeem_code(pool: &Pool, r: &Redemption<'_>, now: i64) -> DbResult<Option<CodeRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, CodeRow>(
        "UPDATE authorization_codes SET redeemed_at = $4, access_token_jti = $5, access_token_exp = $6 \
         WHERE code_hash = $1 AND tenant_id = $2 AND client_id = $3 AND redeemed_at IS NULL AND expires_at > $4 \
         AND redirect_uri = $7 AND ((code_challenge IS NULL AND $8 IS NULL) OR code_challenge = $8) \
         AND (dpop_jkt IS NULL OR dpop_jkt = $9) RETURNING *",
    )
    .bind(r.code_hash).bind(r.tenant_id).bind(r.client_id).bind(now).bind(r.access_token_jti)
    .bind(r.access_token_exp).bind(r.redirect_uri).bind(r.challenge).bind(r.dpop_jkt)
    .fetch_optional(p)
    .await)
}

pub async fn find_code(pool: &Pool, tenant_id: &str, code_hash: &str) -> DbResult<Option<CodeRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, CodeRow>("SELECT * FROM authorization_codes WHERE code_hash = $1 AND tenant_id = $2")
        .bind(code_hash)
        .bind(tenant_id)
        .fetch_optional(p)
        .await)
}

/// Deletes the authorization requests and codes that expired before `cutoff` (the purge keeps
/// redeemed codes a while, so that a replay is still recognised and revokes).
pub async fn delete_expired_authorization_state(pool: &Pool, cutoff: i64) -> DbResult<u64> {
    dispatch!(pool, p => {
        let a = sqlx::query("DELETE FROM authorization_requests WHERE expires_at <= $1").bind(cutoff).execute(p).await?;
        let b = sqlx::query("DELETE FROM authorization_codes WHERE expires_at <= $1").bind(cutoff).execute(p).await?;
        let c = sqlx::query("DELETE FROM pushed_requests WHERE expires_at <= $1").bind(cutoff).execute(p).await?;
        Ok(a.rows_affected() + b.rows_affected() + c.rows_affected())
    })
}

/// Stores a pushed authorization request (RFC 9126) under the digest of its request_uri.
pub async fn insert_pushed_request(
    pool: &Pool,
    uri_hash: &str,
    tenant_id: &str,
    client_id: &str,
    params: &str,
    expires_at: i64,
) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO pushed_requests (uri_hash, tenant_id, client_id, params, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uri_hash).bind(tenant_id).bind(client_id).bind(params).bind(expires_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Takes a pushed request of this client out of the table (single use): its parameters
/// when it existed, belonged to the client and had not expired. An expired one is deleted
/// all the same.
pub async fn take_pushed_request(
    pool: &Pool,
    uri_hash: &str,
    tenant_id: &str,
    client_id: &str,
    now: i64,
) -> DbResult<Option<String>> {
    let row: Option<(String, i64)> = dispatch!(pool, p => sqlx::query_as(
        "DELETE FROM pushed_requests WHERE uri_hash = $1 AND tenant_id = $2 AND client_id = $3 RETURNING params, expires_at",
    )
    .bind(uri_hash).bind(tenant_id).bind(client_id)
    .fetch_optional(p)
    .await)?;
    Ok(row.filter(|(_, exp)| *exp > now).map(|(params, _)| params))
}
