//! Sign-out (`{issuer}/logout`, RP-Initiated Logout 1.0): the confirmation page, the
//! registered post-logout redirect, back-channel logout and SAML Single Logout upstream.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{
    check_csrf, cookie, csrf_seed, csrf_token, current_session, form_page, frame, html, locale,
    see_other,
};
use super::error::Frame;
use crate::accounts::{self};
use crate::audit::{self, AuditEvent};
use crate::clients;
use crate::error::PageError;
use crate::federation::slo;
use crate::http::extractors::{audit_context, PageParams, TenantProvider};
use crate::i18n::Locale;
use crate::provider::Provider;
use crate::sessions::{self};
use crate::state::AppState;

/// What a CSRF token is bound to besides the browser: the pending request of a sign-in or
/// consent form, or the sign-out form.
const LOGOUT_FORM: &str = "logout";

#[derive(Template)]
#[template(path = "pages/logout/confirm.html")]
struct LogoutPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    hidden: Vec<(&'static str, String)>,
    account: String,
}

#[derive(Template)]
#[template(path = "pages/logout/signed_out.html")]
struct LoggedOutPage<'a> {
    f: Frame<'a>,
}

/// `GET|POST {issuer}/logout` — RP-Initiated Logout 1.0. The post-logout redirect URI must
/// be registered for the client named by `id_token_hint` or `client_id`; otherwise the
/// user sees an error and is not redirected.
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageParams(params): PageParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, params.get("ui_locales"));
    if let Some(r) = params.repeated.first() {
        return Err(PageError::bad_request(
            loc,
            format!("The parameter {r} was given more than once."),
        ));
    }
    // The client: the audience of the hint, or client_id (which must agree with it).
    let mut hint_client = None;
    let mut hint_sid = None;
    if let Some(hint) = params.get("id_token_hint") {
        let claims = p
            .keys
            .verify(hint)
            .ok()
            .filter(|(typ, c)| {
                typ.as_deref() == Some("JWT")
                    && c.get("iss").and_then(|v| v.as_str()) == Some(p.issuer.as_str())
                    && !c.contains_key("client_id")
                    && !c.contains_key("events")
            })
            .map(|(_, c)| c)
            .ok_or_else(|| {
                PageError::bad_request(
                    loc,
                    "The id_token_hint is not a valid ID token of this issuer.",
                )
            })?;
        hint_client = claims.get("aud").and_then(|a| match a {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(v) => v.first().and_then(|x| x.as_str()).map(str::to_string),
            _ => None,
        });
        hint_sid = claims
            .get("sid")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    let client_id = match (hint_client, params.get("client_id")) {
        (Some(h), Some(c)) if h != c => {
            return Err(PageError::bad_request(
                loc,
                "client_id does not match the id_token_hint.",
            ));
        }
        (Some(h), _) => Some(h),
        (None, c) => c.map(str::to_string),
    };
    let client = match &client_id {
        Some(id) => Some(
            clients::find_client(state.clients(), &p.tenant, id)
                .await
                .map_err(|e| PageError::unexpected(loc, &e))?
                .ok_or_else(|| {
                    PageError::bad_request(loc, "The application (client_id) is not known.")
                })?,
        ),
        None => None,
    };
    let redirect = match params.get("post_logout_redirect_uri") {
        Some(uri) => match &client {
            Some(c) if c.has_post_logout_redirect_uri(uri) => {
                let mut url = url::Url::parse(uri).map_err(|_| {
                    PageError::bad_request(loc, "Invalid post_logout_redirect_uri.")
                })?;
                if let Some(s) = params.get("state") {
                    url.query_pairs_mut().append_pair("state", s);
                }
                Some(url.to_string())
            }
            Some(_) => {
                return Err(PageError::bad_request(
                    loc,
                    "The post_logout_redirect_uri is not registered for this application.",
                ))
            }
            None => {
                return Err(PageError::bad_request(
                    loc,
                    "post_logout_redirect_uri requires id_token_hint or client_id.",
                ))
            }
        },
        None => None,
    };
    let session = current_session(&state, &req, &p).await?;
    let confirmed =
        req.method() == actix_web::http::Method::POST && params.get("confirm").is_some();
    if confirmed {
        check_csrf(&state, &req, &params, LOGOUT_FORM, loc)?;
    }
    let hint_matches = session
        .as_ref()
        .is_some_and(|s| hint_sid.as_deref() == Some(s.sid.as_str()));
    match session {
        Some(s) if confirmed && params.get("confirm") == Some("no") => {
            let _ = s;
            finish_logout(&state, &p, loc, redirect, None)
        }
        Some(s) if confirmed || hint_matches => {
            sessions::end_session(&state.pool, &state.outbound, &p, &s).await?;
            audit::record(
                &state.audit,
                AuditEvent::new("signout", Some(&p.tenant)).actor(Some(&s.user_id)),
                &audit_context(&req),
            );
            // A session from a SAML IdP ends there too (SP-initiated Single Logout): the
            // browser goes to the IdP, which sends it back to where it was going. Signed
            // out here either way.
            let next = match slo::begin(state.federation(), &p, &s.sid, redirect.as_deref()).await {
                Ok(Some(url)) => Some(url.to_string()),
                Ok(None) => redirect,
                Err(e) => {
                    tracing::warn!(error = %e, "SAML Single Logout could not start");
                    redirect
                }
            };
            finish_logout(
                &state,
                &p,
                loc,
                next,
                Some(sessions::cookie_name(&p.tenant.slug)),
            )
        }
        Some(s) => {
            let (seed, set) = csrf_seed(&state, &req);
            let account = accounts::find_user(&state.pool, &p.tenant, &s.user_id)
                .await?
                .map(|u| u.email)
                .unwrap_or_default();
            let mut hidden = Vec::new();
            for k in [
                "id_token_hint",
                "client_id",
                "post_logout_redirect_uri",
                "state",
                "ui_locales",
            ] {
                if let Some(v) = params.get(k) {
                    let name: &'static str = k;
                    hidden.push((name, v.to_string()));
                }
            }
            let page = LogoutPage {
                f: frame(&p, loc),
                action: p.endpoint("/logout"),
                csrf: csrf_token(&state, &seed, LOGOUT_FORM),
                hidden,
                account,
            };
            let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
            Ok(form_page(&state, StatusCode::OK, body, seed, set))
        }
        None => finish_logout(&state, &p, loc, redirect, None),
    }
}

pub fn finish_logout(
    state: &AppState,
    p: &Provider,
    loc: Locale,
    redirect: Option<String>,
    clear: Option<String>,
) -> Result<HttpResponse, PageError> {
    let mut resp = match redirect {
        Some(uri) => see_other(&uri),
        None => html(StatusCode::OK, LoggedOutPage { f: frame(p, loc) })?,
    };
    if let Some(name) = clear {
        let mut c = cookie(state, name, String::new(), Some(0));
        c.make_removal();
        resp.add_cookie(&c)
            .map_err(|e| PageError::unexpected(loc, &e))?;
    }
    Ok(resp)
}
