//! The admin API's clients (`/admin/clients`): list, create (the secret is shown once), get,
//! update, rotate the secret (shown once), delete; each write audited.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::clients::{self, ClientInput};
use crate::error::ApiError;
use crate::http::api::common::{data, path_id, record, Principal};
use crate::http::extractors::Json;
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{
    DataEnvelope, ErrorEnvelope, ListEnvelope, PageEnvelope, TenantPath, TokenEnvelope,
};
use crate::state::AppState;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct ClientBody {
    /// 1-200 characters.
    #[schema(example = "Example app")]
    name: String,
    /// Absolute URIs without fragment, matched exactly (https, or http on loopback).
    #[schema(example = json!(["https://app.example/callback"]))]
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    public: bool,
    #[schema(example = json!(["authorization_code", "refresh_token"]))]
    grant_types: Vec<String>,
    scopes: Vec<String>,
    allowed_origins: Vec<String>,
    backchannel_logout_uri: Option<String>,
    skip_consent: bool,
    signing_alg: Option<String>,
    #[schema(minimum = 1, maximum = 86400)]
    access_token_ttl: Option<i64>,
    /// off, optional or required
    mfa_policy: Option<String>,
    /// Scopes whose request needs the second factor.
    privileged_scopes: Vec<String>,
    /// private_key_jwt: the client's public keys (a JWK Set); no secret is issued.
    #[schema(value_type = Option<Object>)]
    jwks: Option<serde_json::Value>,
    /// private_key_jwt: where the client publishes its JWK Set; no secret is issued.
    jwks_uri: Option<String>,
    /// The one JWS algorithm the client's assertions may use.
    token_endpoint_auth_signing_alg: Option<String>,
    /// Authorization requests must be pushed first (PAR).
    require_pushed_authorization_requests: bool,
    /// Token requests must carry a DPoP proof (RFC 9449 §5.2).
    dpop_bound_access_tokens: bool,
    /// A security profile the client is held to: `fapi2` (FAPI 2.0 Security Profile).
    profile: Option<String>,
}

impl ClientBody {
    fn into_input(self) -> ClientInput {
        ClientInput {
            name: self.name,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            public: self.public,
            grant_types: (!self.grant_types.is_empty()).then_some(self.grant_types),
            scopes: self.scopes,
            allowed_origins: self.allowed_origins,
            backchannel_logout_uri: self.backchannel_logout_uri,
            skip_consent: self.skip_consent,
            signing_alg: self.signing_alg,
            access_token_ttl: self.access_token_ttl,
            mfa_policy: self.mfa_policy,
            privileged_scopes: self.privileged_scopes,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            token_endpoint_auth_signing_alg: self.token_endpoint_auth_signing_alg,
            require_par: self.require_pushed_authorization_requests,
            dpop_bound: self.dpop_bound_access_tokens,
            profile: self.profile,
        }
    }
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/admin/clients",
    tag = "admin",
    params(TenantPath),
    responses(
        (status = 200, description = "Clients (clients:read)", body = ListEnvelope),
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
    principal
        .require_privileged(&state, "clients:create")
        .await?;
    let new = b.into_input().parse()?;
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
    principal
        .require_privileged(&state, "clients:delete")
        .await?;
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
    put,
    path = "/t/{tenant}/api/v1/admin/clients/{id}",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    request_body = ClientBody,
    responses(
        (status = 200, description = "Updated: the whole registration is replaced; the id, secret and type stay, inline keys left out stay (clients:update)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `PUT /api/v1/admin/clients/{id}` (clients:update)
pub async fn client_put(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(b): Json<ClientBody>,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "clients:update")
        .await?;
    let new = b.into_input().parse()?;
    let id = path_id(&req);
    let client = clients::update_client(state.clients(), &principal.provider.tenant, id, new)
        .await?
        .ok_or(ApiError::NotFound)?;
    record(
        &state,
        &req,
        &principal,
        "client.updated",
        ("client_id", id),
    );
    Ok(data(StatusCode::OK, client.to_json()))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/admin/clients/{id}/rotate-secret",
    tag = "admin",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "The new client_secret, shown only here; the old one stops working (clients:update)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND (also a client without a secret)", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/clients/{id}/rotate-secret` (clients:update)
pub async fn client_rotate_secret_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal
        .require_privileged(&state, "clients:update")
        .await?;
    let id = path_id(&req);
    let secret = clients::rotate_secret(state.clients(), &principal.provider.tenant, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    record(
        &state,
        &req,
        &principal,
        "client.secret_rotated",
        ("client_id", id),
    );
    Ok(data(
        StatusCode::OK,
        json!({ "client_id": id, "client_secret": secret }),
    ))
}
