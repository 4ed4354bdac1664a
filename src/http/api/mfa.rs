//! `/api/v1/mfa/*`: TOTP self-service for the signed-in user (seed 002): setup (secret and
//! QR code), verify, enable (returns backup codes once), disable, backup codes.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::accounts;
use crate::audit::{self, AuditEvent};
use crate::error::ApiError;
use crate::http::api::common::{data, Principal};
use crate::http::extractors::{audit_context, Json};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{DataEnvelope, ErrorEnvelope, TenantPath};
use crate::mfa;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    code: Option<String>,
}

fn code(body: CodeBody) -> Result<String, ApiError> {
    body.code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::ValidationFailed("code is required".into()))
}

fn event(state: &AppState, req: &HttpRequest, principal: &Principal, name: &'static str) {
    audit::record(
        &state.audit,
        AuditEvent::new(name, Some(&principal.provider.tenant)).actor(Some(&principal.actor())),
        &audit_context(req),
    );
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/mfa/setup", tag = "mfa", params(TenantPath),
    responses((status = 200, description = "secret, otpauth_uri and qr_svg", body = DataEnvelope), (status = 401, description = "Missing or invalid credentials", body = ErrorEnvelope), (status = 409, description = "CONFLICT: already enabled", body = ErrorEnvelope)),
    security(("bearer" = [])))]
/// `POST /api/v1/mfa/setup` — a new TOTP secret, in text and as an SVG QR code.
pub async fn setup_post(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let p = &principal.provider;
    let user = accounts::find_user(&state.pool, &p.tenant, principal.user_id()?)
        .await?
        .ok_or(ApiError::NotFound)?;
    let enrollment = mfa::setup(state.mfa(), &p.tenant, &user.id, &user.email).await?;
    Ok(data(StatusCode::OK, json!(enrollment)))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/mfa/verify", operation_id = "mfa_code_verify_post", tag = "mfa", params(TenantPath), request_body = CodeBody,
    responses((status = 200, description = "{\"valid\": true}", body = DataEnvelope), (status = 401, description = "MFA_INVALID_CODE", body = ErrorEnvelope)),
    security(("bearer" = [])))]
/// `POST /api/v1/mfa/verify` `{"code"}` — checks a code (of the pending secret during
/// enrolment, else of the enabled one).
pub async fn verify_post(
    state: web::Data<AppState>,
    principal: Principal,
    Json(body): Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let tenant = &principal.provider.tenant;
    let user_id = principal.user_id()?;
    let code = code(body)?;
    if mfa::is_enabled(&state.pool, tenant, user_id).await? {
        mfa::verify(state.mfa(), tenant, user_id, &code).await?;
    } else {
        mfa::verify_pending(state.mfa(), tenant, user_id, &code).await?;
    }
    Ok(data(StatusCode::OK, json!({ "valid": true })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/mfa/enable", tag = "mfa", params(TenantPath), request_body = CodeBody,
    responses((status = 200, description = "enabled, with 10 backup codes shown only now", body = DataEnvelope), (status = 401, description = "MFA_INVALID_CODE", body = ErrorEnvelope), (status = 409, description = "CONFLICT", body = ErrorEnvelope)),
    security(("bearer" = [])))]
/// `POST /api/v1/mfa/enable` `{"code"}` — enables TOTP after a valid code.
pub async fn enable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let codes = mfa::enable(
        state.mfa(),
        &principal.provider.tenant,
        principal.user_id()?,
        &code(body)?,
    )
    .await?;
    event(&state, &req, &principal, "mfa.enabled");
    Ok(data(
        StatusCode::OK,
        json!({ "enabled": true, "backup_codes": codes }),
    ))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/mfa/disable", tag = "mfa", params(TenantPath), request_body = CodeBody,
    responses((status = 200, description = "disabled", body = DataEnvelope), (status = 401, description = "MFA_INVALID_CODE", body = ErrorEnvelope)),
    security(("bearer" = [])))]
/// `POST /api/v1/mfa/disable` `{"code"}` — requires a current code (or a backup code).
pub async fn disable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    mfa::disable(
        state.mfa(),
        &principal.provider.tenant,
        principal.user_id()?,
        &code(body)?,
    )
    .await?;
    event(&state, &req, &principal, "mfa.disabled");
    Ok(data(StatusCode::OK, json!({ "enabled": false })))
}

#[utoipa::path(get, path = "/t/{tenant}/api/v1/mfa/backup-codes", tag = "mfa", params(TenantPath),
    responses((status = 200, description = "How many unused backup codes remain (codes are shown only when generated)", body = DataEnvelope)),
    security(("bearer" = [])))]
/// `GET /api/v1/mfa/backup-codes` — the number of unused codes (they are stored hashed).
pub async fn backup_codes_get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let remaining = mfa::remaining_backup_codes(&state.pool, principal.user_id()?).await?;
    Ok(data(StatusCode::OK, json!({ "remaining": remaining })))
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/mfa/backup-codes", tag = "mfa", params(TenantPath), request_body = CodeBody,
    responses((status = 200, description = "10 new backup codes, shown only now", body = DataEnvelope), (status = 401, description = "MFA_INVALID_CODE", body = ErrorEnvelope)),
    security(("bearer" = [])))]
/// `POST /api/v1/mfa/backup-codes` `{"code"}` — replaces the backup codes.
pub async fn backup_codes_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    let codes = mfa::regenerate_backup_codes(
        state.mfa(),
        &principal.provider.tenant,
        principal.user_id()?,
        &code(body)?,
    )
    .await?;
    event(&state, &req, &principal, "mfa.backup_codes_regenerated");
    Ok(data(StatusCode::OK, json!({ "backup_codes": codes })))
}
