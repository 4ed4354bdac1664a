//! The OpenAPI 3.1 document of the first-party JSON API, the admin API and dynamic client
//! registration, generated from the handlers' annotations (utoipa) — never written by hand.
//! Served pre-serialised at `/openapi.json`; `portcullis openapi` prints it, and the suite
//! checks that the committed `openapi.json` is current.

use actix_web::{http::header, HttpResponse};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::http::api;
use crate::http::schema::{
    DataEnvelope, ErrorBody, ErrorEnvelope, ListEnvelope, NamesEnvelope, OAuthErrorBody,
    PageEnvelope, TokenData, TokenEnvelope,
};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or ak_… API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

/// Responses the server gives for a whole class of operations, added wherever an annotation
/// does not name them, so the document says what the server does (schemathesis holds us to
/// it): a JSON body may be refused `422 VALIDATION_FAILED` (RFC 7591 endpoints: `400`); a
/// credentialed operation `401`; an operation under `/t/{tenant}` `404` for an unknown
/// tenant; every operation `403` (banned address) and `429` from the protection layer.
struct Conformance;

/// The stateful links of the document, create → read/update/delete: `(created by, status,
/// link name, target, path parameter, where the created resource's id is in the response)`.
/// Written into the JSON by [`document`]: utoipa 5.5 serialises a Link's `operationId` as
/// `operation_id`, which no OpenAPI tool reads.
const LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "clients_post",
        "201",
        "GetClient",
        "client_get",
        "id",
        "$response.body#/data/id",
    ),
    (
        "clients_post",
        "201",
        "UpdateClient",
        "client_put",
        "id",
        "$response.body#/data/id",
    ),
    (
        "clients_post",
        "201",
        "RotateClientSecret",
        "client_rotate_secret_post",
        "id",
        "$response.body#/data/id",
    ),
    (
        "clients_post",
        "201",
        "DeleteClient",
        "client_delete",
        "id",
        "$response.body#/data/id",
    ),
    (
        "users_post",
        "201",
        "GetUser",
        "user_get",
        "id",
        "$response.body#/data/id",
    ),
    (
        "users_post",
        "201",
        "PatchUser",
        "user_patch",
        "id",
        "$response.body#/data/id",
    ),
    (
        "users_post",
        "201",
        "UnlockUser",
        "user_unlock_post",
        "id",
        "$response.body#/data/id",
    ),
    (
        "users_post",
        "201",
        "DisableUser",
        "user_disable_post",
        "id",
        "$response.body#/data/id",
    ),
    (
        "users_post",
        "201",
        "EnableUser",
        "user_enable_post",
        "id",
        "$response.body#/data/id",
    ),
    (
        "users_post",
        "201",
        "ResetUserMfa",
        "user_reset_mfa_post",
        "id",
        "$response.body#/data/id",
    ),
    (
        "roles_post",
        "201",
        "UpdateRole",
        "role_put",
        "id",
        "$response.body#/data/id",
    ),
    (
        "roles_post",
        "201",
        "DeleteRole",
        "role_delete",
        "id",
        "$response.body#/data/id",
    ),
    (
        "users_post",
        "201",
        "DeleteUser",
        "user_delete",
        "id",
        "$response.body#/data/id",
    ),
    (
        "sso_create",
        "201",
        "GetConnection",
        "sso_get",
        "id",
        "$response.body#/data/id",
    ),
    (
        "sso_create",
        "201",
        "TestConnection",
        "sso_test",
        "id",
        "$response.body#/data/id",
    ),
    (
        "sso_create",
        "201",
        "EnableConnection",
        "sso_enable",
        "id",
        "$response.body#/data/id",
    ),
    (
        "sso_create",
        "201",
        "DisableConnection",
        "sso_disable",
        "id",
        "$response.body#/data/id",
    ),
    (
        "sso_create",
        "201",
        "DeleteConnection",
        "sso_delete",
        "id",
        "$response.body#/data/id",
    ),
    (
        "sso_configure",
        "201",
        "GetConnection",
        "sso_get",
        "id",
        "$response.body#/data/id",
    ),
    (
        "create_post",
        "201",
        "RotateKey",
        "rotate_post",
        "id",
        "$response.body#/data/id",
    ),
    (
        "create_post",
        "201",
        "RevokeKey",
        "revoke_delete",
        "id",
        "$response.body#/data/id",
    ),
    (
        "bans_post",
        "201",
        "DeleteBan",
        "ban_delete",
        "ip",
        "$response.body#/data/ip",
    ),
    (
        "register_post",
        "201",
        "GetRegistration",
        "registration_get",
        "client_id",
        "$response.body#/client_id",
    ),
    (
        "register_post",
        "201",
        "PutRegistration",
        "registration_put",
        "client_id",
        "$response.body#/client_id",
    ),
    (
        "register_post",
        "201",
        "DeleteRegistration",
        "registration_delete",
        "client_id",
        "$response.body#/client_id",
    ),
];

fn error_response(description: &str, oauth: bool) -> RefOr<utoipa::openapi::Response> {
    let schema = if oauth {
        "OAuthErrorBody"
    } else {
        "ErrorEnvelope"
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(schema))),
        )
        .into()
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

