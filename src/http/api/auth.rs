//! `/api/v1/auth/*`: login, refresh, revoke, logout, me.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::accounts;
use crate::error::ApiError;
use crate::first_party;
use crate::http::api::{data, Json, Principal};
use crate::http::extractors::{audit_context, TenantProvider};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::openapi::{DataEnvelope, ErrorEnvelope, PageEnvelope, TenantPath, TokenEnvelope};
use crate::state::AppState;
use crate::tokens::{self, TokenResponse};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

fn token_data(t: &TokenResponse) -> serde_json::Value {
    json!({
        "token": t.access_token,
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "expires_in": t.expires_in,
        "token_type": "Bearer",
    })
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/auth/login",
    tag = "auth",
    params(TenantPath),
    request_body = LoginBody,
    responses(
        (status = 200, description = "Tokens", body = TokenEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
)]
/// `POST /api/v1/auth/login` `{"username"|"email", "password"}`
pub async fn login_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    Json(body): Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let (Some(email), Some(password)) = (body.email.or(body.username), body.password) else {
        return Err(ApiError::ValidationFailed(
            "username (or email) and password are required".into(),
        ));
    };
    let (_, t) = first_party::login(&state, &p, &email, &password, &audit_context(&req)).await?;
    Ok(data(StatusCode::OK, token_data(&t)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MfaVerifyBody {
    challenge_id: Option<String>,
    code: Option<String>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/auth/mfa/verify",
    tag = "auth",
    params(TenantPath),
    request_body = MfaVerifyBody,
    responses(
        (status = 200, description = "Tokens with mfa_verified: true and mfa_expires_in", body = DataEnvelope),
        (status = 401, description = "MFA_INVALID_CODE", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
)]
/// `POST /api/v1/auth/mfa/verify` `{"challenge_id","code"}` — answers the `MFA_REQUIRED`
/// challenge with a TOTP or backup code (seed 000).
pub async fn mfa_verify_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    Json(body): Json<MfaVerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let (Some(challenge), Some(code)) = (body.challenge_id, body.code) else {
        return Err(ApiError::ValidationFailed(
            "challenge_id and code are required".into(),
        ));
    };
    let t = first_party::verify_mfa(&state, &p, &challenge, &code, &audit_context(&req)).await?;
    let mut out = token_data(&t);
    out["mfa_verified"] = json!(true);
    out["mfa_expires_in"] = json!(first_party::MFA_FRESHNESS);
    Ok(data(StatusCode::OK, out))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/auth/refresh",
    tag = "auth",
    params(TenantPath),
    request_body = RefreshBody,
    responses(
        (status = 200, description = "New tokens; the presented refresh token is used up", body = TokenEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
)]
/// `POST /api/v1/auth/refresh` `{"refresh_token"}` — rotation; reuse revokes the family.
pub async fn refresh_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    Json(body): Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let rt = body
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::ValidationFailed("refresh_token is required".into()))?;
    let t = first_party::refresh(&state, &p, &rt, &audit_context(&req)).await?;
    Ok(data(StatusCode::OK, token_data(&t)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RevokeBody {
    token: Option<String>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/auth/revoke",
    tag = "auth",
    params(TenantPath),
    request_body = RevokeBody,
    responses(
        (status = 200, description = "Revoked", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/auth/revoke` `{"token"}` — an access or refresh token of the caller.
pub async fn revoke_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<RevokeBody>,
) -> Result<HttpResponse, ApiError> {
    let token = body
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::ValidationFailed("token is required".into()))?;
    tokens::revoke_for_user(
        &state,
        &principal.provider,
        principal.user_id()?,
        &token,
        &audit_context(&req),
    )
    .await?;
    Ok(data(StatusCode::OK, json!({ "revoked": true })))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/auth/logout",
    tag = "auth",
    params(TenantPath),
    responses(
        (status = 200, description = "Every refresh token of the user revoked", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/auth/logout` — revokes every refresh token of the caller and this token.
pub async fn logout_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let token = principal.user_token()?;
    first_party::logout(
        &state,
        &principal.provider,
        &token.sub,
        &token.jti,
        token.exp,
        &audit_context(&req),
    )
    .await?;
    Ok(data(StatusCode::OK, json!({ "logged_out": true })))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/auth/me",
    tag = "auth",
    params(TenantPath),
    responses(
        (status = 200, description = "The signed-in user, roles and permissions", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/auth/me` — the caller's profile, roles and permissions.
pub async fn me_get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let p = &principal.provider;
    let user = accounts::find_user(&state, &p.tenant, principal.user_id()?)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::Unauthorized("the token's subject is not a user".into()))?;
    Ok(data(
        StatusCode::OK,
        json!({
            "id": user.id,
            "email": user.email,
            "email_verified": user.email_verified,
            "name": user.name,
            "tenant_id": p.tenant.id,
            "tenant": p.tenant.slug,
            "roles": principal.roles(),
            "permissions": principal.permissions(),
        }),
    ))
}
