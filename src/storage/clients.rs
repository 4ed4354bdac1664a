//! Clients (relying parties) table.

use super::{dispatch, DbResult, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClientRow {
    pub client_id: String,
    pub tenant_id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub confidential: bool,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub allowed_origins: String,
    pub backchannel_logout_uri: Option<String>,
    pub skip_consent: bool,
    pub require_pkce: bool,
    pub signing_alg: String,
    pub access_token_ttl: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub registration_token_hash: Option<String>,
    pub mfa_policy: Option<String>,
    pub privileged_scopes: String,
    pub token_endpoint_auth_method: String,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub require_par: bool,
    pub dpop_bound_access_tokens: bool,
    pub profile: Option<String>,
}

pub async fn insert_client(pool: &Pool, c: &ClientRow) -> DbResult<()> {
    dispatch!(pool, p => sqlx::query(
        "INSERT INTO clients (client_id, tenant_id, name, secret_hash, confidential, redirect_uris, post_logout_redirect_uris, grant_types, scopes, allowed_origins, backchannel_logout_uri, skip_consent, require_pkce, signing_alg, access_token_ttl, created_at, updated_at, registration_token_hash, mfa_policy, privileged_scopes, \
         token_endpoint_auth_method, jwks, jwks_uri, token_endpoint_auth_signing_alg, require_par, dpop_bound_access_tokens, profile) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
    )
    .bind(&c.client_id).bind(&c.tenant_id).bind(&c.name).bind(&c.secret_hash).bind(c.confidential)
    .bind(&c.redirect_uris).bind(&c.post_logout_redirect_uris).bind(&c.grant_types).bind(&c.scopes)
    .bind(&c.allowed_origins).bind(&c.backchannel_logout_uri).bind(c.skip_consent).bind(c.require_pkce)
    .bind(&c.signing_alg).bind(c.access_token_ttl).bind(c.created_at).bind(c.updated_at).bind(&c.registration_token_hash).bind(&c.mfa_policy).bind(&c.privileged_scopes)
    .bind(&c.token_endpoint_auth_method).bind(&c.jwks).bind(&c.jwks_uri).bind(&c.token_endpoint_auth_signing_alg).bind(c.require_par)
    .bind(c.dpop_bound_access_tokens).bind(&c.profile)
    .execute(p)
    .await
    .map(|_| ()))
}

pub async fn find_client(
    pool: &Pool,
    tenant_id: &str,
    client_id: &str,
) -> DbResult<Option<ClientRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ClientRow>("SELECT * FROM clients WHERE tenant_id = $1 AND client_id = $2")
        .bind(tenant_id)
        .bind(client_id)
        .fetch_optional(p)
        .await)
}

pub async fn list_clients_by_ids(
    pool: &Pool,
    tenant_id: &str,
    ids: &[String],
) -> DbResult<Vec<ClientRow>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(c) = find_client(pool, tenant_id, id).await? {
            out.push(c);
        }
    }
    Ok(out)
}

pub async fn list_clients(pool: &Pool, tenant_id: &str) -> DbResult<Vec<ClientRow>> {
    dispatch!(pool, p => sqlx::query_as::<_, ClientRow>("SELECT * FROM clients WHERE tenant_id = $1 ORDER BY created_at, client_id")
        .bind(tenant_id)
        .fetch_all(p)
        .await)
}

/// The `allowed_origins` lists (JSON text) of a tenant's clients that have any.
pub async fn list_allowed_origins(pool: &Pool, tenant_id: &str) -> DbResult<Vec<String>> {
    dispatch!(pool, p => sqlx::query_scalar::<_, String>("SELECT allowed_origins FROM clients WHERE tenant_id = $1 AND allowed_origins <> '[]'")
        .bind(tenant_id)
        .fetch_all(p)
        .await)
}

pub async fn delete_client(pool: &Pool, tenant_id: &str, client_id: &str) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query("DELETE FROM clients WHERE tenant_id = $1 AND client_id = $2")
        .bind(tenant_id)
        .bind(client_id)
        .execute(p)
        .await
        .map(|r| r.rows_affected() > 0))
}

/// Replaces a client's registration metadata (RFC 7592 §2.2); the secret stays.
pub async fn update_client(pool: &Pool, c: &ClientRow) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE clients SET name = $3, redirect_uris = $4, post_logout_redirect_uris = $5, grant_types = $6, scopes = $7, \
         allowed_origins = $8, backchannel_logout_uri = $9, signing_alg = $10, updated_at = $11, \
         jwks = $12, jwks_uri = $13, token_endpoint_auth_signing_alg = $14, require_par = $15, \
         dpop_bound_access_tokens = $16, profile = $17, skip_consent = $18, access_token_ttl = $19, \
         mfa_policy = $20, privileged_scopes = $21 WHERE tenant_id = $1 AND client_id = $2",
    )
    .bind(&c.tenant_id).bind(&c.client_id).bind(&c.name).bind(&c.redirect_uris).bind(&c.post_logout_redirect_uris)
    .bind(&c.grant_types).bind(&c.scopes).bind(&c.allowed_origins).bind(&c.backchannel_logout_uri)
    .bind(&c.signing_alg).bind(c.updated_at)
    .bind(&c.jwks).bind(&c.jwks_uri).bind(&c.token_endpoint_auth_signing_alg).bind(c.require_par)
    .bind(c.dpop_bound_access_tokens).bind(&c.profile)
    .bind(c.skip_consent).bind(c.access_token_ttl).bind(&c.mfa_policy).bind(&c.privileged_scopes)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}

pub async fn update_client_secret(
    pool: &Pool,
    tenant_id: &str,
    client_id: &str,
    secret_hash: &str,
    now: i64,
) -> DbResult<bool> {
    dispatch!(pool, p => sqlx::query(
        "UPDATE clients SET secret_hash = $3, updated_at = $4 \
         WHERE tenant_id = $1 AND client_id = $2 AND secret_hash IS NOT NULL",
    )
    .bind(tenant_id).bind(client_id).bind(secret_hash).bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected() > 0))
}
