//! The admin API's tenant-wide resources: signing keys (list, rotate), settings (get, merge
//! patch) and the audit log (filters, cursor pages).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::audit;
use crate::error::ApiError;
use crate::http::api::common::{data, record, Principal};
use crate::http::extractors::{query_params, Json};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{DataEnvelope, ErrorEnvelope, PageEnvelope, TenantPath, TokenEnvelope};
use crate::state::AppState;
use crate::storage::audit::AuditFilter;
use crate::tenants;

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/keys",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "Published signing keys (keys:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/keys` (keys:read) — the published public keys.
pub async fn keys_get(principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require("keys:read")?;
    let jwks: Value = serde_json::from_slice(&principal.provider.keys.jwks)
        .map_err(|e| ApiError::unexpected(&e))?;
    Ok(data(StatusCode::OK, jwks))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/keys/rotate",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "Rotated (keys:rotate)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/keys/rotate` (keys:rotate)
pub async fn keys_rotate_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "keys:rotate").await?;
    let tenant = &principal.provider.tenant;
    let kids = state.rotate_keys(tenant).await?;
    record(
        &state,
        &req,
        &principal,
        "keys.rotated",
        ("next_kids", &kids.join(" ")),
    );
    Ok(data(StatusCode::OK, json!({ "next_kids": kids })))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/settings",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "Tenant settings (settings:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/settings` (settings:read)
pub async fn settings_get(principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require("settings:read")?;
    Ok(data(
        StatusCode::OK,
        json!(principal.provider.tenant.settings),
    ))
}

#[utoipa::path(
    patch,
    path = "/t/{tenant}/api/v1/admin/settings",
    tag = "admin",
    params(TenantPath),
    request_body = Object,
    responses(
        (status = 200, description = "Updated settings (settings:update); body: JSON merge patch", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `PATCH /api/v1/admin/settings` (settings:update) — a JSON merge patch (RFC 7386).
pub async fn settings_patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(patch): Json<Value>,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "settings:update")
        .await?;
    let tenant = &principal.provider.tenant;
    let settings = tenant.settings.patched(&patch)?;
    tenants::update_settings(&state.pool, tenant, &settings).await?;
    state.providers.invalidate(&tenant.slug);
    record(
        &state,
        &req,
        &principal,
        "settings.updated",
        (
            "keys",
            &patch
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        ),
    );
    Ok(data(StatusCode::OK, json!(settings)))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/audit",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "Audit events, newest first (audit:read); query: event, actor, from, to, limit, cursor", body = PageEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/audit?event=&actor=&from=&to=&limit=&cursor=` (audit:read) — newest
/// first; `from`/`to` are Unix seconds; `next_cursor` fetches the next page.
pub async fn audit_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("audit:read")?;
    let q = query_params(&req);
    let number = |k: &str| -> Result<Option<i64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::ValidationFailed(format!("{k} must be an integer")))
            })
            .transpose()
    };
    let before = match q.get("cursor") {
        Some(c) => Some(
            crate::storage::parse_cursor(c)
                .map(|(t, id)| (t, id.to_string()))
                .ok_or_else(|| ApiError::ValidationFailed("malformed cursor".into()))?,
        ),
        None => None,
    };
    let filter = AuditFilter {
        event: q.get("event").map(str::to_string),
        actor: q.get("actor").map(str::to_string),
        from: number("from")?,
        to: number("to")?,
        before,
    };
    let limit = number("limit")?.unwrap_or(50).clamp(1, 500);
    let (events, next) =
        audit::query(&state.audit, &principal.provider.tenant, &filter, limit).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "data": events, "next_cursor": next })))
}
