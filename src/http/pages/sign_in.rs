//! The sign-in page (`{issuer}/login`): "Email", "Password", "Sign in", the federation
//! buttons when connections exist, and "Continue as" when only the account choice is asked.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{
    csrf_cookie_value, csrf_seed, csrf_token, current_session, form_page, frame, locale,
    no_store_json, pending, pending_form, to_step,
};
use super::error::Frame;
use super::flow::{complete_sign_in, resume, second_factor_step};
use crate::accounts::{self, AccountError};
use crate::audit::{self, AuditEvent};
use crate::authorization::{self, Pending};
use crate::error::PageError;
use crate::federation::{self};
use crate::http::extractors::{audit_context, query_params, PageForm, TenantProvider};
use crate::i18n::Locale;
use crate::passkeys;
use crate::provider::Provider;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "pages/sign_in/sign_in.html")]
struct SignInPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    request_id: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    current_account: Option<String>,
    federation_action: String,
    passkey_options: String,
    /// Passkeys work on this server (the public URL has a host name).
    passkeys: bool,
    google: bool,
    sso: bool,
}

/// What the sign-in form shows besides its frame.
pub struct SignInView<'a> {
    pub email: &'a str,
    pub error: Option<&'a str>,
    pub current_account: Option<String>,
}

pub async fn sign_in_page(
    state: &AppState,
    p: &Provider,
    pending: &Pending,
    seed: &str,
    loc: Locale,
    view: SignInView<'_>,
) -> Result<String, PageError> {
    // "Continue with Google" and "Single sign-on" appear when such connections exist.
    let options = federation::sign_in_options(state.federation(), &p.tenant).await?;
    let page = SignInPage {
        f: frame(p, loc),
        action: p.endpoint("/login"),
        csrf: csrf_token(state, seed, &pending.id),
        request_id: &pending.id,
        email: view.email,
        error: view.error,
        current_account: view.current_account,
        federation_action: p.endpoint("/federation/start"),
        passkey_options: p.endpoint("/login/passkey/options"),
        passkeys: passkeys::available(&state.config.public_url),
        google: options.google,
        sso: options.sso,
    };
    page.render().map_err(|e| PageError::unexpected(loc, &e))
}

/// `GET {issuer}/login?request=…` — the sign-in page.
pub async fn sign_in_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let mut loc = locale(&req, None);
    let pending = pending(&state, &p, q.get("request"), loc).await?;
    loc = locale(&req, pending.request.ui_locales.as_deref());
    let (seed, set) = csrf_seed(&state, &req);
    // "Continue as" is offered only when account choice is the sole reason for the page.
    let current = match current_session(&state, &req, &p).await? {
        Some(s) if pending.request.allows_continue_as(&s) => {
            accounts::find_user(&state.pool, &p.tenant, &s.user_id)
                .await?
                .map(|u| u.email)
        }
        _ => None,
    };
    let email = pending.request.login_hint.clone().unwrap_or_default();
    let view = SignInView {
        email: &email,
        error: None,
        current_account: current,
    };
    let body = sign_in_page(&state, &p, &pending, &seed, loc, view).await?;
    Ok(form_page(&state, StatusCode::OK, body, seed, set))
}

/// `POST {issuer}/login/passkey/options` — starts a passkey sign-in for the pending request
/// (the sign-in page's script asks; CSRF-checked like the form): the options for
/// `navigator.credentials.get` and the ceremony id.
pub async fn passkey_options_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (_, loc) = pending_form(&state, &req, &p, &form).await?;
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    let options = passkeys::start_sign_in(state.passkeys(), &rp, &p.tenant)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?;
    Ok(no_store_json(options))
}