impl Modify for Conformance {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let oauth = path.contains("/register");
            for op in operations(item) {
                let mut add = |status: &str, description: &str| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(description, oauth));
                };
                if op.request_body.is_some() {
                    add(
                        if oauth { "400" } else { "422" },
                        if oauth {
                            "invalid_client_metadata"
                        } else {
                            "VALIDATION_FAILED: the body is not JSON, not declared as JSON, too large, or not of this shape"
                        },
                    );
                }
                if op.security.is_some() {
                    add("401", "Missing or invalid credentials");
                }
                if path.starts_with("/t/{tenant}") {
                    add("404", "NOT_FOUND: no such tenant");
                }
                add("403", "IP_BANNED: requests from this address are blocked");
                add(
                    "429",
                    "RATE_LIMITED, with retry_after, limit and window (and Retry-After)",
                );
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Portcullis API", description = "First-party JSON API, admin API and dynamic client registration of Portcullis. OAuth 2.0 / OpenID Connect endpoints are described by each tenant's discovery document."),
    paths(
        api::auth::login_post, api::auth::refresh_post, api::auth::revoke_post, api::auth::logout_post, api::auth::me_get, api::auth::mfa_verify_post, api::auth::passkey_options_post, api::auth::passkey_verify_post, api::auth::register_post, api::auth::verify_email_post, api::auth::reset_password_post, api::auth::change_password_post,
        api::mfa::setup_post, api::mfa::verify_post, api::mfa::enable_post, api::mfa::disable_post, api::mfa::backup_codes_get, api::mfa::backup_codes_post,
        api::rbac::roles_get, api::rbac::roles_post, api::rbac::permissions_get, api::rbac::assign_post, api::rbac::unassign_post, api::rbac::role_put, api::rbac::role_delete, api::rbac::templates_get, api::rbac::import_post,
        api::api_keys::create_post, api::api_keys::list_get, api::api_keys::rotate_post, api::api_keys::revoke_delete, api::api_keys::verify_post,
        api::admin::clients::clients_get, api::admin::clients::clients_post, api::admin::clients::client_get, api::admin::clients::client_put, api::admin::clients::client_rotate_secret_post, api::admin::clients::client_delete,
        api::admin::users::users_get, api::admin::users::users_post, api::admin::users::user_get, api::admin::users::user_patch, api::admin::users::user_delete, api::admin::users::user_unlock_post, api::admin::users::user_disable_post, api::admin::users::user_enable_post, api::admin::users::user_reset_mfa_post,
        api::admin::tenant::keys_get, api::admin::tenant::keys_rotate_post, api::admin::tenant::settings_get, api::admin::tenant::settings_patch, api::admin::tenant::audit_get,
        api::admin::tenants::tenants_post, api::admin::tenants::tenants_get,
        api::bans::bans_get, api::bans::bans_post, api::bans::ban_delete,
        api::sso::configure_post, api::sso::list_get, api::sso::create_post, api::sso::get, api::sso::delete, api::sso::test_post, api::sso::enable_post, api::sso::disable_post,
        crate::http::register::register_post, crate::http::register::registration_get, crate::http::register::registration_put, crate::http::register::registration_delete,
    ),
    components(schemas(TokenData, TokenEnvelope, DataEnvelope, ListEnvelope, NamesEnvelope, PageEnvelope, ErrorBody, ErrorEnvelope, OAuthErrorBody)),
    modifiers(&Security, &Conformance),
    tags(
        (name = "auth", description = "Sign-in, refresh, revocation, sign-out (first-party)"),
        (name = "mfa", description = "TOTP second factor (self-service)"),
        (name = "rbac", description = "Roles and permissions"),
        (name = "apikeys", description = "API keys"),
        (name = "admin", description = "Tenant administration"),
        (name = "sso", description = "Federation: SAML 2.0 and OIDC single sign-on, Google"),
        (name = "platform", description = "Tenant management and banned addresses (platform keys)"),
        (name = "registration", description = "Dynamic client registration (RFC 7591, RFC 7592)"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `openapi.json` in the repository holds).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    add_links(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into())
}

/// Adds [`LINKS`] to the responses of the operations that create.
fn add_links(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        // A tenant's operation links to one of the same tenant.
        let tenant = path.starts_with("/t/{tenant}");
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            link_operation(op, tenant);
        }
    }
}

/// Adds the [`LINKS`] that start at `op` to its responses.
fn link_operation(op: &mut serde_json::Value, tenant: bool) {
    let id = op
        .get("operationId")
        .and_then(|i| i.as_str())
        .unwrap_or("")
        .to_string();
    for (source, status, name, target, param, value) in LINKS {
        let Some(resp) = (id == *source)
            .then(|| op.pointer_mut(&format!("/responses/{status}")))
            .flatten()
        else {
            continue;
        };
        let mut parameters = serde_json::json!({ *param: value });
        if tenant {
            parameters["tenant"] = "$request.path.tenant".into();
        }
        resp["links"][*name] = serde_json::json!({
            "operationId": target,
            "parameters": parameters,
        });
    }
}

/// The document as committed: CI and the suite check that it is exactly what [`document`]
/// generates, so serving it costs the server neither start-up time nor memory.
pub const COMMITTED: &str = include_str!("../../openapi.json");

/// `GET /openapi.json`
pub async fn openapi_get() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(COMMITTED)
}
