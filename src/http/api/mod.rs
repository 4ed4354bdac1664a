//! The first-party JSON API (`{issuer}/api/v1/…`, and at the root for the default tenant):
//! `{"data": …}` on success, `{"error":{"code","message","correlation_id"}}` otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::api_keys::ApiKey;
use crate::error::ApiError;
use crate::http::extractors::{bearer_token, TenantProvider};
use crate::provider::Provider;
use crate::rbac::Permission;
use crate::state::AppState;
use crate::tokens::{self, AccessToken};

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod bans;
pub mod mfa;
pub mod rbac;
pub mod sso;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::post().to(auth::login_post))
        .route("/api/v1/auth/refresh", web::post().to(auth::refresh_post))
        .route("/api/v1/auth/revoke", web::post().to(auth::revoke_post))
        .route("/api/v1/auth/logout", web::post().to(auth::logout_post))
        .route("/api/v1/auth/me", web::get().to(auth::me_get))
        .route(
            "/api/v1/auth/mfa/verify",
            web::post().to(auth::mfa_verify_post),
        )
        .route("/api/v1/auth/register", web::post().to(auth::register_post))
        .route(
            "/api/v1/auth/verify-email",
            web::post().to(auth::verify_email_post),
        )
        .route(
            "/api/v1/auth/reset-password",
            web::post().to(auth::reset_password_post),
        )
        .route(
            "/api/v1/auth/change-password",
            web::post().to(auth::change_password_post),
        )
        .route("/api/v1/mfa/setup", web::post().to(mfa::setup_post))
        .route("/api/v1/mfa/verify", web::post().to(mfa::verify_post))
        .route("/api/v1/mfa/enable", web::post().to(mfa::enable_post))
        .route("/api/v1/mfa/disable", web::post().to(mfa::disable_post))
        .route(
            "/api/v1/mfa/backup-codes",
            web::get().to(mfa::backup_codes_get),
        )
        .route(
            "/api/v1/mfa/backup-codes",
            web::post().to(mfa::backup_codes_post),
        )
        .route("/api/v1/rbac/roles", web::get().to(rbac::roles_get))
        .route("/api/v1/rbac/roles", web::post().to(rbac::roles_post))
        .route(
            "/api/v1/rbac/permissions",
            web::get().to(rbac::permissions_get),
        )
        .route("/api/v1/rbac/assign", web::post().to(rbac::assign_post))
        .route("/api/v1/rbac/templates", web::get().to(rbac::templates_get))
        .route(
            "/api/v1/rbac/roles/import",
            web::post().to(rbac::import_post),
        )
        .route("/api/v1/apikeys", web::post().to(api_keys::create_post))
        .route("/api/v1/apikeys", web::get().to(api_keys::list_get))
        .route(
            "/api/v1/apikeys/verify",
            web::post().to(api_keys::verify_post),
        )
        .route(
            "/api/v1/apikeys/{id}/rotate",
            web::post().to(api_keys::rotate_post),
        )
        .route(
            "/api/v1/apikeys/{id}",
            web::delete().to(api_keys::revoke_delete),
        )
        .route("/api/v1/admin/clients", web::get().to(admin::clients_get))
        .route("/api/v1/admin/clients", web::post().to(admin::clients_post))
        .route(
            "/api/v1/admin/clients/{id}",
            web::get().to(admin::client_get),
        )
        .route(
            "/api/v1/admin/clients/{id}",
            web::delete().to(admin::client_delete),
        )
        .route("/api/v1/admin/users", web::get().to(admin::users_get))
        .route("/api/v1/admin/users", web::post().to(admin::users_post))
        .route("/api/v1/admin/users/{id}", web::get().to(admin::user_get))
        .route(
            "/api/v1/admin/users/{id}",
            web::patch().to(admin::user_patch),
        )
        .route(
            "/api/v1/admin/users/{id}",
            web::delete().to(admin::user_delete),
        )
        .route(
            "/api/v1/admin/users/{id}/unlock",
            web::post().to(admin::user_unlock_post),
        )
        .route("/api/v1/admin/keys", web::get().to(admin::keys_get))
        .route(
            "/api/v1/admin/keys/rotate",
            web::post().to(admin::keys_rotate_post),
        )
        .route("/api/v1/admin/settings", web::get().to(admin::settings_get))
        .route(
            "/api/v1/admin/settings",
            web::patch().to(admin::settings_patch),
        )
        .route("/api/v1/admin/audit", web::get().to(admin::audit_get))
        .route(
            "/api/v1/auth/sso/configure",
            web::post().to(sso::configure_post),
        )
        .route(
            "/api/v1/auth/sso/login",
            web::get().to(crate::http::federation::sso_login_get),
        )
        .route("/api/v1/admin/sso", web::get().to(sso::list_get))
        .route("/api/v1/admin/sso", web::post().to(sso::create_post))
        .route("/api/v1/admin/sso/{id}", web::get().to(sso::get))
        .route("/api/v1/admin/sso/{id}", web::delete().to(sso::delete))
        .route(
            "/api/v1/admin/sso/{id}/test",
            web::post().to(sso::test_post),
        );
}

