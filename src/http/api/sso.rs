//! SSO connections: `POST /auth/sso/configure` (SPEC, seed 001) and the admin API
//! (`/admin/sso`: list, create, get, delete, test). The upstream client secret is never
//! shown again.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::federation::{self, ConfigureRequest};
use crate::http::api::common::{data, path_id, record, Principal};
use crate::http::extractors::Json;
use crate::http::schema::{DataEnvelope, ErrorEnvelope, ListEnvelope, TenantPath};
use crate::state::AppState;

#[utoipa::path(
    operation_id = "sso_configure",
    post,
    path = "/t/{tenant}/api/v1/auth/sso/configure",
    tag = "sso",
    params(TenantPath),
    request_body = ConfigureRequest,
    responses(
        (status = 201, description = "The connection (sso:configure); the upstream's discovery document or metadata was fetched and validated", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED (for example metadata that cannot be used)", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/auth/sso/configure` (sso:configure) — adds an SSO connection: SAML 2.0
/// (`metadata_url` or `metadata_xml`), OIDC (`issuer`, `client_id`, `client_secret`), or
/// Google (`"provider":"google"`).
pub async fn configure_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<ConfigureRequest>,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "sso:configure")
        .await?;
    let conn = federation::configure(state.federation(), &principal.provider.tenant, body).await?;
    record(
        &state,
        &req,
        &principal,
        "sso.configured",
        ("connection", &conn.id),
    );
    Ok(data(StatusCode::CREATED, conn.to_json()))
}

#[utoipa::path(
    operation_id = "sso_list",
    get,
    path = "/t/{tenant}/api/v1/admin/sso",
    tag = "sso",
    params(TenantPath),
    responses(
        (status = 200, description = "SSO connections (sso:read)", body = ListEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/sso` (sso:read)
pub async fn list_get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("sso:read")?;
    let list = federation::list(&state.pool, &principal.provider.tenant).await?;
    Ok(data(
        StatusCode::OK,
        json!(list.iter().map(|c| c.to_json()).collect::<Vec<_>>()),
    ))
}

#[utoipa::path(
    operation_id = "sso_create",
    post,
    path = "/t/{tenant}/api/v1/admin/sso",
    tag = "sso",
    params(TenantPath),
    request_body = ConfigureRequest,
    responses(
        (status = 201, description = "The connection (sso:configure)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/sso` (sso:configure) — the same as `/auth/sso/configure`.
pub async fn create_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    body: Json<ConfigureRequest>,
) -> Result<HttpResponse, ApiError> {
    configure_post(state, req, principal, body).await
}

#[utoipa::path(
    operation_id = "sso_get",
    get,
    path = "/t/{tenant}/api/v1/admin/sso/{id}",
    tag = "sso",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "The connection (sso:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/sso/{id}` (sso:read)
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("sso:read")?;
    let conn = federation::find(&state.pool, &principal.provider.tenant, path_id(&req))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(data(StatusCode::OK, conn.to_json()))
}

#[utoipa::path(
    operation_id = "sso_delete",
    delete,
    path = "/t/{tenant}/api/v1/admin/sso/{id}",
    tag = "sso",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 204, description = "Deleted with its linked identities (sso:configure)"),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `DELETE /api/v1/admin/sso/{id}` (sso:configure)
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "sso:configure")
        .await?;
    let id = path_id(&req);
    if !federation::delete(&state.pool, &principal.provider.tenant, id).await? {
        return Err(ApiError::NotFound);
    }
    record(&state, &req, &principal, "sso.deleted", ("connection", id));
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    operation_id = "sso_test",
    post,
    path = "/t/{tenant}/api/v1/admin/sso/{id}/test",
    tag = "sso",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "{\"ok\", \"checks\":[{\"name\",\"ok\",\"detail\"}]}: metadata or discovery, certificates or JWKS, endpoints (sso:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/sso/{id}/test` (sso:read) — tells whether the connection is usable.
pub async fn test_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "sso:read").await?;
    let conn = federation::find(&state.pool, &principal.provider.tenant, path_id(&req))
        .await?
        .ok_or(ApiError::NotFound)?;
    let report = federation::test(state.federation(), &conn).await?;
    Ok(data(StatusCode::OK, json!(report)))
}

#[utoipa::path(
    operation_id = "sso_enable",
    post,
    path = "/t/{tenant}/api/v1/admin/sso/{id}/enable",
    tag = "sso",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "The connection, enabled: its sign-in button, home-realm discovery and IdP-initiated responses work again (sso:configure)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/sso/{id}/enable` (sso:configure)
pub async fn enable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    switch(state, req, principal, true).await
}

#[utoipa::path(
    operation_id = "sso_disable",
    post,
    path = "/t/{tenant}/api/v1/admin/sso/{id}/disable",
    tag = "sso",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "The connection, disabled: no sign-in through it until it is enabled again; linked identities are kept (sso:configure)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/sso/{id}/disable` (sso:configure)
pub async fn disable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    switch(state, req, principal, false).await
}

async fn switch(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    enabled: bool,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "sso:configure")
        .await?;
    let conn = federation::set_enabled(
        &state.pool,
        &principal.provider.tenant,
        path_id(&req),
        enabled,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    let event = if enabled {
        "sso.enabled"
    } else {
        "sso.disabled"
    };
    record(&state, &req, &principal, event, ("connection", &conn.id));
    Ok(data(StatusCode::OK, conn.to_json()))
}
