//! The admin API (`{issuer}/api/v1/admin/…`): clients, users, signing keys, tenant settings
//! and the audit log of one tenant, authorised by the caller's permissions (a user token's
//! or an API key's scopes); and, at the root, tenants (platform keys only). Every write is
//! audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::{self, Email, NewUser, Password};
use crate::audit::{self, AuditEvent};
use crate::clients::{self, ClientError, GrantType, NewClient, RedirectUri};
use crate::error::ApiError;
use crate::http::api::common::{data, path_id, platform_key, record, Principal};
use crate::http::extractors::{audit_context, query_params, Json};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{DataEnvelope, ErrorEnvelope, PageEnvelope, TenantPath, TokenEnvelope};
use crate::keys::{self, Alg};
use crate::rbac;
use crate::state::AppState;
use crate::storage::audit::AuditFilter;
use crate::tenants::{self, TenantError, TenantSettings, TenantSlug};

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => ApiError::ValidationFailed(m),
            ClientError::InvalidClient => ApiError::Unauthorized(e.to_string()),
            ClientError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::InvalidSlug => ApiError::ValidationFailed(e.to_string()),
            TenantError::AlreadyExists => ApiError::Conflict(e.to_string()),
            TenantError::NotFound => ApiError::NotFound,
            TenantError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct ClientBody {
    name: String,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    public: bool,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    allowed_origins: Vec<String>,
    backchannel_logout_uri: Option<String>,
    skip_consent: bool,
    signing_alg: Option<String>,
    access_token_ttl: Option<i64>,
    /// off, optional or required
    mfa_policy: Option<String>,
    /// Scopes whose request needs the second factor.
    privileged_scopes: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/clients",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "Clients (clients:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/clients` (clients:read)
pub async fn clients_get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("clients:read")?;
    let list = clients::list_clients(state.clients(), &principal.provider.tenant).await?;
    Ok(data(
        StatusCode::OK,
        json!(list.iter().map(|c| c.to_json()).collect::<Vec<_>>()),
    ))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/clients",
    tag = "admin",
    params(TenantPath),
    request_body = ClientBody,
    responses(
        (status = 201, description = "Created; client_secret shown only here (clients:create)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/clients` (clients:create) — the secret is in this answer only.
pub async fn clients_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(b): Json<ClientBody>,
) -> Result<HttpResponse, ApiError> {
    principal.require("clients:create")?;
    let mut new = NewClient::new(&b.name);
    new.public = b.public;
    new.redirect_uris = b
        .redirect_uris
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<_, _>>()?;
    new.post_logout_redirect_uris = b
        .post_logout_redirect_uris
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<_, _>>()?;
    if !b.grant_types.is_empty() {
        new.grant_types = b
            .grant_types
            .iter()
            .map(|g| {
                GrantType::parse(g)
                    .ok_or_else(|| ApiError::ValidationFailed(format!("unknown grant type {g:?}")))
            })
            .collect::<Result<_, _>>()?;
    }
    if !b.scopes.is_empty() {
        new.scopes = b.scopes;
    }
    new.allowed_origins = b.allowed_origins;
    new.backchannel_logout_uri = b.backchannel_logout_uri;
    new.skip_consent = b.skip_consent;
    if let Some(alg) = b.signing_alg {
        new.signing_alg = Alg::parse(&alg).ok_or_else(|| {
            ApiError::ValidationFailed("signing_alg must be RS256, ES256 or EdDSA".into())
        })?;
    }
    new.access_token_ttl = b.access_token_ttl;
    new.privileged_scopes = b.privileged_scopes;
    if let Some(policy) = b.mfa_policy {
        new.mfa_policy = Some(crate::tenants::MfaPolicy::parse(&policy).ok_or_else(|| {
            ApiError::ValidationFailed("mfa_policy must be off, optional or required".into())
        })?);
    }
    let (client, secret) =
        clients::create_client(state.clients(), &principal.provider.tenant, new).await?;
    record(
        &state,
        &req,
        &principal,
        "client.created",
        ("client_id", &client.id),
    );
    let mut out = client.to_json();
    if let Some(s) = secret {
        out["client_secret"] = json!(s);
    }
    Ok(data(StatusCode::CREATED, out))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/clients/{id}",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Client (clients:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/clients/{id}` (clients:read)
pub async fn client_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("clients:read")?;
    let c = clients::find_client(state.clients(), &principal.provider.tenant, path_id(&req))
        .await?
        .filter(|c| c.id != clients::first_party_client_id(&principal.provider.tenant))
        .ok_or(ApiError::NotFound)?;
    Ok(data(StatusCode::OK, c.to_json()))
}

#[utoipa::path(
    delete,
    path = "/t/{tenant}/api/v1/admin/clients/{id}",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Deleted (clients:delete)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `DELETE /api/v1/admin/clients/{id}` (clients:delete)
pub async fn client_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("clients:delete")?;
    let id = path_id(&req);
    if !clients::delete_client(state.clients(), &principal.provider.tenant, id).await? {
        return Err(ApiError::NotFound);
    }
    record(
        &state,
        &req,
        &principal,
        "client.deleted",
        ("client_id", id),
    );
    Ok(data(StatusCode::OK, json!({ "deleted": true })))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/users",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "A page of users (users:read); query: limit, cursor", body = PageEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/users?limit=&cursor=` (users:read), in creation order.
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
    let cursor = q
        .get("cursor")
        .and_then(|c| c.split_once('.'))
        .and_then(|(t, id)| t.parse::<i64>().ok().map(|t| (t, id)));
    let mut page =
        accounts::list_users(&state.pool, &principal.provider.tenant, cursor, limit + 1).await?;
    let next = if page.len() as i64 > limit {
        page.truncate(limit as usize);
        page.last()
            .map(|(u, created)| format!("{created}.{}", u.id))
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
    principal.require("users:create")?;
    let tenant = &principal.provider.tenant;
    if !b.roles.is_empty() {
        principal.require("users:roles:assign")?;
        for name in &b.roles {
            let role = rbac::find_role(&state.pool, tenant, name)
                .await?
                .ok_or_else(|| {
                    ApiError::ValidationFailed(format!("role {name:?} does not exist"))
                })?;
            let needed = rbac::role_permissions(&state.pool, tenant, &role).await?;
            let held = principal.permissions();
            if !rbac::grants_all(&held, &needed) {
                return Err(ApiError::InsufficientPermissions {
                    required: needed,
                    held,
                });
            }
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
    principal.require("users:update")?;
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
    principal.require("users:delete")?;
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
    principal.require("users:update")?;
    let id = path_id(&req);
    accounts::unlock(&state.pool, &principal.provider.tenant, id).await?;
    record(&state, &req, &principal, "user.unlocked", ("user_id", id));
    Ok(data(StatusCode::OK, json!({ "unlocked": true })))
}

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
    let kids = keys::rotate_keys(&state.pool, &state.master_key, &state.config, tenant).await?;
    state.providers.invalidate(&tenant.slug);
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
    let mut current = json!(tenant.settings);
    merge(&mut current, &patch);
    let settings: TenantSettings = serde_json::from_value(current)
        .map_err(|e| ApiError::ValidationFailed(format!("invalid settings: {e}")))?;
    if settings.refresh_token_reuse_interval < 0 || settings.refresh_token_reuse_interval > 300 {
        return Err(ApiError::ValidationFailed(
            "refresh_token_reuse_interval must be 0-300 seconds".into(),
        ));
    }
    if settings
        .access_token_ttl
        .is_some_and(|t| !(60..=clients::MAX_ACCESS_TOKEN_TTL).contains(&t))
    {
        return Err(ApiError::ValidationFailed(format!(
            "access_token_ttl must be 60-{} seconds",
            clients::MAX_ACCESS_TOKEN_TTL
        )));
    }
    if let Some((group, _)) = settings
        .rate_limits
        .iter()
        .find(|(_, w)| w.limit == 0 || !(1..=86_400).contains(&w.window_secs))
    {
        return Err(ApiError::ValidationFailed(format!(
            "rate_limits.{}: limit must be at least 1 and window_secs 1-86400",
            group.as_str()
        )));
    }
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

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
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
            c.split_once('.')
                .and_then(|(t, id)| t.parse::<i64>().ok().map(|t| (t, id.to_string())))
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

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct TenantBody {
    slug: String,
    name: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/tenants",
    tag = "platform",
    request_body = TenantBody,
    responses(
        (status = 201, description = "Created (platform key with tenants:create)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/tenants` (platform key with tenants:create)
pub async fn tenants_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(b): Json<TenantBody>,
) -> Result<HttpResponse, ApiError> {
    let k = platform_key(&state, &req, "tenants:create").await?;
    let slug = TenantSlug::parse(&b.slug)?;
    let t = crate::provisioning::create_tenant(
        &state.pool,
        &state.master_key,
        &slug,
        b.name.as_deref(),
    )
    .await?;
    audit::record(
        &state.audit,
        AuditEvent::new("tenant.created", Some(&t)).actor(Some(&format!("apikey:{}", k.id))),
        &audit_context(&req),
    );
    Ok(data(
        StatusCode::CREATED,
        json!({ "id": t.id, "slug": t.slug, "name": t.name, "issuer": crate::provider::issuer_for(&state.config.public_url, &t.slug) }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/tenants",
    tag = "platform",
    responses(
        (status = 200, description = "Tenants (platform key with tenants:read)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/tenants` (platform key with tenants:read)
pub async fn tenants_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    platform_key(&state, &req, "tenants:read").await?;
    let list = tenants::list_tenants(&state.pool).await?;
    Ok(data(
        StatusCode::OK,
        json!(list
            .iter()
            .map(|t| json!({ "id": t.id, "slug": t.slug, "name": t.name, "issuer": crate::provider::issuer_for(&state.config.public_url, &t.slug) }))
            .collect::<Vec<_>>()),
    ))
}