/// Platform routes, at the root only (not under a tenant).
pub fn platform_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/admin/tenants", web::post().to(admin::tenants_post))
        .route("/api/v1/admin/tenants", web::get().to(admin::tenants_get))
        .route("/api/v1/admin/bans", web::get().to(bans::bans_get))
        .route("/api/v1/admin/bans", web::post().to(bans::bans_post))
        .route(
            "/api/v1/admin/bans/{ip:.+}",
            web::delete().to(bans::ban_delete),
        );
}

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
        &crate::http::extractors::audit_context(req),
    );
}

/// `{"data": …}` with `Cache-Control: no-store`.
pub fn data(status: actix_web::http::StatusCode, value: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "data": value }))
}

/// A JSON body of type `T`, bounded by `max_body_bytes`; anything unparsable is a
/// `VALIDATION_FAILED` that names the problem. A body must say it is JSON
/// (`application/json` or a `+json` type): a `text/plain` or form body is refused before
/// anything reads it, so a client bug never looks like a wrong password, and a cross-site
/// "simple" request (no CORS preflight) cannot carry a JSON command.
pub struct Json<T>(pub T);

/// `Some(problem)` when a non-empty body is not declared as JSON.
fn json_content_type_problem(req: &HttpRequest) -> Option<String> {
    let Some(raw) = req.headers().get(header::CONTENT_TYPE) else {
        return Some("the request has a body but no Content-Type: send application/json".into());
    };
    let mime = raw
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = mime == "application/json"
        || mime
            .strip_prefix("application/")
            .is_some_and(|s| s.ends_with("+json"));
    (!json).then(|| {
        let shown: String = mime.chars().take(64).collect();
        format!("Content-Type must be application/json, not {shown:?}")
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        let content_type_problem = json_content_type_problem(req);
        Box::pin(async move {
            let body = bytes.await.map_err(|_| {
                ApiError::ValidationFailed("the request body is too large or unreadable".into())
            })?;
            if let (false, Some(problem)) = (body.is_empty(), content_type_problem) {
                return Err(ApiError::ValidationFailed(problem).into());
            }
            let value = serde_json::from_slice::<T>(if body.is_empty() { b"{}" } else { &body })
                .map_err(|e| ApiError::ValidationFailed(format!("invalid JSON body: {e}")))?;
            Ok(Json(value))
        })
    }
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
    /// `/auth/mfa/verify` (seed 000).
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
        if !tenant
            .settings
            .mfa_step_up_permissions
            .iter()
            .any(|p| p == permission)
        {
            return Ok(());
        }
        let recent = token.claims.get("mfa_verified").and_then(Value::as_bool) == Some(true)
            && token
                .claims
                .get("auth_time")
                .and_then(Value::as_i64)
                .is_some_and(|t| crate::storage::now() - t <= crate::first_party::MFA_FRESHNESS);
        if recent || !crate::mfa::is_enabled(&state.pool, tenant, &token.sub).await? {
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
            let token = token.ok_or_else(unauthorized)?;
            let at = tokens::validate_access_token(state.tokens(), &provider, &token)
                .await
                .map_err(ApiError::from)?;
            // RFC 9068 §4: only tokens issued for this API are accepted here; a token a relying
            // party received for itself is not a credential for Portcullis.
            if at.client_id != crate::clients::first_party_client_id(&provider.tenant) {
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
