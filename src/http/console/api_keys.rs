//! The console's API keys: the list (prefix, permissions, use), "New API key" (shown once),
//! "Rotate" (a new key shown once, the old one valid for a grace period) and "Revoke", each
//! after a confirmation page. Every page needs `apikeys:read`, each action its own permission. The rules are the domain's, as `/api/v1/apikeys` calls them:
//! [`api_keys::create`], [`api_keys::rotate`], [`api_keys::revoke`], and a key holds only
//! permissions its creator holds ([`rbac::check_held`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::visit::{console_form, console_session, Console, Secret, Shell};
use crate::api_keys::{self, ApiKey, ApiKeyError, NewApiKey};
use crate::authorization::Params;
use crate::error::PageError;
use crate::http::api::common::path_id;
use crate::http::extractors::{PageForm, TenantProvider};
use crate::http::pages::common::locale;
use crate::rbac::{self, RbacError};
use crate::state::AppState;
use crate::storage::{self, format_instant};

pub struct KeyLine {
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    pub uses: i64,
    pub status: &'static str,
    pub rotate: Option<String>,
    pub revoke: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/console/api_keys.html")]
struct KeysPage<'a> {
    c: Shell<'a>,
    keys: Vec<KeyLine>,
    /// The creation form's action, when the visitor may create keys.
    create: Option<String>,
    name: String,
    scopes: String,
    days: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/console/api_key_rotate.html")]
struct RotatePage<'a> {
    c: Shell<'a>,
    name: String,
    action: String,
    cancel: String,
}

fn line(c: &Console<'_>, k: &ApiKey, now: i64) -> KeyLine {
    let ct = c.texts();
    let live = k.is_live(now);
    let status = if k.revoked_at.is_some() {
        ct.revoked
    } else if !live {
        ct.expired
    } else {
        ct.active
    };
    KeyLine {
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scopes: k.scopes.join(" "),
        created: format_instant(k.created_at),
        expires: format_instant(k.expires_at),
        last_used: k
            .last_used_at
            .map(format_instant)
            .unwrap_or_else(|| ct.never.to_string()),
        uses: k.use_count,
        status,
        rotate: (live && c.can("apikeys:create"))
            .then(|| c.url(&format!("/api-keys/{}/rotate", k.id))),
        revoke: (k.revoked_at.is_none() && c.can("apikeys:revoke"))
            .then(|| c.url(&format!("/api-keys/{}/revoke", k.id))),
    }
}

async fn list_page(
    c: &Console<'_>,
    status: StatusCode,
    form: Option<&Params>,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let d = c.state.api_keys();
    api_keys::flush_usage(d).await;
    let keys = api_keys::list(d, Some(&c.p.tenant))
        .await
        .map_err(|e| PageError::unexpected(c.loc, &e))?;
    let now = storage::now();
    let field = |k: &str, default: &str| form.and_then(|f| f.get(k)).unwrap_or(default).to_string();
    c.page(
        status,
        KeysPage {
            c: c.shell("/api-keys"),
            keys: keys.iter().map(|k| line(c, k, now)).collect(),
            create: c.can("apikeys:create").then(|| c.url("/api-keys")),
            name: field("name", ""),
            scopes: field("scopes", ""),
            days: field("expires_in_days", "90"),
            notice,
            error,
        },
    )
}

async fn find(c: &Console<'_>, id: &str) -> Result<ApiKey, PageError> {
    api_keys::find(c.state.api_keys(), Some(&c.p.tenant), id)
        .await
        .map_err(|e| PageError::unexpected(c.loc, &e))?
        .ok_or_else(|| c.not_found())
}

fn key_secret<'a>(
    c: &Console<'_>,
    k: &'a ApiKey,
    key: &'a str,
    notice: &'static str,
) -> Secret<'a> {
    let ct = c.texts();
    Secret {
        label: ct.api_key,
        id_label: ct.name,
        id: &k.name,
        once: ct.key_once,
        value: key,
        notice: Some(notice),
        back: c.url("/api-keys"),
    }
}

/// `GET {issuer}/admin/api-keys` (apikeys:read)
pub async fn keys_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("apikeys:read")?;
    list_page(&c, StatusCode::OK, None, None, None).await
}

