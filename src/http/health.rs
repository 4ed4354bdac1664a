//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

/// `GET /health` — the process answers.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
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
