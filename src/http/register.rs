//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), behind a
//! per-tenant switch (`registration_enabled`). With `registration_token_required`, an API
//! key of the tenant holding `clients:create` is the initial access token.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api_keys;
use crate::audit::{self, AuditEvent};
use crate::clients::{self, Client, ClientError, GrantType, NewClient, RedirectUri};
use crate::error::{BearerChallenge, OAuthError};
use crate::http::extractors::{audit_context, bearer_token, MetadataJson, TenantProvider};
use crate::keys::Alg;
use crate::provider::Provider;
use crate::rbac;
use crate::state::AppState;

/// Client metadata (RFC 7591 §2, OpenID Connect Registration §2, RP-Initiated and
/// Back-Channel Logout).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct Metadata {
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    post_logout_redirect_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
    id_token_signed_response_alg: Option<String>,
    client_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    require_pushed_authorization_requests: bool,
    /// RFC 9449 §5.2: token requests must carry a DPoP proof.
    dpop_bound_access_tokens: bool,
}

fn invalid(error: &'static str, d: impl Into<String>) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, error, d)
}

/// Metadata → a client to register, with RFC 7591 §3.2.2 errors.
fn to_new_client(m: Metadata) -> Result<NewClient, OAuthError> {
    let method = m
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic");
    let has_keys = m.jwks.is_some() || m.jwks_uri.is_some();
    let public = match method {
        "client_secret_basic" | "client_secret_post" if !has_keys => false,
        "private_key_jwt" if has_keys => false,
        "private_key_jwt" => {
            return Err(invalid(
                "invalid_client_metadata",
                "private_key_jwt needs jwks or jwks_uri",
            ))
        }
        "client_secret_basic" | "client_secret_post" | "none" if has_keys => {
            return Err(invalid(
                "invalid_client_metadata",
                "jwks and jwks_uri are for token_endpoint_auth_method private_key_jwt",
            ))
        }
        "none" => true,
        other => {
            return Err(invalid(
                "invalid_client_metadata",
                format!("token_endpoint_auth_method {other} is not supported"),
            ))
        }
    };
    if let Some(rt) = &m.response_types {
        if rt.iter().any(|r| r != "code") {
            return Err(invalid(
                "invalid_client_metadata",
                "only the code response type is supported",
            ));
        }
    }
    let mut new = NewClient::new(m.client_name.as_deref().unwrap_or("Registered client"));
    new.public = public;
    new.redirect_uris = m
        .redirect_uris
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("invalid_redirect_uri", e.to_string()))?;
    new.post_logout_redirect_uris = m
        .post_logout_redirect_uris
        .iter()
        .map(|u| RedirectUri::parse(u))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("invalid_client_metadata", e.to_string()))?;
    if let Some(g) = m.grant_types {
        new.grant_types = g
            .iter()
            .map(|g| {
                GrantType::parse(g).ok_or_else(|| {
                    invalid(
                        "invalid_client_metadata",
                        format!("grant type {g} is not supported"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    } else {
        new.grant_types = vec![GrantType::AuthorizationCode];
    }
    if let Some(scope) = m.scope {
        new.scopes = crate::tokens::parse_scope(&scope)
            .map_err(|e| invalid("invalid_client_metadata", e))?;
    }
    new.backchannel_logout_uri = m.backchannel_logout_uri;
    new.jwks = m.jwks;
    new.jwks_uri = m.jwks_uri;
    new.auth_signing_alg = m.token_endpoint_auth_signing_alg;
    new.require_par = m.require_pushed_authorization_requests;
    new.dpop_bound = m.dpop_bound_access_tokens;
    if let Some(alg) = m.id_token_signed_response_alg {
        new.signing_alg = Alg::parse(&alg)
            .ok_or_else(|| invalid("invalid_client_metadata", format!("{alg} is not supported")))?;
    }
    Ok(new)
}

fn client_error(e: ClientError) -> OAuthError {
    match e {
        ClientError::Invalid(d) if d.starts_with("redirect URI") || d.contains("redirect URI") => {
            invalid("invalid_redirect_uri", d)
        }
        ClientError::Invalid(d) => invalid("invalid_client_metadata", d),
        other => OAuthError::from(other),
    }
}

fn metadata_json(p: &Provider, c: &Client) -> Value {
    json!({
        "client_id": c.id,
        "client_name": c.name,
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "grant_types": c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types": ["code"],
        "token_endpoint_auth_method": c.auth_method.as_str(),
        "jwks": c.jwks.as_ref().map(|k| clients::jwks::to_json(k)),
        "jwks_uri": c.jwks_uri,
        "token_endpoint_auth_signing_alg": c.auth_signing_alg,
        "require_pushed_authorization_requests": c.require_par,
        "dpop_bound_access_tokens": c.dpop_bound,
        "scope": c.scopes.join(" "),
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "id_token_signed_response_alg": c.signing_alg.as_str(),
        "registration_client_uri": p.endpoint(&format!("/register/{}", c.id)),
    })
}

fn enabled(p: &Provider) -> Result<(), OAuthError> {
    if p.tenant.settings.registration_enabled {
        Ok(())
    } else {
        Err(OAuthError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "dynamic client registration is not enabled",
        ))
    }
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/register",
    tag = "registration",
    params(crate::http::schema::TenantPath),
    request_body = Metadata,
    responses(
        (status = 201, description = "Client id, secret and registration access token"),
        (status = 400, description = "invalid_redirect_uri or invalid_client_metadata", body = crate::http::schema::OAuthErrorBody),
        (status = 401, description = "invalid_token: missing or invalid (initial or registration) access token", body = crate::http::schema::OAuthErrorBody),
        (status = 404, description = "not_found: dynamic client registration is not enabled for the tenant", body = crate::http::schema::OAuthErrorBody)
    ),
)]
/// `POST {issuer}/register` (RFC 7591 §3)
pub async fn register_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    MetadataJson(m): MetadataJson<Metadata>,
) -> Result<HttpResponse, actix_web::Error> {
    enabled(&p)?;
    if p.tenant.settings.registration_token_required {
        let key = match bearer_token(&req) {
            Some(t) => api_keys::verify(state.api_keys(), &t)
                .await
                .map_err(|e| OAuthError::from(anyhow::anyhow!(e.to_string())))?,
            None => None,
        };
        let allowed = key
            .filter(|k| k.tenant_id.as_deref() == Some(p.tenant.id.as_str()))
            .is_some_and(|k| rbac::grants_all(&k.scopes, &["clients:create".to_string()]));
        if !allowed {
            return Err(BearerChallenge::from(crate::tokens::BearerError::Invalid).into());
        }
    }
    if m.client_id.is_some() {
        return Err(invalid(
            "invalid_client_metadata",
            "client_id is assigned by the server",
        )
        .into());
    }
    let new = to_new_client(m)?;
    let reg = clients::register_client(state.clients(), &p.tenant, new)
        .await
        .map_err(client_error)?;
    audit::record(
        &state.audit,
        AuditEvent::new("client.registered", Some(&p.tenant)).client(&reg.client.id),
        &audit_context(&req),
    );
    let mut out = metadata_json(&p, &reg.client);
    out["client_id_issued_at"] = json!(reg.issued_at);
    out["registration_access_token"] = json!(reg.registration_token);
    if let Some(secret) = reg.secret {
        out["client_secret"] = json!(secret);
        out["client_secret_expires_at"] = json!(0);
    }
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(out))
}

async fn registered(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
) -> Result<Client, actix_web::Error> {
    enabled(p)?;
    let client_id = req.match_info().get("client_id").unwrap_or("");
    let token = bearer_token(req).ok_or_else(BearerChallenge::missing)?;
    // RFC 7592 §2: an invalid token (or one of another client) is an RFC 6750 error.
    clients::authenticate_registration(state.clients(), &p.tenant, client_id, &token)
        .await
        .map_err(|_| BearerChallenge::from(crate::tokens::BearerError::Invalid).into())
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/register/{client_id}",
    tag = "registration",
    params(crate::http::schema::TenantPath, ("client_id" = String, Path, description = "The registered client")),
    responses(
        (status = 200, description = "Registered metadata"),
        (status = 400, description = "invalid_redirect_uri or invalid_client_metadata", body = crate::http::schema::OAuthErrorBody),
        (status = 401, description = "invalid_token: missing or invalid (initial or registration) access token", body = crate::http::schema::OAuthErrorBody),
        (status = 404, description = "not_found: dynamic client registration is not enabled for the tenant", body = crate::http::schema::OAuthErrorBody)
    ),
)]
/// `GET {issuer}/register/{client_id}` (RFC 7592 §2.1)
pub async fn registration_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, actix_web::Error> {
    let c = registered(&state, &req, &p).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(metadata_json(&p, &c)))
}

