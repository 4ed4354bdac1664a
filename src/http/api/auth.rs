//! `/api/v1/auth/*`: login, refresh, revoke, logout, me.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::accounts;
use crate::error::ApiError;
use crate::first_party;
use crate::http::api::common::{data, token_data, DpopProof, Principal};
use crate::http::extractors::{audit_context, Json, TenantProvider};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{DataEnvelope, ErrorEnvelope, PageEnvelope, TenantPath, TokenEnvelope};
use crate::state::AppState;
use crate::tokens;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
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
    let proof = DpopProof::from_request(&req, &state)?;
    let (_, t) = first_party::login(
        state.first_party(),
        &p,
        &email,
        &password,
        proof.as_ref().map(DpopProof::possession).as_ref(),
        &audit_context(&req),
    )
    .await?;
    Ok(data(StatusCode::OK, token_data(&t)))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/auth/passkey/options",
    tag = "auth",
    params(TenantPath),
    responses(
        (status = 200, description = "`{ceremony, publicKey}`: the options for `navigator.credentials.get` (a discoverable credential of this site, user verification required) and the ceremony id to send back within 5 minutes", body = DataEnvelope),
        (status = 422, description = "VALIDATION_FAILED: passkeys are off on this server (its public URL's host is an IP address, which WebAuthn does not take as a relying party id)", body = ErrorEnvelope)
    ),
)]
/// `POST /api/v1/auth/passkey/options` — starts a passkey sign-in.
pub async fn passkey_options_post(
    state: web::Data<AppState>,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, ApiError> {
    let options = first_party::passkey_options(state.first_party(), &p).await?;
    Ok(data(StatusCode::OK, options))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasskeyVerifyBody {
    /// The `ceremony` of the options.
    ceremony: Option<String>,
    /// The credential `navigator.credentials.get` returned, binary members base64url
    /// (id, rawId, type, response.authenticatorData, clientDataJSON, signature, userHandle).
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/auth/passkey/verify",
    tag = "auth",
    params(TenantPath),
    request_body = PasskeyVerifyBody,
    responses(
        (status = 200, description = "Tokens (`amr` hwk or swk, plus user; `acr` phr)", body = TokenEnvelope),
        (status = 401, description = "INVALID_CREDENTIALS: the passkey did not verify, is unknown, or its counter went back", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED: no ceremony or credential, or an unknown, expired or used ceremony", body = ErrorEnvelope)
    ),
)]
/// `POST /api/v1/auth/passkey/verify` `{"ceremony","credential"}` — signs in with a passkey.
pub async fn passkey_verify_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    Json(body): Json<PasskeyVerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let (Some(ceremony), Some(credential)) = (body.ceremony, body.credential) else {
        return Err(ApiError::ValidationFailed(
            "ceremony and credential are required".into(),
        ));
    };
    let proof = DpopProof::from_request(&req, &state)?;
    let (_, t) = first_party::login_passkey(
        state.first_party(),
        &p,
        &ceremony,
        &credential.to_string(),
        proof.as_ref().map(DpopProof::possession).as_ref(),
        &audit_context(&req),
    )
    .await?;
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
    let proof = DpopProof::from_request(&req, &state)?;
    let t = first_party::verify_mfa(
        state.first_party(),
        &p,
        &challenge,
        &code,
        proof.as_ref().map(DpopProof::possession).as_ref(),
        &audit_context(&req),
    )
    .await?;
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
    let proof = DpopProof::from_request(&req, &state)?;
    let t = first_party::refresh(
        state.first_party(),
        &p,
        &rt,
        proof.as_ref().map(DpopProof::possession).as_ref(),
        &audit_context(&req),
    )
    .await?;
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
        state.tokens(),
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
        state.first_party(),
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
    let user = accounts::find_user(&state.pool, &p.tenant, principal.user_id()?)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| ApiError::Unauthorized("the token's subject is not a user".into()))?;
    Ok(data(
        StatusCode::OK,
        json!({
            "id": user.id,
            "email": user.email,
            "email_verified": user.email_verified,
            "name": user.profile.name,
            "tenant_id": p.tenant.id,
            "tenant": p.tenant.slug,
            "roles": principal.roles(),
            "permissions": principal.permissions(),
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RegisterBody {
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/auth/register", operation_id = "auth_register_post", tag = "auth", params(TenantPath), request_body = RegisterBody,
    responses(
        (status = 202, description = "A confirmation mail is on its way (the same answer whether or not the address had an account)", body = DataEnvelope),
        (status = 404, description = "NOT_FOUND: self-registration is off for this tenant", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED (with details for password rules)", body = ErrorEnvelope)
    ))]
/// `POST /api/v1/auth/register` — self-registration, when the tenant allows it.
pub async fn register_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    Json(body): Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let (Some(email), Some(password)) = (body.email, body.password) else {
        return Err(ApiError::ValidationFailed(
            "email and password are required".into(),
        ));
    };
    accounts::register(state.accounts(), &p.tenant, &email, &password, body.name).await?;
    crate::audit::record(
        &state.audit,
        crate::audit::AuditEvent::new("user.registered", Some(&p.tenant)),
        &audit_context(&req),
    );
    Ok(data(
        StatusCode::ACCEPTED,
        json!({ "status": "verification_sent" }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenBody {
    token: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/auth/verify-email", tag = "auth", params(TenantPath), request_body = TokenBody,
    responses((status = 200, description = "The address is verified", body = DataEnvelope), (status = 422, description = "VALIDATION_FAILED: invalid, expired or used link", body = ErrorEnvelope)))]
/// `POST /api/v1/auth/verify-email` `{"token"}` — the token of the verification mail.
pub async fn verify_email_post(
    state: web::Data<AppState>,
    TenantProvider(p): TenantProvider,
    Json(body): Json<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let token = body.token.unwrap_or_default();
    accounts::verify_email(&state.pool, &p.tenant, &token).await?;
    Ok(data(StatusCode::OK, json!({ "email_verified": true })))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetBody {
    /// Step 1: the address to send a reset link to.
    email: Option<String>,
    /// Step 2: the token of the link, and the new password.
    token: Option<String>,
    new_password: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/auth/reset-password", tag = "auth", params(TenantPath), request_body = ResetBody,
    responses(
        (status = 202, description = "{\"email\"}: a reset link is sent if the address has an account (same answer either way)", body = DataEnvelope),
        (status = 200, description = "{\"token\",\"new_password\"}: the password is set; every refresh token is revoked", body = DataEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ))]
/// `POST /api/v1/auth/reset-password` — `{"email"}` asks for a link; `{"token",
/// "new_password"}` sets the password. Never reveals whether an address exists.
pub async fn reset_password_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    Json(body): Json<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    match (body.email, body.token, body.new_password) {
        (Some(email), None, None) => {
            accounts::request_password_reset(state.accounts(), &p.tenant, &email).await?;
            Ok(data(
                StatusCode::ACCEPTED,
                json!({ "status": "reset_link_sent_if_the_address_exists" }),
            ))
        }
        (None, Some(token), Some(new_password)) => {
            accounts::reset_password(&state.pool, &state.hasher, &p.tenant, &token, &new_password)
                .await?;
            crate::audit::record(
                &state.audit,
                crate::audit::AuditEvent::new("password.reset", Some(&p.tenant)),
                &audit_context(&req),
            );
            Ok(data(StatusCode::OK, json!({ "password_reset": true })))
        }
        _ => Err(ApiError::ValidationFailed(
            "send either {\"email\"} or {\"token\", \"new_password\"}".into(),
        )),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

#[utoipa::path(post, path = "/t/{tenant}/api/v1/auth/change-password", tag = "auth", params(TenantPath), request_body = ChangePasswordBody,
    responses(
        (status = 200, description = "Changed; every refresh token of the user is revoked", body = DataEnvelope),
        (status = 401, description = "INVALID_CREDENTIALS (wrong current password)", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED: policy or one of the last passwords", body = ErrorEnvelope)
    ),
    security(("bearer" = [])))]
/// `POST /api/v1/auth/change-password` — asks for the current password.
pub async fn change_password_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<ChangePasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let (Some(current), Some(new)) = (body.current_password, body.new_password) else {
        return Err(ApiError::ValidationFailed(
            "current_password and new_password are required".into(),
        ));
    };
    let user_id = principal.user_id()?.to_string();
    accounts::change_password(
        &state.pool,
        &state.hasher,
        &principal.provider.tenant,
        &user_id,
        &current,
        &new,
    )
    .await?;
    crate::audit::record(
        &state.audit,
        crate::audit::AuditEvent::new("password.changed", Some(&principal.provider.tenant))
            .actor(Some(&user_id)),
        &audit_context(&req),
    );
    Ok(data(StatusCode::OK, json!({ "password_changed": true })))
}
