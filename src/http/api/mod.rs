//! The first-party JSON API (`{issuer}/api/v1/…`, and at the root for the default tenant):
//! `{"data": …}` on success, `{"error":{"code","message","correlation_id"}}` otherwise.

use actix_web::web;

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod bans;
pub mod common;
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
            "/api/v1/auth/passkey/options",
            web::post().to(auth::passkey_options_post),
        )
        .route(
            "/api/v1/auth/passkey/verify",
            web::post().to(auth::passkey_verify_post),
        )
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
        .route("/api/v1/rbac/roles/{id}", web::put().to(rbac::role_put))
        .route(
            "/api/v1/rbac/roles/{id}",
            web::delete().to(rbac::role_delete),
        )
        .route("/api/v1/rbac/assign", web::post().to(rbac::assign_post))
        .route("/api/v1/rbac/unassign", web::post().to(rbac::unassign_post))
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
        .route(
            "/api/v1/admin/clients",
            web::get().to(admin::clients::clients_get),
        )
        .route(
            "/api/v1/admin/clients",
            web::post().to(admin::clients::clients_post),
        )
        .route(
            "/api/v1/admin/clients/{id}",
            web::get().to(admin::clients::client_get),
        )
        .route(
            "/api/v1/admin/clients/{id}",
            web::put().to(admin::clients::client_put),
        )
        .route(
            "/api/v1/admin/clients/{id}/rotate-secret",
            web::post().to(admin::clients::client_rotate_secret_post),
        )
        .route(
            "/api/v1/admin/clients/{id}",
            web::delete().to(admin::clients::client_delete),
        )
        .route(
            "/api/v1/admin/users",
            web::get().to(admin::users::users_get),
        )
        .route(
            "/api/v1/admin/users",
            web::post().to(admin::users::users_post),
        )
        .route(
            "/api/v1/admin/users/{id}",
            web::get().to(admin::users::user_get),
        )
        .route(
            "/api/v1/admin/users/{id}",
            web::patch().to(admin::users::user_patch),
        )
        .route(
            "/api/v1/admin/users/{id}",
            web::delete().to(admin::users::user_delete),
        )
        .route(
            "/api/v1/admin/users/{id}/unlock",
            web::post().to(admin::users::user_unlock_post),
        )
        .route(
            "/api/v1/admin/users/{id}/disable",
            web::post().to(admin::users::user_disable_post),
        )
        .route(
            "/api/v1/admin/users/{id}/enable",
            web::post().to(admin::users::user_enable_post),
        )
        .route(
            "/api/v1/admin/users/{id}/reset-mfa",
            web::post().to(admin::users::user_reset_mfa_post),
        )
        .route("/api/v1/admin/keys", web::get().to(admin::tenant::keys_get))
        .route(
            "/api/v1/admin/keys/rotate",
            web::post().to(admin::tenant::keys_rotate_post),
        )
        .route(
            "/api/v1/admin/settings",
            web::get().to(admin::tenant::settings_get),
        )
        .route(
            "/api/v1/admin/settings",
            web::patch().to(admin::tenant::settings_patch),
        )
        .route(
            "/api/v1/admin/audit",
            web::get().to(admin::tenant::audit_get),
        )
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
        )
        .route(
            "/api/v1/admin/sso/{id}/enable",
            web::post().to(sso::enable_post),
        )
        .route(
            "/api/v1/admin/sso/{id}/disable",
            web::post().to(sso::disable_post),
        );
}

/// Platform routes, at the root only (not under a tenant).
pub fn platform_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/admin/tenants",
        web::post().to(admin::tenants::tenants_post),
    )
    .route(
        "/api/v1/admin/tenants",
        web::get().to(admin::tenants::tenants_get),
    )
    .route("/api/v1/admin/bans", web::get().to(bans::bans_get))
    .route("/api/v1/admin/bans", web::post().to(bans::bans_post))
    .route(
        "/api/v1/admin/bans/{ip:.+}",
        web::delete().to(bans::ban_delete),
    );
}
