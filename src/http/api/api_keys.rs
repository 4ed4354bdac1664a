//! `/api/v1/apikeys`: create (shown once), list, rotate with a grace period, revoke, verify.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::api_keys::{self, ApiKey, NewApiKey};
use crate::audit::{self, AuditEvent};
use crate::error::ApiError;
use crate::http::api::common::{data, path_id, Principal};
use crate::http::extractors::{audit_context, Json, TenantProvider};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{
    DataEnvelope, ErrorEnvelope, ListEnvelope, PageEnvelope, TenantPath, TokenEnvelope,
};
use crate::rbac;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    expires_in_days: Option<i64>,
}

fn with_secret(k: &ApiKey, key: &str) -> serde_json::Value {
    let mut v = json!(k);
    v["key"] = json!(key);
    v
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/apikeys",
    tag = "apikeys",
    params(TenantPath),
    request_body = CreateBody,
    responses(
        (status = 201, description = "The key, shown only here (apikeys:create)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/apikeys` (apikeys:create). A key holds only permissions its creator holds.
pub async fn create_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "apikeys:create")
        .await?;
    let scopes = body.scopes.unwrap_or_default();
    rbac::check_held(&principal.permissions(), &scopes)?;
    let actor = principal.actor();
    let (k, key) = api_keys::create(
        state.api_keys(),
        Some(&principal.provider.tenant),
        NewApiKey {
            name: body.name.as_deref().unwrap_or(""),
            scopes,
            expires_in_days: body.expires_in_days,
            created_by: Some(&actor),
        },
    )
    .await?;
    audit::record(
        &state.audit,
        AuditEvent::new("apikey.created", Some(&principal.provider.tenant))
            .actor(Some(&actor))
            .detail("key_id", k.id.as_str()),
        &audit_context(&req),
    );
    Ok(data(StatusCode::CREATED, with_secret(&k, &key)))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/apikeys",
    tag = "apikeys",
    params(TenantPath),
    responses(
        (status = 200, description = "Keys with usage, never secrets (apikeys:read)", body = ListEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/apikeys` (apikeys:read) — never the secrets.
pub async fn list_get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("apikeys:read")?;
    api_keys::flush_usage(state.api_keys()).await;
    let keys = api_keys::list(state.api_keys(), Some(&principal.provider.tenant)).await?;
    Ok(data(StatusCode::OK, json!(keys)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RotateBody {
    grace_period_hours: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/apikeys/{id}/rotate",
    tag = "apikeys",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    request_body = RotateBody,
    responses(
        (status = 200, description = "The new key (apikeys:create)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/apikeys/{id}/rotate` (apikeys:create) — a new secret; the old one works
/// for the grace period (default 24 h).
pub async fn rotate_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<RotateBody>,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "apikeys:create")
        .await?;
    let id = path_id(&req);
    let grace = body.grace_period_hours.map(|h| h.saturating_mul(3600));
    let (k, key) = api_keys::rotate(
        state.api_keys(),
        Some(&principal.provider.tenant),
        id,
        grace,
    )
    .await?;
    audit::record(
        &state.audit,
        AuditEvent::new("apikey.rotated", Some(&principal.provider.tenant))
            .actor(Some(&principal.actor()))
            .detail("key_id", k.id.as_str()),
        &audit_context(&req),
    );
    Ok(data(StatusCode::OK, with_secret(&k, &key)))
}

#[utoipa::path(
    delete,
    path = "/t/{tenant}/api/v1/apikeys/{id}",
    tag = "apikeys",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Revoked (apikeys:revoke)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `DELETE /api/v1/apikeys/{id}` (apikeys:revoke)
pub async fn revoke_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "apikeys:revoke")
        .await?;
    let k = api_keys::revoke(
        state.api_keys(),
        Some(&principal.provider.tenant),
        path_id(&req),
    )
    .await?;
    audit::record(
        &state.audit,
        AuditEvent::new("apikey.revoked", Some(&principal.provider.tenant))
            .actor(Some(&principal.actor()))
            .detail("key_id", k.id.as_str()),
        &audit_context(&req),
    );
    Ok(data(StatusCode::OK, json!(k)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerifyBody {
    key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/apikeys/verify",
    tag = "apikeys",
    params(TenantPath),
    request_body = VerifyBody,
    responses(
        (status = 200, description = "Whether the key is live here (valid), and its claims", body = DataEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
)]
/// `POST /api/v1/apikeys/verify` `{"key"}` — no authentication (seed 004): whether the key
/// is live for this tenant, and its claims.
pub async fn verify_post(
    state: web::Data<AppState>,
    TenantProvider(p): TenantProvider,
    Json(body): Json<VerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let key = body
        .key
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::ValidationFailed("key is required".into()))?;
    let found = api_keys::verify(state.api_keys(), &key)
        .await?
        .filter(|k| k.tenant_id.as_deref() == Some(p.tenant.id.as_str()));
    Ok(data(
        StatusCode::OK,
        match found {
            Some(k) => json!({
                "valid": true,
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "scopes": k.scopes,
                "tenant_id": p.tenant.id,
                "expires_at": crate::storage::format_instant(k.expires_at),
            }),
            None => json!({ "valid": false }),
        },
    ))
}
