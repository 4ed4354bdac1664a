//! Liveness, readiness and metrics.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::state::AppState;

/// `GET /health` — the process answers.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /metrics` — Prometheus (OpenMetrics text). With `metrics_token` configured, only for
/// `Authorization: Bearer <metrics_token>`.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(expected) = &state.config.metrics_token {
        let given = crate::http::extractors::bearer_token(&req).unwrap_or_default();
        if !crate::crypto::constant_time_eq(
            &crate::crypto::sha256(given.as_bytes()),
            &crate::crypto::sha256(expected.expose_secret().as_bytes()),
        ) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
                .finish();
        }
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

/// `GET /ready` — the database answers too.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.pool.ping().await {
        Ok(()) => {
            HttpResponse::Ok().json(json!({ "status": "ok", "database": state.pool.backend() }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "unavailable", "database": state.pool.backend() }))
        }
    }
}
