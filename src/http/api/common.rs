//! What the first-party and admin API handlers share: the caller ([`Principal`], a user's
//! access token or an API key of the tenant, or a platform key), the `{"data": …}` envelope
//! and the audit record of an administrative change.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::api_keys::ApiKey;
use crate::error::ApiError;
use crate::http::extractors::{
    audit_context, bearer_token, dpop_proof, request_url, PresentedToken, TenantProvider,
};
use crate::provider::Provider;
use crate::rbac::{self, Permission};
use crate::state::AppState;
use crate::tokens::{self, AccessToken, TokenResponse};

/// The `{id}` segment of an admin route.
pub fn path_id(req: &HttpRequest) -> &str {
    req.match_info().get("id").unwrap_or("")
}

/// Audits an administrative change made by `principal`, with one detail.
pub fn record(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    event: &'static str,
    detail: (&str, &str),
) {
    crate::audit::record(
        &state.audit,
        crate::audit::AuditEvent::new(event, Some(&principal.provider.tenant))
            .actor(Some(&principal.actor()))
            .detail(detail.0, detail.1),
        &audit_context(req),
    );
}

/// `{"data": …}` with `Cache-Control: no-store`.
pub fn data(status: actix_web::http::StatusCode, value: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "data": value }))
}

/// Who is calling: a user with a Portcullis access token of this tenant, or an API key of
/// this tenant (`x-api-key: …` or `Authorization: Bearer ak_…`).
pub enum Subject {
    User(AccessToken),
    ApiKey(ApiKey),
}

pub struct Principal {
    pub provider: Arc<Provider>,
    pub subject: Subject,
}

impl Principal {
    /// The user's token, for endpoints that act on the signed-in user.
    pub fn user_token(&self) -> Result<&AccessToken, ApiError> {
        match &self.subject {
            Subject::User(t) => Ok(t),
            Subject::ApiKey(_) => Err(ApiError::Unauthorized(
                "this endpoint needs a user's access token, not an API key".into(),
            )),
        }
    }

    pub fn user_id(&self) -> Result<&str, ApiError> {
        self.user_token().map(|t| t.sub.as_str())
    }

    /// `user:{id}` or `apikey:{id}`, for the audit log.
    pub fn actor(&self) -> String {
        match &self.subject {
            Subject::User(t) => t.sub.clone(),
            Subject::ApiKey(k) => format!("apikey:{}", k.id),
        }
    }

    pub fn permissions(&self) -> Vec<String> {
        match &self.subject {
            Subject::User(t) => string_list(t.claims.get("permissions")),
            Subject::ApiKey(k) => k.scopes.clone(),
        }
    }

    pub fn roles(&self) -> Vec<String> {
        match &self.subject {
            Subject::User(t) => string_list(t.claims.get("roles")),
            Subject::ApiKey(_) => Vec::new(),
        }
    }

    /// `require`, and for the tenant's step-up permissions a recent second factor from a
    /// user enrolled in MFA: otherwise `MFA_REQUIRED` with a challenge to answer at
    /// `/auth/mfa/verify` (seed 000). Every handler that changes something checks its
    /// permissions with this (the console applies the same rule to each of its forms); the
    /// challenge is answered with TOTP, so "enrolled" means TOTP here, where the console also
    /// counts passkeys.
    pub async fn require_privileged(
        &self,
        state: &AppState,
        permission: &str,
    ) -> Result<(), ApiError> {
        self.require(permission)?;
        let Subject::User(token) = &self.subject else {
            return Ok(());
        };
        let tenant = &self.provider.tenant;
        let verified_at = (token.claims.get("mfa_verified").and_then(Value::as_bool) == Some(true))
            .then(|| token.claims.get("auth_time").and_then(Value::as_i64))
            .flatten();
        if !crate::mfa::needs_fresh_factor(tenant, permission, verified_at)
            || !crate::mfa::is_enabled(&state.pool, tenant, &token.sub).await?
        {
            return Ok(());
        }
        let challenge_id = crate::mfa::create_challenge(&state.pool, tenant, &token.sub).await?;
        Err(ApiError::MfaRequired { challenge_id })
    }

