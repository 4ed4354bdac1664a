//! The OpenAPI 3.1 document of the first-party JSON API, the admin API and dynamic client
//! registration, generated from the handlers' annotations (utoipa) — never written by hand.
//! Served pre-serialised at `/openapi.json`; `portcullis openapi` prints it, and the suite
//! checks that the committed `openapi.json` is current.

use actix_web::{http::header, HttpResponse};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::api;
use crate::http::schema::{
    DataEnvelope, ErrorBody, ErrorEnvelope, OAuthErrorBody, PageEnvelope, TokenData, TokenEnvelope,
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

#[derive(OpenApi)]
#[openapi(
    info(title = "Portcullis API", description = "First-party JSON API, admin API and dynamic client registration of Portcullis. OAuth 2.0 / OpenID Connect endpoints are described by each tenant's discovery document."),
    paths(
        api::auth::login_post, api::auth::refresh_post, api::auth::revoke_post, api::auth::logout_post, api::auth::me_get, api::auth::mfa_verify_post, api::auth::register_post, api::auth::verify_email_post, api::auth::reset_password_post, api::auth::change_password_post,
        api::mfa::setup_post, api::mfa::verify_post, api::mfa::enable_post, api::mfa::disable_post, api::mfa::backup_codes_get, api::mfa::backup_codes_post,
        api::rbac::roles_get, api::rbac::roles_post, api::rbac::permissions_get, api::rbac::assign_post, api::rbac::templates_get, api::rbac::import_post,
        api::api_keys::create_post, api::api_keys::list_get, api::api_keys::rotate_post, api::api_keys::revoke_delete, api::api_keys::verify_post,
        api::admin::clients::clients_get, api::admin::clients::clients_post, api::admin::clients::client_get, api::admin::clients::client_delete,
        api::admin::users::users_get, api::admin::users::users_post, api::admin::users::user_get, api::admin::users::user_patch, api::admin::users::user_delete, api::admin::users::user_unlock_post,
        api::admin::tenant::keys_get, api::admin::tenant::keys_rotate_post, api::admin::tenant::settings_get, api::admin::tenant::settings_patch, api::admin::tenant::audit_get,
        api::admin::tenants::tenants_post, api::admin::tenants::tenants_get,
        api::bans::bans_get, api::bans::bans_post, api::bans::ban_delete,
        api::sso::configure_post, api::sso::list_get, api::sso::create_post, api::sso::get, api::sso::delete, api::sso::test_post,
        crate::http::register::register_post, crate::http::register::registration_get, crate::http::register::registration_put, crate::http::register::registration_delete,
    ),
    components(schemas(TokenData, TokenEnvelope, DataEnvelope, PageEnvelope, ErrorBody, ErrorEnvelope, OAuthErrorBody)),
    modifiers(&Security),
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
    doc.to_pretty_json().unwrap_or_else(|_| "{}".into())
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
