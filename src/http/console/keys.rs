//! The console's signing keys: the published keys with their state, age and next scheduled
//! rotation, and "Rotate keys now" after a confirmation page — the same
//! [`AppState::rotate_keys`] as the admin API's `POST /admin/keys/rotate`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::dashboard::KeyRow;
use super::visit::{console_form, console_session, Console, Shell};
use crate::error::PageError;
use crate::http::extractors::{PageForm, TenantProvider};
use crate::http::pages::common::locale;
use crate::keys;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "pages/console/keys.html")]
struct KeysPage<'a> {
    c: Shell<'a>,
    keys: Vec<KeyRow>,
    rotate: Option<String>,
    notice: Option<&'static str>,
}

async fn keys_page(
    c: &Console<'_>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let list =
        keys::list_keys(&c.state.pool, &c.p.tenant, c.state.config.key_rotation_secs).await?;
    c.page(
        StatusCode::OK,
        KeysPage {
            c: c.shell("/keys"),
            keys: list.iter().map(KeyRow::from).collect(),
            rotate: c.can("keys:rotate").then(|| c.url("/keys/rotate")),
            notice,
        },
    )
}

/// `GET {issuer}/admin/keys` (keys:read)
pub async fn keys_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("keys:read")?;
    keys_page(&c, None).await
}

/// `GET {issuer}/admin/keys/rotate` (keys:rotate) — asks first.
pub async fn rotate_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("keys:rotate")?;
    let ct = c.texts();
    c.confirm(
        "/keys",
        ct.nav_keys,
        ct.confirm_rotate_keys,
        c.url("/keys/rotate"),
        ct.rotate_keys,
        c.url("/keys"),
    )
}

/// `POST {issuer}/admin/keys/rotate` (keys:rotate)
pub async fn rotate_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("keys:rotate")?;
    let kids = state
        .rotate_keys(&p.tenant)
        .await
        .map_err(|e| PageError::unexpected(c.loc, &e))?;
    c.audit("keys.rotated", ("next_kids", &kids.join(" ")));
    keys_page(&c, Some(c.texts().keys_rotated)).await
}
