//! `/api/v1/rbac`: roles, permissions, role assignment.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, AuditEvent};
use crate::error::ApiError;
use crate::http::api::common::{data, Principal};
use crate::http::extractors::{audit_context, Json};
#[allow(unused_imports)] // referenced by the #[utoipa::path] annotations
use crate::http::schema::{
    DataEnvelope, ErrorEnvelope, ListEnvelope, NamesEnvelope, PageEnvelope, TenantPath,
    TokenEnvelope,
};
use crate::rbac;
use crate::state::AppState;
use crate::storage::{parse_list, roles::RoleRow};

fn role_json(r: &RoleRow) -> serde_json::Value {
    json!({
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "permissions": parse_list(&r.permissions),
        "inherits": parse_list(&r.inherits),
        "client_id": if r.client_id.is_empty() { None } else { Some(&r.client_id) },
    })
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/rbac/roles",
    tag = "rbac",
    params(TenantPath),
    responses(
        (status = 200, description = "Roles (roles:read)", body = ListEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/rbac/roles` (roles:read)
pub async fn roles_get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("roles:read")?;
    let roles = rbac::list_roles(&state.pool, &principal.provider.tenant).await?;
    Ok(data(
        StatusCode::OK,
        json!(roles.iter().map(role_json).collect::<Vec<_>>()),
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct RoleBody {
    name: String,
    description: String,
    permissions: Vec<String>,
    inherits: Vec<String>,
    /// An app role, scoped to this client.
    client_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/rbac/roles",
    tag = "rbac",
    params(TenantPath),
    request_body = RoleBody,
    responses(
        (status = 201, description = "Created (roles:create)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 409, description = "CONFLICT", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/rbac/roles` (roles:create)
pub async fn roles_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<RoleBody>,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "roles:create").await?;
    let new = rbac::NewRole {
        name: body.name,
        description: body.description,
        permissions: body.permissions,
        inherits: body.inherits,
        client_id: body.client_id,
    };
    let role = rbac::create_role(&state.pool, &principal.provider.tenant, new).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("role.created", Some(&principal.provider.tenant))
            .actor(Some(&principal.actor()))
            .detail("role", role.name.as_str()),
        &audit_context(&req),
    );
    Ok(data(StatusCode::CREATED, role_json(&role)))
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/rbac/permissions",
    tag = "rbac",
    params(TenantPath),
    responses(
        (status = 200, description = "Permissions (roles:read)", body = NamesEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/rbac/permissions` (roles:read) — the permissions Portcullis checks and those
/// the tenant's roles use.
pub async fn permissions_get(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require("roles:read")?;
    let all = rbac::permission_catalogue(&state.pool, &principal.provider.tenant).await?;
    Ok(data(StatusCode::OK, json!(all)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AssignBody {
    user_id: Option<String>,
    role: Option<String>,
    /// For an app role: its client.
    client_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/rbac/assign",
    tag = "rbac",
    params(TenantPath),
    request_body = AssignBody,
    responses(
        (status = 200, description = "Assigned (users:roles:assign)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/rbac/assign` `{"user_id","role"}` (users:roles:assign). Nobody grants a
/// role carrying permissions they do not hold themselves.
pub async fn assign_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<AssignBody>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, role) = assignment(&state, &principal, body).await?;
    let tenant = &principal.provider.tenant;
    rbac::assign_role(&state.pool, tenant, &user_id, &role).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("role.assigned", Some(tenant))
            .actor(Some(&principal.actor()))
            .detail("user_id", user_id.as_str())
            .detail("role", role.name.as_str()),
        &audit_context(&req),
    );
    Ok(data(
        StatusCode::OK,
        json!({ "user_id": user_id, "role": role.name }),
    ))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/rbac/unassign",
    tag = "rbac",
    params(TenantPath),
    request_body = AssignBody,
    responses(
        (status = 200, description = "The role is no longer assigned to the user (users:roles:assign); `removed` is false when it was not", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/rbac/unassign` `{"user_id","role"}` (users:roles:assign): takes a directly
/// assigned role back. Like granting it, only by someone holding its permissions.
pub async fn unassign_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<AssignBody>,
) -> Result<HttpResponse, ApiError> {
    let (user_id, role) = assignment(&state, &principal, body).await?;
    let tenant = &principal.provider.tenant;
    let removed = rbac::unassign_role(&state.pool, tenant, &user_id, &role).await?;
    if removed {
        audit::record(
            &state.audit,
            AuditEvent::new("role.unassigned", Some(tenant))
                .actor(Some(&principal.actor()))
                .detail("user_id", user_id.as_str())
                .detail("role", role.name.as_str()),
            &audit_context(&req),
        );
    }
    Ok(data(
        StatusCode::OK,
        json!({ "user_id": user_id, "role": role.name, "removed": removed }),
    ))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(default)]
pub struct RoleChangeBody {
    description: String,
    permissions: Vec<String>,
    inherits: Vec<String>,
}

#[utoipa::path(
    put,
    path = "/t/{tenant}/api/v1/rbac/roles/{id}",
    tag = "rbac",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    request_body = RoleChangeBody,
    responses(
        (status = 200, description = "The role with its new description, permissions and inherited roles (roles:update); name and client stay", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS (also when the role would carry a permission the caller does not hold)", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED (the built-in admin role, an unknown or circular inherited role, a malformed permission)", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `PUT /api/v1/rbac/roles/{id}` (roles:update)
pub async fn role_put(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<RoleChangeBody>,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "roles:update").await?;
    let tenant = &principal.provider.tenant;
    let id = crate::http::api::common::path_id(&req);
    rbac::find_role_by_id(&state.pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let change = rbac::RoleChange {
        description: body.description,
        permissions: body.permissions,
        inherits: body.inherits,
    };
    let role = rbac::update_role(&state.pool, tenant, id, change, &principal.permissions()).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("role.updated", Some(tenant))
            .actor(Some(&principal.actor()))
            .detail("role", role.name.as_str()),
        &audit_context(&req),
    );
    Ok(data(StatusCode::OK, role_json(&role)))
}

#[utoipa::path(
    delete,
    path = "/t/{tenant}/api/v1/rbac/roles/{id}",
    tag = "rbac",
    params(TenantPath, ("id" = String, Path, description = "Identifier")),
    responses(
        (status = 200, description = "Deleted with its assignments (roles:delete)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED (the built-in admin role, a role another role inherits)", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `DELETE /api/v1/rbac/roles/{id}` (roles:delete)
pub async fn role_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "roles:delete").await?;
    let tenant = &principal.provider.tenant;
    let id = crate::http::api::common::path_id(&req);
    rbac::find_role_by_id(&state.pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let role = rbac::delete_role(&state.pool, tenant, id).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("role.deleted", Some(tenant))
            .actor(Some(&principal.actor()))
            .detail("role", role.name.as_str()),
        &audit_context(&req),
    );
    Ok(data(StatusCode::OK, json!({ "deleted": true })))
}

/// The user and role of an assignment request, when the caller may grant (or take back)
/// that role: `users:roles:assign` (with the tenant's step-up) and every permission the
/// role carries.
async fn assignment(
    state: &AppState,
    principal: &Principal,
    body: AssignBody,
) -> Result<(String, RoleRow), ApiError> {
    principal
        .require_privileged(state, "users:roles:assign")
        .await?;
    let (Some(user_id), Some(role_name)) = (body.user_id, body.role) else {
        return Err(ApiError::ValidationFailed(
            "user_id and role are required".into(),
        ));
    };
    let tenant = &principal.provider.tenant;
    let role = rbac::find_scoped_role(&state.pool, tenant, body.client_id.as_deref(), &role_name)
        .await?
        .ok_or_else(|| ApiError::ValidationFailed(format!("role {role_name:?} does not exist")))?;
    rbac::check_grantable(&state.pool, tenant, &principal.permissions(), &role).await?;
    Ok((user_id, role))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ImportBody {
    template: Option<String>,
}

#[utoipa::path(
    get,
    path = "/t/{tenant}/api/v1/rbac/templates",
    tag = "rbac",
    params(TenantPath),
    responses(
        (status = 200, description = "Role templates (roles:read)", body = ListEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `GET /api/v1/rbac/templates` (roles:read) — the role templates a tenant can import.
pub async fn templates_get(principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require("roles:read")?;
    let list: Vec<serde_json::Value> = rbac::TEMPLATES
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "description": t.description,
                "roles": t.roles.iter().map(|(n, d, p, i)| json!({"name": n, "description": d, "permissions": p, "inherits": i})).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(data(StatusCode::OK, json!(list)))
}

#[utoipa::path(
    post,
    path = "/t/{tenant}/api/v1/rbac/roles/import",
    tag = "rbac",
    params(TenantPath),
    request_body = ImportBody,
    responses(
        (status = 200, description = "Roles created (roles:create)", body = DataEnvelope),
        (status = 401, description = "Missing or invalid credentials (UNAUTHORIZED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_CREDENTIALS, REFRESH_TOKEN_REUSE)", body = ErrorEnvelope),
        (status = 403, description = "INSUFFICIENT_PERMISSIONS", body = ErrorEnvelope),
        (status = 422, description = "VALIDATION_FAILED", body = ErrorEnvelope)
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
/// `POST /api/v1/rbac/roles/import` `{"template"}` (roles:create) — creates the template's
/// roles that do not exist yet.
pub async fn import_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    principal: Principal,
    Json(body): Json<ImportBody>,
) -> Result<HttpResponse, ApiError> {
    principal.require_privileged(&state, "roles:create").await?;
    let template = body.template.unwrap_or_default();
    let created = rbac::import_template(&state.pool, &principal.provider.tenant, &template).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("role.template_imported", Some(&principal.provider.tenant))
            .actor(Some(&principal.actor()))
            .detail("template", template.as_str()),
        &audit_context(&req),
    );
    Ok(data(
        StatusCode::OK,
        json!({ "template": template, "created": created }),
    ))
}
