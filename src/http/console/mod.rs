//! The tenant's admin console (`{issuer}/admin`): server-rendered pages over the same domain
//! functions the admin API calls, for users of the tenant signed in through its normal
//! sign-in — with a second factor (acr `2` or better) unless the tenant turns
//! `console_requires_mfa` off — and gated page by page, form by form, by the `resource:action`
//! permissions the admin API checks, so a user holding `clients:read` only sees clients,
//! read-only. Every write is audited with `source: console`.
//!
//! This module owns the console's session check, its layout and navigation; it implements no
//! rule of its own (validation, storage and auditing of a change are the domain's).

/// The visit of a console request (see [`visit::console_session`]), or early return of the
/// response that sends the browser elsewhere first (the sign-in, a step-up, a closed page).
macro_rules! visit {
    ($e:expr) => {
        match $e.await? {
            Ok(c) => c,
            Err(redirect) => return Ok(redirect),
        }
    };
}

pub mod api_keys;
pub mod audit_log;
pub mod clients;
pub mod dashboard;
pub mod keys;
pub mod platform;
pub mod roles;
pub mod settings;
pub mod sso;
pub mod users;
pub mod visit;

use actix_web::web;

/// The platform console's routes, at the root only.
pub fn platform_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(platform::tenants_get))
        .route("/admin/login", web::get().to(platform::login_get))
        .route("/admin/login", web::post().to(platform::login_post))
        .route("/admin/logout", web::get().to(platform::logout_get))
        .route("/admin/logout", web::post().to(platform::logout_post))
        .route("/admin/tenants", web::post().to(platform::tenants_post))
        .route("/admin/bans", web::get().to(platform::bans_get))
        .route("/admin/bans", web::post().to(platform::bans_post))
        .route("/admin/bans/lift", web::post().to(platform::ban_lift_post));
}

/// The console's routes, under a tenant's issuer.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(dashboard::dashboard_get))
        .route("/admin/step-up", web::get().to(dashboard::step_up_get))
        .route("/admin/clients", web::get().to(clients::clients_get))
        .route("/admin/clients", web::post().to(clients::clients_post))
        .route("/admin/clients/new", web::get().to(clients::client_new_get))
        .route("/admin/clients/{id}", web::get().to(clients::client_get))
        .route("/admin/clients/{id}", web::post().to(clients::client_post))
        .route(
            "/admin/clients/{id}/rotate-secret",
            web::get().to(clients::rotate_secret_get),
        )
        .route(
            "/admin/clients/{id}/rotate-secret",
            web::post().to(clients::rotate_secret_post),
        )
        .route(
            "/admin/clients/{id}/delete",
            web::get().to(clients::delete_get),
        )
        .route(
            "/admin/clients/{id}/delete",
            web::post().to(clients::delete_post),
        )
        .route("/admin/users", web::get().to(users::users_get))
        .route("/admin/users", web::post().to(users::users_post))
        .route("/admin/users/new", web::get().to(users::user_new_get))
        .route("/admin/users/{id}", web::get().to(users::user_get))
        .route("/admin/users/{id}", web::post().to(users::user_post))
        .route(
            "/admin/users/{id}/disable",
            web::get().to(users::disable_get),
        )
        .route(
            "/admin/users/{id}/disable",
            web::post().to(users::disable_post),
        )
        .route(
            "/admin/users/{id}/enable",
            web::post().to(users::enable_post),
        )
        .route(
            "/admin/users/{id}/unlock",
            web::post().to(users::unlock_post),
        )
        .route(
            "/admin/users/{id}/reset-mfa",
            web::get().to(users::reset_mfa_get),
        )
        .route(
            "/admin/users/{id}/reset-mfa",
            web::post().to(users::reset_mfa_post),
        )
        .route("/admin/users/{id}/delete", web::get().to(users::delete_get))
        .route(
            "/admin/users/{id}/delete",
            web::post().to(users::delete_post),
        )
        .route(
            "/admin/users/{id}/roles",
            web::post().to(users::role_add_post),
        )
        .route(
            "/admin/users/{id}/roles/{role}/remove",
            web::post().to(users::role_remove_post),
        )
        .route(
            "/admin/users/{id}/sessions/{sid}/end",
            web::post().to(users::session_end_post),
        )
        .route(
            "/admin/users/{id}/sessions/end-all",
            web::post().to(users::sessions_end_all_post),
        )
        .route("/admin/roles", web::get().to(roles::roles_get))
        .route("/admin/roles", web::post().to(roles::roles_post))
        .route("/admin/roles/new", web::get().to(roles::role_new_get))
        .route("/admin/roles/import", web::post().to(roles::import_post))
        .route("/admin/roles/{id}", web::get().to(roles::role_get))
        .route("/admin/roles/{id}", web::post().to(roles::role_post))
        .route("/admin/roles/{id}/delete", web::get().to(roles::delete_get))
        .route(
            "/admin/roles/{id}/delete",
            web::post().to(roles::delete_post),
        )
        .route("/admin/api-keys", web::get().to(api_keys::keys_get))
        .route("/admin/api-keys", web::post().to(api_keys::keys_post))
        .route(
            "/admin/api-keys/{id}/rotate",
            web::get().to(api_keys::rotate_get),
        )
        .route(
            "/admin/api-keys/{id}/rotate",
            web::post().to(api_keys::rotate_post),
        )
        .route(
            "/admin/api-keys/{id}/revoke",
            web::get().to(api_keys::revoke_get),
        )
        .route(
            "/admin/api-keys/{id}/revoke",
            web::post().to(api_keys::revoke_post),
        )
        .route("/admin/sso", web::get().to(sso::sso_get))
        .route("/admin/sso", web::post().to(sso::sso_post))
        .route("/admin/sso/new", web::get().to(sso::new_get))
        .route("/admin/sso/{id}", web::get().to(sso::connection_get))
        .route("/admin/sso/{id}/test", web::post().to(sso::test_post))
        .route("/admin/sso/{id}/enable", web::post().to(sso::enable_post))
        .route("/admin/sso/{id}/disable", web::get().to(sso::disable_get))
        .route("/admin/sso/{id}/disable", web::post().to(sso::disable_post))
        .route("/admin/sso/{id}/delete", web::get().to(sso::delete_get))
        .route("/admin/sso/{id}/delete", web::post().to(sso::delete_post))
        .route("/admin/keys", web::get().to(keys::keys_get))
        .route("/admin/keys/rotate", web::get().to(keys::rotate_get))
        .route("/admin/keys/rotate", web::post().to(keys::rotate_post))
        .route("/admin/settings", web::get().to(settings::settings_get))
        .route("/admin/settings", web::post().to(settings::settings_post))
        .route("/admin/audit", web::get().to(audit_log::audit_get))
        .route("/admin/audit.csv", web::get().to(audit_log::audit_csv_get));
}
