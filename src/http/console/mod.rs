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

pub mod clients;
pub mod dashboard;
pub mod visit;

use actix_web::web;

/// The console's routes, under a tenant's issuer.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(dashboard::dashboard_get))
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
        );
}

