//! Banned client addresses (platform API, at the root): list, ban, lift. Bans apply to
//! every tenant of the installation, so they are managed with platform keys
//! (`bans:read`, `bans:create`, `bans:delete`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::http::api::common::{data, platform_key};
use crate::http::extractors::{audit_context, Json};
use crate::http::schema::{DataEnvelope, ErrorEnvelope, ListEnvelope};
use crate::protection::{self, BanError, BanRequest};
use crate::state::AppState;

impl From<BanError> for ApiError {
    fn from(e: BanError) -> Self {
        match e {
            BanError::Invalid(m) => ApiError::ValidationFailed(m),
            BanError::NotFound => ApiError::NotFound,
            BanError::Unexpected(e) => ApiError::unexpected(&e),
        }
    }
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct BanBody {
    /// An IP address (IPv6 addresses are banned as their /64) or a CIDR range.
    #[schema(example = "203.0.113.7")]
    ip: String,
    reason: Option<String>,
    /// Lifted automatically after this many seconds; permanent when absent.
    expires_in_secs: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/bans",
    tag = "platform",
    responses(
        (status = 200, description = "Live bans (platform key with bans:read): ip, reason, created_at, expires_at, created_by", body = ListEnvelope),
        (status = 401, description = "UNAUTHORIZED", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/admin/bans` (platform key with bans:read)
pub async fn bans_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    platform_key(&state, &req, "bans:read").await?;
    let bans = protection::list_bans(&state.pool).await?;
    Ok(data(StatusCode::OK, json!(bans)))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/bans",
    tag = "platform",
    request_body = BanBody,
    responses(
        (status = 201, description = "Banned (platform key with bans:create)", body = DataEnvelope),
        (status = 401, description = "UNAUTHORIZED", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/admin/bans` (platform key with bans:create)
pub async fn bans_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    Json(b): Json<BanBody>,
) -> Result<HttpResponse, ApiError> {
    let k = platform_key(&state, &req, "bans:create").await?;
    let ban = state
        .protection
        .ban(
            &state.pool,
            &state.audit,
            BanRequest {
                target: &b.ip,
                reason: b.reason.as_deref(),
                expires_in_secs: b.expires_in_secs,
            },
            &format!("apikey:{}", k.id),
            &audit_context(&req),
        )
        .await?;
    Ok(data(StatusCode::CREATED, json!(ban)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/bans/{ip}",
    tag = "platform",
    params(("ip" = String, Path, description = "The banned address or CIDR range, as listed")),
    responses(
        (status = 204, description = "Lifted, with the address's lockout (platform key with bans:delete)"),
        (status = 401, description = "UNAUTHORIZED", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED: not an IP address or CIDR range", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `DELETE /api/v1/admin/bans/{ip}` (platform key with bans:delete)
pub async fn ban_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let k = platform_key(&state, &req, "bans:delete").await?;
    let ip = req.match_info().get("ip").unwrap_or("");
    state
        .protection
        .unban(
            &state.pool,
            &state.audit,
            ip,
            &format!("apikey:{}", k.id),
            &audit_context(&req),
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