    /// Fails with `INSUFFICIENT_PERMISSIONS` (naming what is required and what is held)
    /// unless one of the caller's permissions grants `permission`.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        let held = self.permissions();
        let granted = held
            .iter()
            .filter_map(|p| Permission::parse(p).ok())
            .any(|p| p.grants(permission));
        if granted {
            Ok(())
        } else {
            Err(ApiError::InsufficientPermissions {
                required: vec![permission.to_string()],
                held,
            })
        }
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn unauthorized() -> ApiError {
    ApiError::Unauthorized("Missing or invalid authentication token".into())
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let api_key = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let token = bearer_token(req);
        let presented = state
            .as_ref()
            .map(|s| PresentedToken::from_request(req, &s.config.public_url));
        let tenant = TenantProvider::from_request(req, payload);
        Box::pin(async move {
            let TenantProvider(provider) = tenant.await?;
            let state = state.ok_or(ApiError::Internal)?;
            let key = api_key.or_else(|| token.clone().filter(|t| t.starts_with("ak_")));
            if let Some(key) = key {
                // The tenant comes from the key: a key of another tenant fails like garbage.
                let k = crate::api_keys::verify(state.api_keys(), &key)
                    .await
                    .map_err(|e| ApiError::unexpected(&e))?
                    .filter(|k| k.tenant_id.as_deref() == Some(provider.tenant.id.as_str()))
                    .ok_or_else(unauthorized)?;
                return Ok(Principal {
                    provider,
                    subject: Subject::ApiKey(k),
                });
            }
            let presented = presented
                .ok_or(ApiError::Internal)?
                .map_err(|why| ApiError::from(tokens::BearerError::InvalidDpopProof(why)))?
                .ok_or_else(unauthorized)?;
            let at =
                tokens::validate_presented(state.tokens(), &provider, presented.presentation())
                    .await
                    .map_err(ApiError::from)?;
            if !crate::first_party::issued_for_api(&provider.tenant, &at) {
                return Err(ApiError::Unauthorized(
                    "this token was not issued for the Portcullis API".into(),
                )
                .into());
            }
            Ok(Principal {
                provider,
                subject: Subject::User(at),
            })
        })
    }
}

pub fn token_data(t: &TokenResponse) -> serde_json::Value {
    json!({
        "token": t.access_token,
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "expires_in": t.expires_in,
        "token_type": t.token_type,
    })
}

/// The DPoP proof a first-party sign-in or refresh sent (RFC 9449): its tokens are bound
/// to the proof's key.
pub struct DpopProof {
    proof: String,
    uri: String,
}

impl DpopProof {
    pub fn from_request(req: &HttpRequest, state: &AppState) -> Result<Option<Self>, ApiError> {
        let proof = dpop_proof(req).map_err(|why| ApiError::Dpop {
            status: actix_web::http::StatusCode::BAD_REQUEST,
            error: "invalid_dpop_proof",
            message: why.into(),
            nonce: None,
        })?;
        Ok(proof.map(|proof| DpopProof {
            proof,
            uri: request_url(req, &state.config.public_url),
        }))
    }

    pub fn possession(&self) -> crate::first_party::ProofOfPossession<'_> {
        crate::first_party::ProofOfPossession {
            proof: &self.proof,
            uri: &self.uri,
        }
    }
}

/// A platform API key (`apikey create --platform`), from `x-api-key` or Bearer.
pub async fn platform_key(
    state: &AppState,
    req: &HttpRequest,
    permission: &str,
) -> Result<ApiKey, ApiError> {
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| bearer_token(req))
        .ok_or_else(|| ApiError::Unauthorized("a platform API key is required".into()))?;
    let k = crate::api_keys::verify(state.api_keys(), &key)
        .await?
        .filter(|k| k.tenant_id.is_none())
        .ok_or_else(|| ApiError::Unauthorized("a platform API key is required".into()))?;
    let held = k.scopes.clone();
    if !rbac::grants_all(&held, &[permission.to_string()]) {
        return Err(ApiError::InsufficientPermissions {
            required: vec![permission.into()],
            held,
        });
    }
    Ok(k)
}
