//! The admin API's users (`/admin/users`): search and page, create, get, update, delete,
//! unlock; each write audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::{self, Email, NewUser, Password};
use crate::error::ApiError;
use crate::http::api::common::{data, path_id, record, Principal};
use crate::http::extractors::{query_params, Json};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{DataEnvelope, ErrorEnvelope, PageEnvelope, TenantPath, TokenEnvelope};
use crate::rbac;
use crate::state::AppState;
use crate::user_admin;

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/users",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "A page of users (users:read); query: limit, cursor, q (part of the e-mail address)", body = PageEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/users?limit=&cursor=&q=` (users:read), in creation order; `q` keeps
/// the users whose e-mail address contains it.
pub async fn users_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("users:read")?;
    let q = query_params(&req);
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let cursor = q.get("cursor").and_then(crate::storage::parse_cursor);
    let mut page = accounts::list_users(
        &state.pool,
        &principal.provider.tenant,
        cursor,
        q.get("q"),
        limit + 1,
    )
    .await?;
    let next = if page.len() as i64 > limit {
        page.truncate(limit as usize);
        page.last()
            .map(|(u, created)| crate::storage::format_cursor(*created, &u.id))
    } else {
        None
    };
    let users: Vec<Value> = page.iter().map(|(u, _)| u.to_json()).collect();
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "data": users, "next_cursor": next })))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct UserBody {
    #[schema(example = "ana@example.com")]
    email: String,
    password: Option<String>,
    name: Option<String>,
    /// The other OpenID Connect profile claims (`given_name`, `family_name`,
    /// `preferred_username`, `picture`, `locale`, `zoneinfo`); `name` may be given here too.
    profile: crate::accounts::Profile,
    roles: Vec<String>,
    #[schema(value_type = Object)]
    attributes: serde_json::Map<String, Value>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/users",
    tag = "admin",
    params(TenantPath),
    request_body = UserBody,
    responses(
        (status = 201, description = "Created (users:create)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/users` (users:create; with roles also users:roles:assign and every
/// permission of those roles).
pub async fn users_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(b): Json<UserBody>,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "users:create").await?;
    let tenant = &principal.provider.tenant;
    if !b.roles.is_empty() {
        principal
            .require_privileged(&state, "users:roles:assign")
            .await?;
        for name in &b.roles {
            let role = rbac::find_role(&state.pool, tenant, name)
                .await?
                .ok_or_else(|| {
                    ApiError::ValidationFailed(format!("role {name:?} does not exist"))
                })?;
            rbac::check_grantable(&state.pool, tenant, &principal.permissions(), &role).await?;
        }
    }
    let user = accounts::create_user(
        &state.pool,
        &state.hasher,
        tenant,
        NewUser {
            email: Email::parse(&b.email)?,
            password: b.password.as_deref().map(Password::parse).transpose()?,
            profile: crate::accounts::Profile {
                name: b.name.or(b.profile.name.clone()),
                ..b.profile
            },
            email_verified: false,
            roles: b.roles,
            attributes: b.attributes,
        },
    )
    .await?;
    record(
        &state,
        &req,
        &principal,
        "user.created",
        ("user_id", &user.id),
    );
    Ok(data(StatusCode::CREATED, user.to_json()))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/users/{id}",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "User with roles (users:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/users/{id}` (users:read), with the user's effective roles.
pub async fn user_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("users:read")?;
    let tenant = &principal.provider.tenant;
    let user = accounts::find_user(&state.pool, tenant, path_id(&req))
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = rbac::effective_access(&state.pool, tenant, &user.id, "").await?;
    let mut out = user.to_json();
    out["roles"] = json!(access.roles);
    out["permissions"] = json!(access.permissions);
    Ok(data(StatusCode::OK, out))
}

#[utoipa::path(
    patch,
    path = "/t/{tenant}/api/v1/admin/users/{id}",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    request_body = crate::accounts::Profile,
    responses(
        (status = 200, description = "The user with the new profile claims (users:update)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `PATCH /api/v1/admin/users/{id}` (users:update): replaces the profile claims (OIDC Core
/// §5.1: name, given_name, family_name, preferred_username, picture, locale, zoneinfo);
/// `updated_at` moves.
pub async fn user_patch(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(profile): Json<crate::accounts::Profile>,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "users:update").await?;
    let id = path_id(&req);
    let user =
        accounts::update_profile(&state.pool, &principal.provider.tenant, id, profile).await?;
    record(&state, &req, &principal, "user.updated", ("user_id", id));
    Ok(data(StatusCode::OK, user.to_json()))
}

#[utoipa::path(
    delete,
    path = "/t/{tenant}/api/v1/admin/users/{id}",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Deleted (users:delete)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `DELETE /api/v1/admin/users/{id}` (users:delete)
pub async fn user_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "users:delete").await?;
    let id = path_id(&req);
    if !accounts::delete_user(&state.pool, &principal.provider.tenant, id).await? {
        return Err(ApiError::NotFound);
    }
    record(&state, &req, &principal, "user.deleted", ("user_id", id));
    Ok(data(StatusCode::OK, json!({ "deleted": true })))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/users/{id}/unlock",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Lockout lifted (users:update)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/users/{id}/unlock` (users:update) — lifts a brute-force lockout.
pub async fn user_unlock_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "users:update").await?;
    let id = path_id(&req);
    accounts::unlock(&state.pool, &principal.provider.tenant, id).await?;
    record(&state, &req, &principal, "user.unlocked", ("user_id", id));
    Ok(data(StatusCode::OK, json!({ "unlocked": true })))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/users/{id}/disable",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Disabled (users:update): every session ended, every refresh token revoked", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/users/{id}/disable` (users:update) — the user cannot sign in and is
/// signed out everywhere.
pub async fn user_disable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    set_disabled(state, req, principal, true).await
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/users/{id}/enable",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Enabled again (users:update)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/users/{id}/enable` (users:update)
pub async fn user_enable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    set_disabled(state, req, principal, false).await
}

async fn set_disabled(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    disabled: bool,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "users:update").await?;
    let id = path_id(&req);
    let user = user_admin::set_disabled(
        &state.pool,
        &state.outbound,
        &principal.provider,
        id,
        disabled,
    )
    .await?;
    let event = if disabled {
        "user.disabled"
    } else {
        "user.enabled"
    };
    record(&state, &req, &principal, event, ("user_id", id));
    Ok(data(StatusCode::OK, user.to_json()))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/users/{id}/reset-mfa",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Every second factor removed: TOTP, backup codes, passkeys (users:update)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/users/{id}/reset-mfa` (users:update) — for a user who lost their
/// authenticator: they sign in with their password and enrol again.
pub async fn user_reset_mfa_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "users:update").await?;
    let id = path_id(&req);
    user_admin::reset_second_factors(&state.pool, &principal.provider, id).await?;
    record(&state, &req, &principal, "user.mfa_reset", ("user_id", id));
    Ok(data(StatusCode::OK, json!({ "reset": true })))
}