/// `POST {issuer}/admin/api-keys` (apikeys:create) — the key is shown once, here.
pub async fn keys_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("apikeys:read")?;
    c.require("apikeys:create")?;
    let scopes: Vec<String> = form
        .get("scopes")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let days = match form.get("expires_in_days").map(|d| d.trim().parse::<i64>()) {
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => Some(0),
        None => None,
    };
    if let Err(RbacError::NotHeld { required, held }) = rbac::check_held(c.permissions(), &scopes) {
        let why = c.not_held(&required, &held);
        return list_page(&c, StatusCode::FORBIDDEN, Some(&form), None, Some(why)).await;
    }
    let created = api_keys::create(
        state.api_keys(),
        Some(&p.tenant),
        NewApiKey {
            name: form.get("name").unwrap_or(""),
            scopes,
            expires_in_days: days,
            created_by: Some(&c.user.id),
        },
    )
    .await;
    match created {
        Ok((k, key)) => {
            c.audit("apikey.created", ("key_id", &k.id));
            c.secret(
                "/api-keys",
                StatusCode::CREATED,
                key_secret(&c, &k, &key, c.texts().key_created),
            )
        }
        Err(ApiKeyError::Invalid(why)) => {
            list_page(
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&form),
                None,
                Some(why),
            )
            .await
        }
        Err(e) => Err(PageError::unexpected(c.loc, &e)),
    }
}

/// `GET {issuer}/admin/api-keys/{id}/rotate` (apikeys:create) — asks first, with the grace
/// period.
pub async fn rotate_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("apikeys:read")?;
    c.require("apikeys:create")?;
    let k = find(&c, path_id(&req)).await?;
    c.page(
        StatusCode::OK,
        RotatePage {
            c: c.shell("/api-keys"),
            name: k.name.clone(),
            action: c.url(&format!("/api-keys/{}/rotate", k.id)),
            cancel: c.url("/api-keys"),
        },
    )
}

/// `POST {issuer}/admin/api-keys/{id}/rotate` `grace_period_hours` (apikeys:create)
pub async fn rotate_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("apikeys:read")?;
    c.require("apikeys:create")?;
    let k = find(&c, path_id(&req)).await?;
    let grace = match form
        .get("grace_period_hours")
        .map(|h| h.trim().parse::<i64>())
    {
        Some(Ok(h)) => Some(h.saturating_mul(3600)),
        Some(Err(_)) => Some(-1),
        None => None,
    };
    match api_keys::rotate(state.api_keys(), Some(&p.tenant), &k.id, grace).await {
        Ok((k, key)) => {
            c.audit("apikey.rotated", ("key_id", &k.id));
            c.secret(
                "/api-keys",
                StatusCode::OK,
                key_secret(&c, &k, &key, c.texts().key_rotated),
            )
        }
        Err(ApiKeyError::Invalid(why)) => {
            list_page(&c, StatusCode::UNPROCESSABLE_ENTITY, None, None, Some(why)).await
        }
        Err(ApiKeyError::NotFound) => Err(c.not_found()),
        Err(e) => Err(PageError::unexpected(c.loc, &e)),
    }
}

/// `GET {issuer}/admin/api-keys/{id}/revoke` (apikeys:revoke) — asks first.
pub async fn revoke_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("apikeys:read")?;
    c.require("apikeys:revoke")?;
    let k = find(&c, path_id(&req)).await?;
    let ct = c.texts();
    c.confirm(
        "/api-keys",
        &k.name,
        ct.confirm_revoke_key,
        c.url(&format!("/api-keys/{}/revoke", k.id)),
        ct.revoke,
        c.url("/api-keys"),
    )
}

/// `POST {issuer}/admin/api-keys/{id}/revoke` (apikeys:revoke)
pub async fn revoke_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("apikeys:read")?;
    c.require("apikeys:revoke")?;
    let k = find(&c, path_id(&req)).await?;
    match api_keys::revoke(state.api_keys(), Some(&p.tenant), &k.id).await {
        Ok(k) => {
            c.audit("apikey.revoked", ("key_id", &k.id));
            list_page(&c, StatusCode::OK, None, Some(c.texts().key_revoked), None).await
        }
        Err(ApiKeyError::NotFound) => Err(c.not_found()),
        Err(ApiKeyError::Invalid(why)) => {
            list_page(&c, StatusCode::UNPROCESSABLE_ENTITY, None, None, Some(why)).await
        }
        Err(e) => Err(PageError::unexpected(c.loc, &e)),
    }
}