/// The sign-in form's passkey answer: the user the passkey names, signed in with `amr`
/// hwk/swk + user — the second factor itself, so no one-time code follows.
async fn passkey_sign_in(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    pending: Pending,
    form: &crate::authorization::Params,
    loc: Locale,
) -> Result<HttpResponse, PageError> {
    let ctx = audit_context(req);
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    let signed = passkeys::finish_sign_in(
        state.passkeys(),
        &rp,
        &p.tenant,
        form.get("ceremony").unwrap_or(""),
        form.get("credential").unwrap_or(""),
        &ctx,
    )
    .await;
    let user = match signed {
        Ok(s) => accounts::find_user(&state.pool, &p.tenant, &s.user_id)
            .await?
            .filter(|u| !u.disabled)
            .map(|u| (u, s.amr)),
        Err(passkeys::PasskeyError::Unexpected(e)) => return Err(PageError::unexpected(loc, &e)),
        Err(_) => None,
    };
    let Some((user, amr)) = user else {
        audit::record(
            &state.audit,
            AuditEvent::new("signin.failure", Some(&p.tenant))
                .client(&pending.client.id)
                .detail("method", "passkey"),
            &ctx,
        );
        let seed = csrf_cookie_value(state, req);
        let view = SignInView {
            email: "",
            error: Some(loc.texts().passkey_failed),
            current_account: None,
        };
        let body = sign_in_page(state, p, &pending, &seed, loc, view).await?;
        return Ok(HttpResponse::build(StatusCode::UNAUTHORIZED)
            .content_type("text/html; charset=utf-8")
            .body(body));
    };
    let existing = current_session(state, req, p).await?;
    complete_sign_in(state, req, p, pending, &user, existing, &amr, loc).await
}

/// `POST {issuer}/login` — checks the credentials, starts the browser session.
pub async fn sign_in_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let ctx = audit_context(&req);
    let existing = current_session(&state, &req, &p).await?;
    if form.get("action") == Some("continue") {
        if let Some(s) = existing.clone() {
            if pending.request.allows_continue_as(&s) {
                authorization::mark_authenticated(state.authorization(), &p, &pending.id, &s.sid)
                    .await?;
                let pending = Pending {
                    authenticated_sid: Some(s.sid.clone()),
                    ..pending
                };
                return resume(&state, &p, &pending, &s, false, loc).await;
            }
        }
    }
    if form.get("action") == Some("passkey") {
        return passkey_sign_in(&state, &req, &p, pending, &form, loc).await;
    }
    let email = form.get("email").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let user = match accounts::authenticate(&state.pool, &state.hasher, &p.tenant, email, password)
        .await
    {
        Ok(u) => u,
        Err(e @ (AccountError::InvalidCredentials | AccountError::AccountLocked { .. })) => {
            let t = loc.texts();
            let (event, status, message) = match e {
                AccountError::AccountLocked { until } => {
                    let minutes = (until - crate::storage::now() + 59) / 60;
                    (
                        "signin.locked",
                        StatusCode::LOCKED,
                        format!("{} {} {}", t.account_locked, minutes.max(1), t.minutes),
                    )
                }
                _ => (
                    "signin.failure",
                    StatusCode::UNAUTHORIZED,
                    t.invalid_credentials.to_string(),
                ),
            };
            audit::record(
                &state.audit,
                AuditEvent::new(event, Some(&p.tenant)).client(&pending.client.id),
                &ctx,
            );
            let seed = csrf_cookie_value(&state, &req);
            let view = SignInView {
                email,
                error: Some(&message),
                current_account: None,
            };
            let body = sign_in_page(&state, &p, &pending, &seed, loc, view).await?;
            return Ok(HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(body));
        }
        Err(e) => return Err(PageError::from(e)),
    };
    if let Some(step) = second_factor_step(&state, &p, &pending, &user.id, loc).await? {
        // The password was right; the second factor is due before any session exists.
        authorization::set_mfa_user(state.authorization(), &p, &pending.id, Some(&user.id)).await?;
        return Ok(to_step(&p, step, &pending.id));
    }
    let existing = current_session(&state, &req, &p).await?;
    complete_sign_in(&state, &req, &p, pending, &user, existing, &["pwd"], loc).await
}
