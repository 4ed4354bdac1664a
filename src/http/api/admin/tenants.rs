//! The platform admin API (`/api/v1/admin/tenants`, at the root only): create and list
//! tenants, with a platform API key.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, AuditEvent};
use crate::error::ApiError;
use crate::http::api::common::{data, platform_key};
use crate::http::extractors::{audit_context, Json};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{
    DataEnvelope, ErrorEnvelope, ListEnvelope, PageEnvelope, TenantPath, TokenEnvelope,
};
use crate::state::AppState;
use crate::tenants::{self, TenantSlug};

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
        (status = 200, description = "Tenants (platform key with tenants:read)", body = ListEnvelope),
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
