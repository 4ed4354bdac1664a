//! OAuth 2.0 / OpenID Connect endpoints that speak JSON: discovery, JWKS, token,
//! pushed authorization requests, userinfo, revocation and introspection. Each parses the request, calls one domain
//! function and maps the result.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::accounts;
use crate::authorization::{self, AuthorizeError};
use crate::clients::{self, ClientCredentials};
use crate::error::{BearerChallenge, OAuthError, DPOP_NONCE};
use crate::http::extractors::{
    audit_context, client_credentials, dpop_proof, mark_cors_client, request_url, FormParams,
    PresentedToken, TenantProvider,
};
use crate::state::AppState;
use crate::tokens::{self, TokenError};

fn public_json(bytes: &[u8]) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(bytes.to_vec())
}

/// `GET {issuer}/.well-known/openid-configuration` — pre-serialised.
pub async fn discovery_get(TenantProvider(p): TenantProvider) -> HttpResponse {
    public_json(&p.discovery)
}

/// `GET {issuer}/jwks` — pre-serialised.
pub async fn jwks_get(TenantProvider(p): TenantProvider) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(p.keys.jwks.clone())
}

fn no_store_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

fn reject_repeated(params: &crate::authorization::Params) -> Result<(), OAuthError> {
    match params.repeated.first() {
        Some(name) => Err(OAuthError::invalid_request(format!(
            "parameter {name} was given more than once"
        ))),
        None => Ok(()),
    }
}

async fn authenticated_client(
    state: &AppState,
    req: &HttpRequest,
    p: &crate::provider::Provider,
    params: &crate::authorization::Params,
) -> Result<(clients::Client, ClientCredentials), OAuthError> {
    let creds = client_credentials(req, params)?;
    // private_key_jwt audiences (RFC 7523 §3, RFC 9126 §2): the issuer, the token
    // endpoint, or the endpoint called; built only for an assertion (not per secret request).
    let audiences = match creds {
        ClientCredentials::Assertion { .. } => {
            let last_segment = req.path().rsplit('/').next().unwrap_or_default();
            vec![
                p.issuer.clone(),
                p.endpoint("/token"),
                p.endpoint(&format!("/{last_segment}")),
            ]
        }
        _ => Vec::new(),
    };
    let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
    let client =
        clients::authenticate_client(state.clients(), &p.tenant, &creds, &audiences).await?;
    mark_cors_client(req, &client);
    Ok((client, creds))
}

/// `POST {issuer}/token` (RFC 6749 §3.2).
pub async fn token_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(params): FormParams,
) -> Result<HttpResponse, OAuthError> {
    reject_repeated(&params)?;
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let proof = dpop_proof(&req).map_err(invalid_dpop_proof)?;
    let (client, _) = authenticated_client(&state, &req, &p, &params).await?;
    let d = state.tokens();
    // htu is compared only when a proof came: no URL is built for the other requests.
    let url = match proof {
        Some(_) => request_url(&req, &state.config.public_url),
        None => String::new(),
    };
    let jkt = tokens::proof_of_possession(d, &p, &client, proof.as_deref(), &url).await?;
    let jkt = jkt.as_deref();
    let ctx = audit_context(&req);
    let result = match grant_type {
        "authorization_code" => {
            let code = params
                .get("code")
                .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
            let redemption = tokens::CodeRedemption {
                code,
                redirect_uri: params.get("redirect_uri"),
                code_verifier: params.get("code_verifier"),
            };
            tokens::exchange_code(d, &p, &client, redemption, jkt, &ctx).await
        }
        "refresh_token" => {
            let rt = params
                .get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            tokens::refresh(d, &p, &client, rt, params.get("scope"), jkt, &ctx).await
        }
        "client_credentials" => {
            tokens::client_credentials(d, &p, &client, params.get("scope"), jkt, &ctx).await
        }
        _ => Err(TokenError::UnsupportedGrantType),
    };
    let body = result?;
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    // RFC 9449 §8.2: the nonce for the client's next proof.
    if let Some(nonce) = jkt.and_then(|_| tokens::dpop_nonce(d, &p)) {
        resp.insert_header((DPOP_NONCE, nonce));
    }
    Ok(resp.json(body))
}

fn invalid_dpop_proof(why: &str) -> OAuthError {
    OAuthError::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", why)
}

