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

use crate::error::ApiError;
use crate::http::extractors::{bearer_token, TenantProvider};
use crate::provider::Provider;
use crate::state::AppState;
use crate::tokens::{self, AccessToken};

pub mod auth;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/auth/login", web::post().to(auth::login_post))
        .route("/api/v1/auth/refresh", web::post().to(auth::refresh_post))
        .route("/api/v1/auth/revoke", web::post().to(auth::revoke_post))
        .route("/api/v1/auth/logout", web::post().to(auth::logout_post))
        .route("/api/v1/auth/me", web::get().to(auth::me_get));
}

/// `{"data": …}` with `Cache-Control: no-store`.
pub fn data(status: actix_web::http::StatusCode, value: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "data": value }))
}

/// A JSON body of type `T`, bounded by `max_body_bytes`; anything unparsable is a
/// `VALIDATION_FAILED` that names the problem.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = bytes.await.map_err(|_| {
                ApiError::ValidationFailed("the request body is too large or unreadable".into())
            })?;
            let value = serde_json::from_slice::<T>(if body.is_empty() { b"{}" } else { &body })
                .map_err(|e| ApiError::ValidationFailed(format!("invalid JSON body: {e}")))?;
            Ok(Json(value))
        })
    }
}

/// A caller authenticated by a Portcullis access token of this tenant.
pub struct Principal {
    pub provider: Arc<Provider>,
    pub token: AccessToken,
}

impl Principal {
    pub fn user_id(&self) -> &str {
        &self.token.sub
    }

    pub fn permissions(&self) -> Vec<String> {
        string_list(self.token.claims.get("permissions"))
    }

    pub fn roles(&self) -> Vec<String> {
        string_list(self.token.claims.get("roles"))
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

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        let tenant = TenantProvider::from_request(req, payload);
        Box::pin(async move {
            let TenantProvider(provider) = tenant.await?;
            let state = state.ok_or(ApiError::Internal)?;
            let token = token.ok_or_else(|| {
                ApiError::Unauthorized("Missing or invalid authentication token".into())
            })?;
            let at = tokens::validate_access_token(&state, &provider, &token)
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
                token: at,
            })
        })
    }
}
