//! The pieces every page shares, written once: the CSRF token (signed double-submit: an
//! HMAC of a random cookie under a key derived from the master key, bound to what the form
//! continues), cookies, rendering, the frame, the message page, the current session and the
//! pending authorization request a form continues.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::error::Frame;
use crate::authorization::{self, CodeResponse, Params, Pending, ResponseMode};
use crate::crypto;
use crate::error::PageError;
use crate::i18n::{self, Locale};
use crate::provider::Provider;
use crate::sessions::{self, Session};
use crate::state::AppState;

/// The CSRF seed cookie; on https the `__Host-` prefix pins it to this host (no sibling
/// subdomain can plant one).
pub fn csrf_cookie_name(state: &AppState) -> &'static str {
    if state.config.is_https() {
        "__Host-portcullis_csrf"
    } else {
        "portcullis_csrf"
    }
}

pub fn locale(req: &HttpRequest, ui_locales: Option<&str>) -> Locale {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    i18n::negotiate(ui_locales, accept)
}

/// The CSRF cookie value of this browser, and whether it must be set.
pub fn csrf_seed(state: &AppState, req: &HttpRequest) -> (String, bool) {
    match req.cookie(csrf_cookie_name(state)) {
        Some(c) if c.value().len() == 43 => (c.value().to_string(), false),
        _ => (crypto::random_token(32), true),
    }
}

/// The CSRF cookie value this browser sent (empty when none): to render a form again after
/// its submission passed the CSRF check.
pub fn csrf_cookie_value(state: &AppState, req: &HttpRequest) -> String {
    req.cookie(csrf_cookie_name(state))
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

pub fn csrf_token(state: &AppState, seed: &str, binding: &str) -> String {
    crypto::b64url(&crypto::hmac_sha256(
        &state.mac_key,
        format!("csrf:{seed}:{binding}").as_bytes(),
    ))
}

pub fn check_csrf(
    state: &AppState,
    req: &HttpRequest,
    params: &Params,
    binding: &str,
    loc: Locale,
) -> Result<(), PageError> {
    let ok = match (
        req.cookie(csrf_cookie_name(state)),
        params.get("csrf_token"),
    ) {
        (Some(c), Some(given)) => crypto::constant_time_eq(
            csrf_token(state, c.value(), binding).as_bytes(),
            given.as_bytes(),
        ),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            loc,
            "The form has expired or was not sent from this site. Go back, reload the page and try again.",
        ))
    }
}

pub fn cookie<'a>(
    state: &AppState,
    name: String,
    value: String,
    max_age: Option<i64>,
) -> Cookie<'a> {
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.is_https())
        .finish();
    if let Some(age) = max_age {
        c.set_max_age(CookieDuration::seconds(age));
    }
    c
}

/// A rendered form page, with the CSRF seed cookie when the browser had none yet
/// ([`csrf_seed`]).
pub fn form_page(
    state: &AppState,
    status: StatusCode,
    body: String,
    seed: String,
    set: bool,
) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(state, csrf_cookie_name(state).into(), seed, None));
    }
    resp.body(body)
}

/// A JSON answer to a page's script (passkey ceremony options): never cached.
pub fn no_store_json(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body)
}

pub fn html(status: StatusCode, page: impl Template) -> Result<HttpResponse, PageError> {
    let body = page
        .render()
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The redirect to a page of the sign-in (`/login`, `/mfa`, `/consent`, …) for the pending
/// request `request_id`.
pub fn to_step(p: &Provider, step: &str, request_id: &str) -> HttpResponse {
    see_other(&format!("{}?request={request_id}", p.endpoint(step)))
}

pub fn frame(p: &Provider, loc: Locale) -> Frame<'_> {
    Frame {
        lang: loc.tag(),
        t: loc.texts(),
        tenant_name: p.tenant.display_name(),
        logo_url: p.tenant.settings.branding.logo_url.as_deref(),
        branding_css: Some(p.endpoint("/branding.css")),
    }
}

/// The "Return to the application" button of a message page: a link (query response
/// mode) or a form (form_post).
pub struct Back {
    pub post: bool,
    pub action: String,
    pub fields: Vec<(&'static str, String)>,
}

impl Back {
    pub fn from(resp: &CodeResponse) -> Self {
        match resp.response_mode {
            ResponseMode::Query => Self {
                post: false,
                action: authorization::redirect_location(resp),
                fields: Vec::new(),
            },
            ResponseMode::FormPost => Self {
                post: true,
                action: resp.redirect_uri.clone(),
                fields: resp.params.clone(),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "pages/common/message.html")]
pub struct MessagePage<'a> {
    pub f: Frame<'a>,
    pub title: &'a str,
    pub text: &'a str,
    /// A way back to the relying party (carrying an OAuth error response).
    pub back: Option<Back>,
}

pub async fn current_session(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
) -> Result<Option<Session>, PageError> {
    let Some(c) = req.cookie(&sessions::cookie_name(&p.tenant.slug)) else {
        return Ok(None);
    };
    Ok(sessions::find_session(&state.pool, &p.tenant, c.value()).await?)
}

pub async fn pending(
    state: &AppState,
    p: &Provider,
    id: Option<&str>,
    loc: Locale,
) -> Result<Pending, PageError> {
    let found = match id {
        Some(id) => authorization::load_request(state.authorization(), p, id)
            .await
            .map_err(PageError::from)?,
        None => None,
    };
    found.ok_or_else(|| PageError::bad_request(loc, loc.texts().request_expired))
}

/// The preamble of every form that continues a pending request: the CSRF token bound to
/// the request, the request itself, and the locale it asked for.
pub async fn pending_form(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    form: &Params,
) -> Result<(Pending, Locale), PageError> {
    let loc = locale(req, None);
    check_csrf(state, req, form, form.get("request").unwrap_or(""), loc)?;
    let pending = pending(state, p, form.get("request"), loc).await?;
    let loc = locale(req, pending.request.ui_locales.as_deref());
    Ok((pending, loc))
}