/// `GET|POST {issuer}/userinfo` (OpenID Connect Core §5.3). The token comes in the
/// Authorization header or, for POST, in the body (RFC 6750 §2.2) — not both.
pub async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    body: web::Bytes,
) -> Result<HttpResponse, BearerChallenge> {
    let header_token = PresentedToken::from_request(&req, &state.config.public_url)
        .map_err(|why| BearerChallenge::from(tokens::BearerError::InvalidDpopProof(why)))?;
    let body_token = if req.method() == actix_web::http::Method::POST && !body.is_empty() {
        crate::authorization::Params::parse(&body)
            .get("access_token")
            .map(|t| PresentedToken::Bearer(t.to_string()))
    } else {
        None
    };
    let token = match (header_token, body_token) {
        (Some(_), Some(_)) => {
            return Err(BearerChallenge::invalid_request(
                "use only one way to send the access token",
            ))
        }
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return Err(BearerChallenge::missing()),
    };
    let at = tokens::validate_presented(state.tokens(), &p, token.presentation()).await?;
    if req.headers().contains_key(header::ORIGIN) {
        if let Ok(Some(client)) =
            clients::find_client(state.clients(), &p.tenant, &at.client_id).await
        {
            mark_cors_client(&req, &client);
        }
    }
    if !at.scope.iter().any(|s| s == "openid") {
        return Err(BearerChallenge::insufficient_scope(
            "the openid scope is required",
        ));
    }
    let user = accounts::find_user(&state.pool, &p.tenant, &at.sub)
        .await
        .map_err(|_| BearerChallenge::from(tokens::BearerError::Unexpected))?
        .filter(|u| !u.disabled)
        .ok_or(BearerChallenge::from(tokens::BearerError::Invalid))?;
    let requested = at
        .claims
        .get("userinfo_claims")
        .and_then(Value::as_array)
        .map(|names| {
            let m: serde_json::Map<String, Value> = names
                .iter()
                .filter_map(Value::as_str)
                .map(|n| (n.to_string(), Value::Null))
                .collect();
            json!({ "userinfo": m })
        });
    let mut claims = tokens::user_claims(&user, &at.scope, requested.as_ref(), "userinfo");
    claims.insert("sub".into(), json!(user.id));
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Value::Object(claims)))
}

/// `POST {issuer}/revoke` (RFC 7009 §2).
pub async fn revoke_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(params): FormParams,
) -> Result<HttpResponse, OAuthError> {
    reject_repeated(&params)?;
    let (client, _) = authenticated_client(&state, &req, &p, &params).await?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    tokens::revoke(state.tokens(), &p, &client, token, &audit_context(&req)).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST {issuer}/par` (RFC 9126 §2): a client pushes its authorization request and gets
/// a single-use `request_uri` for the authorization endpoint.
pub async fn par_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(params): FormParams,
) -> Result<HttpResponse, OAuthError> {
    reject_repeated(&params)?;
    let proof = dpop_proof(&req).map_err(invalid_dpop_proof)?;
    let (client, _) = authenticated_client(&state, &req, &p, &params).await?;
    // RFC 9449 §10.1: a proof sent here binds the code to its key (not required here even
    // for dpop_bound clients: the token request will need one).
    let jkt = match &proof {
        Some(proof) => {
            let url = request_url(&req, &state.config.public_url);
            tokens::proof_of_possession(state.tokens(), &p, &client, Some(proof), &url).await?
        }
        None => None,
    };
    let (request_uri, expires_in) =
        authorization::push_request(state.authorization(), &p, &client, &params, jkt.as_deref())
            .await
            .map_err(|e| match e {
                AuthorizeError::Page(d) => OAuthError::invalid_request(d),
                AuthorizeError::Redirect(r) => {
                    OAuthError::new(StatusCode::BAD_REQUEST, r.error, r.description)
                }
                AuthorizeError::Unexpected(e) => OAuthError::from(e),
            })?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "request_uri": request_uri, "expires_in": expires_in })))
}

/// `POST {issuer}/introspect` (RFC 7662 §2). Only confidential clients may introspect.
pub async fn introspect_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(params): FormParams,
) -> Result<HttpResponse, OAuthError> {
    reject_repeated(&params)?;
    let (client, creds) = authenticated_client(&state, &req, &p, &params).await?;
    if !client.confidential || matches!(creds, ClientCredentials::None { .. }) {
        return Err(OAuthError::invalid_client());
    }
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let result = tokens::introspect(state.tokens(), &p, &client, token).await?;
    Ok(no_store_json(&result))
}
