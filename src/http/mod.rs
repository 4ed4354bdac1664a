//! Transport: the route table. Handlers parse requests, call one domain function and map
//! the result; no SQL, no crypto, no business branching here.

use actix_web::web;

pub mod api;
pub mod console;
pub mod demo;
pub mod extractors;
pub mod federation;
pub mod health;
pub mod middleware;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod register;
pub mod schema;

/// Routes of one tenant, mounted under `/t/{tenant}` and, for the default tenant, at the root.
pub fn tenant_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(oidc::discovery_get),
    )
    .route(
        "/.well-known/oauth-authorization-server",
        web::get().to(oidc::discovery_get),
    )
    .route("/jwks", web::get().to(oidc::jwks_get))
    .route("/authorize", web::get().to(pages::flow::authorize))
    .route("/authorize", web::post().to(pages::flow::authorize))
    .route("/login", web::get().to(pages::sign_in::sign_in_get))
    .route("/login", web::post().to(pages::sign_in::sign_in_post))
    .route(
        "/login/passkey/options",
        web::post().to(pages::sign_in::passkey_options_post),
    )
    .route(
        "/account/passkeys/options",
        web::post().to(pages::account::passkey_options_post),
    )
    .route(
        "/account/passkeys",
        web::post().to(pages::account::passkey_add_post),
    )
    .route(
        "/account/passkeys/remove",
        web::post().to(pages::account::passkey_remove_post),
    )
    .route(
        "/verify-email",
        web::get().to(pages::email::verify_email_get),
    )
    .route(
        "/reset-password",
        web::get().to(pages::email::reset_password_get),
    )
    .route(
        "/reset-password",
        web::post().to(pages::email::reset_password_post),
    )
    .route("/mfa/enroll", web::get().to(pages::mfa::mfa_enroll_get))
    .route("/mfa/enroll", web::post().to(pages::mfa::mfa_enroll_post))
    .route(
        "/mfa/passkey/options",
        web::post().to(pages::mfa::mfa_passkey_options_post),
    )
    .route(
        "/mfa/enroll/passkey/options",
        web::post().to(pages::mfa::mfa_enroll_passkey_options_post),
    )
    .route("/continue", web::get().to(pages::flow::continue_get))
    .route("/account", web::get().to(pages::account::account_get))
    .route(
        "/account/password",
        web::post().to(pages::account::account_password_post),
    )
    .route("/account/link", web::get().to(federation::account_link_get))
    .route(
        "/account/linked/add",
        web::post().to(federation::account_linked_add_post),
    )
    .route(
        "/account/linked/remove",
        web::post().to(federation::account_linked_remove_post),
    )
    .route(
        "/account/mfa",
        web::get().to(pages::account::account_mfa_get),
    )
    .route(
        "/account/mfa",
        web::post().to(pages::account::account_mfa_post),
    )
    .route(
        "/account/mfa/disable",
        web::post().to(pages::account::account_mfa_disable_post),
    )
    .route(
        "/account/backup-codes",
        web::post().to(pages::account::account_backup_codes_post),
    )
    .route(
        "/account/sessions/end",
        web::post().to(pages::account::account_session_end_post),
    )
    .route(
        "/account/sessions/end-all",
        web::post().to(pages::account::account_sessions_end_all_post),
    )
    .route("/mfa", web::get().to(pages::mfa::mfa_get))
    .route("/mfa", web::post().to(pages::mfa::mfa_post))
    .route("/consent", web::get().to(pages::consent::consent_get))
    .route("/consent", web::post().to(pages::consent::consent_post))
    .route("/token", web::post().to(oidc::token_post))
    .route("/par", web::post().to(oidc::par_post))
    .route("/userinfo", web::get().to(oidc::userinfo))
    .route("/userinfo", web::post().to(oidc::userinfo))
    .route("/revoke", web::post().to(oidc::revoke_post))
    .route("/introspect", web::post().to(oidc::introspect_post))
    .route("/logout", web::get().to(pages::logout::logout))
    .route("/logout", web::post().to(pages::logout::logout))
    .route("/branding.css", web::get().to(pages::assets::branding_css))
    .route("/federation/start", web::post().to(federation::start_post))
    .route(
        "/federation/oidc/callback",
        web::get().to(federation::oidc_callback),
    )
    .route("/saml/metadata", web::get().to(federation::saml_metadata))
    .route("/saml/acs", web::post().to(federation::saml_acs))
    .route("/saml/slo", web::get().to(federation::saml_slo))
    .route("/register", web::post().to(register::register_post))
    .route(
        "/register/{client_id}",
        web::get().to(register::registration_get),
    )
    .route(
        "/register/{client_id}",
        web::put().to(register::registration_put),
    )
    .route(
        "/register/{client_id}",
        web::delete().to(register::registration_delete),
    )
    .configure(api::routes);
}

/// The whole application's routes.
pub fn routes(cfg: &mut web::ServiceConfig, default_tenant: bool, demo: bool) {
    cfg.route("/health", web::get().to(health::health))
        .route("/openapi.json", web::get().to(openapi::openapi_get))
        .route("/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(health::metrics))
        .route("/static/{file}", web::get().to(pages::assets::static_file));
    if demo {
        cfg.route("/demo", web::get().to(demo::demo_page))
            .route("/demo/login", web::get().to(demo::demo_login))
            .route("/demo/callback", web::get().to(demo::demo_callback));
    }
    cfg.configure(api::platform_routes)
        .configure(console::platform_routes);
    // RFC 8414 §3: the well-known segment goes before the issuer's path.
    cfg.route(
        "/.well-known/oauth-authorization-server/t/{tenant}",
        web::get().to(oidc::discovery_get),
    );
    // The tenant console only under the issuer: `/admin` at the root is the platform's.
    cfg.service(
        web::scope("/t/{tenant}")
            .configure(tenant_routes)
            .configure(console::routes),
    );
    if default_tenant {
        cfg.configure(tenant_routes);
    } else {
        cfg.route(
            "/api/v1/auth/sso/login",
            web::get().to(federation::sso_login_root),
        );
    }
}