#[utoipa::path(
    put,
    path = "/t/{tenant}/register/{client_id}",
    tag = "registration",
    params(crate::http::schema::TenantPath, ("client_id" = String, Path, description = "The registered client")),
    request_body = Metadata,
    responses(
        (status = 200, description = "Updated metadata"),
        (status = 400, description = "invalid_redirect_uri or invalid_client_metadata", body = crate::http::schema::OAuthErrorBody),
        (status = 401, description = "invalid_token: missing or invalid (initial or registration) access token", body = crate::http::schema::OAuthErrorBody),
        (status = 404, description = "not_found: dynamic client registration is not enabled for the tenant", body = crate::http::schema::OAuthErrorBody)
    ),
)]
/// `PUT {issuer}/register/{client_id}` (RFC 7592 §2.2) — replaces the metadata.
pub async fn registration_put(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    MetadataJson(m): MetadataJson<Metadata>,
) -> Result<HttpResponse, actix_web::Error> {
    let c = registered(&state, &req, &p).await?;
    if m.client_id.as_deref().is_some_and(|id| id != c.id) {
        return Err(invalid("invalid_client_metadata", "client_id does not match").into());
    }
    let new = to_new_client(m)?;
    let updated = clients::update_registration(state.clients(), &p.tenant, &c, new)
        .await
        .map_err(client_error)?;
    audit::record(
        &state.audit,
        AuditEvent::new("client.updated", Some(&p.tenant)).client(&c.id),
        &audit_context(&req),
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(metadata_json(&p, &updated)))
}

#[utoipa::path(
    delete,
    path = "/t/{tenant}/register/{client_id}",
    tag = "registration",
    params(crate::http::schema::TenantPath, ("client_id" = String, Path, description = "The registered client")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "invalid_redirect_uri or invalid_client_metadata", body = crate::http::schema::OAuthErrorBody),
        (status = 401, description = "invalid_token: missing or invalid (initial or registration) access token", body = crate::http::schema::OAuthErrorBody),
        (status = 404, description = "not_found: dynamic client registration is not enabled for the tenant", body = crate::http::schema::OAuthErrorBody)
    ),
)]
/// `DELETE {issuer}/register/{client_id}` (RFC 7592 §2.3)
pub async fn registration_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, actix_web::Error> {
    let c = registered(&state, &req, &p).await?;
    clients::delete_client(state.clients(), &p.tenant, &c.id)
        .await
        .map_err(OAuthError::from)?;
    audit::record(
        &state.audit,
        AuditEvent::new("client.deleted", Some(&p.tenant)).client(&c.id),
        &audit_context(&req),
    );
    Ok(HttpResponse::NoContent().finish())
}
