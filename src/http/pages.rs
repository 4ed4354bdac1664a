//! Browser-facing endpoints: the authorization endpoint and the server-rendered sign-in,
//! consent and sign-out pages. Every form carries a CSRF token (signed double-submit:
//! an HMAC of a random cookie under a key derived from the master key). No inline script.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::{self, AccountError};
use crate::audit::{self, AuditEvent};
use crate::authorization::{
    self, AuthorizeError, CodeResponse, Next, Params, Pending, ResponseMode,
};
use crate::clients;
use crate::crypto;
use crate::error::{Frame, PageError};
use crate::federation::{self, slo};
use crate::http::extractors::{audit_context, query_params, FormParams, TenantProvider};
use crate::i18n::{self, Locale, Texts};
use crate::mfa;
use crate::provider::Provider;
use crate::sessions::{self, Session};
use crate::state::AppState;
use crate::tenants::MfaPolicy;

/// The CSRF seed cookie; on https the `__Host-` prefix pins it to this host (no sibling
/// subdomain can plant one).
pub(super) fn csrf_cookie_name(state: &AppState) -> &'static str {
    if state.config.is_https() {
        "__Host-portcullis_csrf"
    } else {
        "portcullis_csrf"
    }
}

/// What a CSRF token is bound to besides the browser: the pending request of a sign-in or
/// consent form, or the sign-out form.
const LOGOUT_FORM: &str = "logout";

pub(super) fn locale(req: &HttpRequest, ui_locales: Option<&str>) -> Locale {
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    i18n::negotiate(ui_locales, accept)
}

/// The CSRF cookie value of this browser, and whether it must be set.
pub(super) fn csrf_seed(state: &AppState, req: &HttpRequest) -> (String, bool) {
    match req.cookie(csrf_cookie_name(state)) {
        Some(c) if c.value().len() == 43 => (c.value().to_string(), false),
        _ => (crypto::random_token(32), true),
    }
}

/// The CSRF cookie value this browser sent (empty when none): to render a form again after
/// its submission passed the CSRF check.
pub(super) fn csrf_cookie_value(state: &AppState, req: &HttpRequest) -> String {
    req.cookie(csrf_cookie_name(state))
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

pub(super) fn csrf_token(state: &AppState, seed: &str, binding: &str) -> String {
    crypto::b64url(&crypto::hmac_sha256(
        &state.mac_key,
        format!("csrf:{seed}:{binding}").as_bytes(),
    ))
}

pub(super) fn check_csrf(
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

pub(super) fn cookie<'a>(
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

pub(super) fn html(status: StatusCode, page: impl Template) -> Result<HttpResponse, PageError> {
    let body = page
        .render()
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

pub(super) fn frame(p: &Provider, loc: Locale) -> Frame<'_> {
    Frame {
        lang: loc.tag(),
        t: loc.texts(),
        tenant_name: p.tenant.display_name(),
        logo_url: p.tenant.settings.branding.logo_url.as_deref(),
        branding_css: Some(p.endpoint("/branding.css")),
    }
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    request_id: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    current_account: Option<String>,
    federation_action: String,
    google: bool,
    sso: bool,
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    request_id: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "mfa_enroll.html")]
struct MfaEnrollPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    request_id: &'a str,
    qr_svg: &'a str,
    secret: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "backup_codes.html")]
struct BackupCodesPage<'a> {
    f: Frame<'a>,
    codes: &'a [String],
    continue_action: String,
    request_id: &'a str,
}

/// The "Return to the application" button of a message page: a link (query response
/// mode) or a form (form_post).
pub(super) struct Back {
    pub post: bool,
    pub action: String,
    pub fields: Vec<(&'static str, String)>,
}

impl Back {
    pub(super) fn from(resp: &CodeResponse) -> Self {
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
#[template(path = "message.html")]
pub(super) struct MessagePage<'a> {
    pub f: Frame<'a>,
    pub title: &'a str,
    pub text: &'a str,
    /// A way back to the relying party (carrying an OAuth error response).
    pub back: Option<Back>,
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPasswordPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    token: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    request_id: &'a str,
    client_name: &'a str,
    scopes: Vec<&'a str>,
    account: String,
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    hidden: Vec<(&'static str, String)>,
    account: String,
}

#[derive(Template)]
#[template(path = "logged_out.html")]
struct LoggedOutPage<'a> {
    f: Frame<'a>,
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    lang: &'static str,
    t: &'static Texts,
    action: &'a str,
    fields: &'a [(&'static str, String)],
}

/// Sends the authorization response to the client: a redirect with the parameters in
/// the query, or an auto-submitting form (OAuth 2.0 Form Post Response Mode).
pub(super) fn respond(resp: &CodeResponse, loc: Locale) -> Result<HttpResponse, PageError> {
    match resp.response_mode {
        ResponseMode::Query => Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, authorization::redirect_location(resp)))
            .finish()),
        ResponseMode::FormPost => {
            let page = FormPostPage {
                lang: loc.tag(),
                t: loc.texts(),
                action: &resp.redirect_uri,
                fields: &resp.params,
            };
            let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
            Ok(HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .body(body))
        }
    }
}

pub(super) async fn current_session(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
) -> Result<Option<Session>, PageError> {
    let Some(c) = req.cookie(&sessions::cookie_name(&p.tenant.slug)) else {
        return Ok(None);
    };
    Ok(sessions::find_session(&state.pool, &p.tenant, c.value()).await?)
}

/// `GET|POST {issuer}/authorize` (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2).
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let params = if req.method() == actix_web::http::Method::POST {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(PageError::bad_request(
                Locale::En,
                "The authorization request must be form-encoded.",
            ));
        }
        Params::parse(&body)
    } else {
        query_params(&req)
    };
    let loc = locale(&req, params.get("ui_locales"));
    let (client, request) = match authorization::validate(state.authorization(), &p, &params).await
    {
        Ok(v) => v,
        Err(AuthorizeError::Redirect(e)) => {
            return respond(&authorization::error_response(&p, &e), loc)
        }
        Err(AuthorizeError::Page(m)) => return Err(PageError::bad_request(loc, m)),
        Err(AuthorizeError::Unexpected(e)) => return Err(PageError::unexpected(loc, &e)),
    };
    let session = current_session(&state, &req, &p).await?;
    let next = authorization::decide(
        state.authorization(),
        &p,
        &client,
        &request,
        session.as_ref(),
        false,
    )
    .await
    .map_err(PageError::from)?;
    match (next, session) {
        (Next::Issue, Some(s)) => {
            let resp = authorization::issue_code(state.authorization(), &p, &request, &s)
                .await
                .map_err(PageError::from)?;
            respond(&resp, loc)
        }
        (Next::Fail(e), _) => respond(&authorization::error_response(&p, &e), loc),
        (Next::Consent, Some(_)) => {
            let id = authorization::save_request(state.authorization(), &p, &request, None)
                .await
                .map_err(PageError::from)?;
            Ok(see_other(&format!(
                "{}?request={id}",
                p.endpoint("/consent")
            )))
        }
        (Next::SecondFactor, Some(s)) => {
            let id = authorization::save_request(state.authorization(), &p, &request, None)
                .await
                .map_err(PageError::from)?;
            authorization::set_mfa_user(state.authorization(), &p, &id, Some(&s.user_id)).await?;
            Ok(see_other(&format!("{}?request={id}", p.endpoint("/mfa"))))
        }
        (Next::SignIn | Next::Consent | Next::Issue | Next::SecondFactor, _) => {
            let id = authorization::save_request(state.authorization(), &p, &request, None)
                .await
                .map_err(PageError::from)?;
            Ok(see_other(&format!("{}?request={id}", p.endpoint("/login"))))
        }
    }
}

pub(super) async fn pending(
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
pub(super) async fn pending_form(
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

/// Continues a pending request once the user has signed in (or consented).
async fn resume(
    state: &AppState,
    p: &Provider,
    pending: &Pending,
    session: &Session,
    consented: bool,
    loc: Locale,
) -> Result<HttpResponse, PageError> {
    let fresh = pending.authenticated_sid.as_deref() == Some(session.sid.as_str());
    let next = authorization::decide(
        state.authorization(),
        p,
        &pending.client,
        &pending.request,
        Some(session),
        fresh,
    )
    .await
    .map_err(PageError::from)?;
    match next {
        Next::SignIn => Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        ))),
        Next::SecondFactor => {
            authorization::set_mfa_user(
                state.authorization(),
                p,
                &pending.id,
                Some(&session.user_id),
            )
            .await?;
            Ok(see_other(&format!(
                "{}?request={}",
                p.endpoint("/mfa"),
                pending.id
            )))
        }
        Next::Consent if !consented => Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/consent"),
            pending.id
        ))),
        Next::Consent | Next::Issue => {
            // A request completes once: a replayed form cannot mint a second code.
            if !authorization::finish_request(state.authorization(), p, &pending.id).await? {
                return Err(PageError::bad_request(loc, loc.texts().request_expired));
            }
            if pending.request.account_page {
                return Ok(see_other(&p.endpoint("/account")));
            }
            let resp =
                authorization::issue_code(state.authorization(), p, &pending.request, session)
                    .await
                    .map_err(PageError::from)?;
            respond(&resp, loc)
        }
        Next::Fail(e) => {
            authorization::finish_request(state.authorization(), p, &pending.id).await?;
            respond(&authorization::error_response(p, &e), loc)
        }
    }
}

/// What the sign-in form shows besides its frame.
pub(super) struct SignInView<'a> {
    pub email: &'a str,
    pub error: Option<&'a str>,
    pub current_account: Option<String>,
}

pub(super) async fn sign_in_page(
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
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(&state, csrf_cookie_name(&state).into(), seed, None));
    }
    Ok(resp.body(body))
}

/// `POST {issuer}/login` — checks the credentials, starts the browser session.
pub async fn sign_in_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
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
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint(step),
            pending.id
        )));
    }
    let existing = current_session(&state, &req, &p).await?;
    complete_sign_in(&state, &req, &p, pending, &user, existing, &["pwd"], loc).await
}

/// The page of the second factor this sign-in still owes (`/mfa`, or `/mfa/enroll` when
/// the factor is required but not enrolled), if any: the stricter of the tenant's and the
/// client's policy applies, and a client-declared privileged scope requires it.
pub(super) async fn second_factor_step(
    state: &AppState,
    p: &Provider,
    pending: &Pending,
    user_id: &str,
    loc: Locale,
) -> Result<Option<&'static str>, PageError> {
    let enrolled = mfa::is_enabled(&state.pool, &p.tenant, user_id)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?;
    let privileged = if pending.client.is_privileged_request(&pending.request.scope) {
        MfaPolicy::Required
    } else {
        MfaPolicy::Off
    };
    let policy = p
        .tenant
        .settings
        .mfa_policy
        .max(pending.client.mfa_policy.unwrap_or(MfaPolicy::Off))
        .max(privileged);
    Ok(match (policy, enrolled) {
        (MfaPolicy::Off, _) | (MfaPolicy::Optional, false) => None,
        (MfaPolicy::Optional | MfaPolicy::Required, true) => Some("/mfa"),
        // Required but not enrolled: enrolment comes before the session.
        (MfaPolicy::Required, false) => Some("/mfa/enroll"),
    })
}

/// Starts (or renews) the browser session once every required factor is given, and binds
/// the pending request to it.
async fn establish_session(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    pending: &Pending,
    user: &accounts::User,
    existing: Option<Session>,
    amr: &[&str],
) -> Result<sessions::Started, PageError> {
    let started = start_session(state, req, p, user, existing, amr).await?;
    authorization::mark_authenticated(state.authorization(), p, &pending.id, &started.session.sid)
        .await?;
    // A federated sign-in's upstream SAML session, for Single Logout.
    if amr.contains(&"fed") {
        let upstream = pending.upstream_session.as_deref();
        if let Some(s) = upstream.and_then(federation::SamlSession::from_json) {
            slo::record_session(&state.pool, &p.tenant.id, &started.session.sid, &s).await?;
        }
    }
    audit::record(
        &state.audit,
        AuditEvent::new("signin.success", Some(&p.tenant))
            .actor(Some(&user.id))
            .client(&pending.client.id),
        &audit_context(req),
    );
    Ok(started)
}

/// Starts the browser session of `user`, or renews `existing` when it is theirs.
pub(super) async fn start_session(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    user: &accounts::User,
    existing: Option<Session>,
    amr: &[&str],
) -> Result<sessions::Started, PageError> {
    let ctx = audit_context(req);
    let acr = if amr.contains(&"otp") { "2" } else { "1" };
    // The same user signing in again continues their session (same sid for the relying
    // parties); another user ends it first (with back-channel logout).
    let renewed = match &existing {
        Some(old) if old.user_id == user.id => {
            sessions::reauthenticate(
                &state.pool,
                state.config.session_ttl,
                &p.tenant,
                old,
                amr,
                acr,
            )
            .await?
        }
        Some(old) => {
            sessions::end_session(&state.pool, &state.outbound, p, old).await?;
            None
        }
        None => None,
    };
    let started = match renewed {
        Some(s) => s,
        None => {
            sessions::start_session(
                &state.pool,
                state.config.session_ttl,
                &p.tenant,
                user,
                amr,
                acr,
                &ctx,
            )
            .await?
        }
    };
    Ok(started)
}

/// The session cookie of a started session.
pub(super) fn session_cookie<'a>(
    state: &AppState,
    p: &Provider,
    started: &sessions::Started,
) -> Cookie<'a> {
    cookie(
        state,
        sessions::cookie_name(&p.tenant.slug),
        started.cookie.clone(),
        Some(state.config.session_ttl),
    )
}

/// Starts (or renews) the session after every required factor, then continues the request.
#[allow(clippy::too_many_arguments)] // the pieces of one sign-in, passed once
pub(super) async fn complete_sign_in(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    pending: Pending,
    user: &accounts::User,
    existing: Option<Session>,
    amr: &[&str],
    loc: Locale,
) -> Result<HttpResponse, PageError> {
    let started = establish_session(state, req, p, &pending, user, existing, amr).await?;
    // A method waiting to be linked is linked only after a sign-in with the account's own
    // method (never through another federated sign-in).
    let link_cookie = if amr.contains(&"fed") {
        false
    } else {
        finish_pending_link(state, req, p, user).await?
    };
    let pending = Pending {
        authenticated_sid: Some(started.session.sid.clone()),
        ..pending
    };
    let mut resp = resume(state, p, &pending, &started.session, false, loc).await?;
    resp.add_cookie(&session_cookie(state, p, &started))
        .map_err(|e| PageError::unexpected(loc, &e))?;
    if link_cookie {
        resp.add_cookie(&cookie(
            state,
            link_cookie_name(state).into(),
            String::new(),
            Some(0),
        ))
        .map_err(|e| PageError::unexpected(loc, &e))?;
    }
    Ok(resp)
}

fn mfa_page(
    state: &AppState,
    p: &Provider,
    pending: &Pending,
    seed: &str,
    loc: Locale,
    error: Option<&str>,
) -> Result<String, PageError> {
    MfaPage {
        f: frame(p, loc),
        action: p.endpoint("/mfa"),
        csrf: csrf_token(state, seed, &pending.id),
        request_id: &pending.id,
        error,
    }
    .render()
    .map_err(|e| PageError::unexpected(loc, &e))
}

/// `GET {issuer}/mfa?request=…` — the "Authentication code" page of a sign-in.
pub async fn mfa_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let mut loc = locale(&req, None);
    let pending = pending(&state, &p, q.get("request"), loc).await?;
    loc = locale(&req, pending.request.ui_locales.as_deref());
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        )));
    };
    if !mfa::is_enabled(&state.pool, &p.tenant, &user_id)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?
    {
        // A second factor is needed but none is enrolled yet: enrol first.
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/mfa/enroll"),
            pending.id
        )));
    }
    let (seed, set) = csrf_seed(&state, &req);
    let body = mfa_page(&state, &p, &pending, &seed, loc, None)?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(&state, csrf_cookie_name(&state).into(), seed, None));
    }
    Ok(resp.body(body))
}

/// `POST {issuer}/mfa` — checks the TOTP or backup code, then completes the sign-in. Wrong
/// codes count towards the address's lockout like wrong passwords.
pub async fn mfa_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        )));
    };
    let user = accounts::find_user(&state.pool, &p.tenant, &user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| PageError::bad_request(loc, loc.texts().request_expired))?;
    let ctx = audit_context(&req);
    match mfa::verify(
        state.mfa(),
        &p.tenant,
        &user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(_) => {
            authorization::set_mfa_user(state.authorization(), &p, &pending.id, None).await?;
            let existing = current_session(&state, &req, &p).await?;
            let first = pending.first_factor.clone();
            let pending = Pending {
                mfa_user_id: None,
                first_factor: None,
                ..pending
            };
            let amr = [first.as_deref().unwrap_or("pwd"), "otp"];
            complete_sign_in(&state, &req, &p, pending, &user, existing, &amr, loc).await
        }
        Err(
            mfa::MfaError::InvalidCode
            | mfa::MfaError::NotEnrolled
            | mfa::MfaError::InvalidChallenge
            | mfa::MfaError::AlreadyEnabled
            | mfa::MfaError::Locked { .. },
        ) => {
            audit::record(
                &state.audit,
                AuditEvent::new("mfa.failure", Some(&p.tenant)).actor(Some(&user.id)),
                &ctx,
            );
            let t = loc.texts();
            let (status, message) =
                match accounts::record_failure(&state.pool, &p.tenant, &user.email).await? {
                    Some(until) => {
                        // Locked: the sign-in starts over once the lockout ends.
                        authorization::set_mfa_user(state.authorization(), &p, &pending.id, None)
                            .await?;
                        let minutes = (until - crate::storage::now() + 59) / 60;
                        (
                            StatusCode::LOCKED,
                            format!("{} {} {}", t.account_locked, minutes.max(1), t.minutes),
                        )
                    }
                    None => (StatusCode::UNAUTHORIZED, t.invalid_code.to_string()),
                };
            let seed = csrf_cookie_value(&state, &req);
            let body = mfa_page(&state, &p, &pending, &seed, loc, Some(&message))?;
            Ok(HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(body))
        }
        Err(mfa::MfaError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
    }
}

/// `GET {issuer}/consent?request=…`
pub async fn consent_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let mut loc = locale(&req, None);
    let pending = pending(&state, &p, q.get("request"), loc).await?;
    loc = locale(&req, pending.request.ui_locales.as_deref());
    let Some(session) = current_session(&state, &req, &p).await? else {
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        )));
    };
    let user = accounts::find_user(&state.pool, &p.tenant, &session.user_id).await?;
    let (seed, set) = csrf_seed(&state, &req);
    let t = loc.texts();
    let consent_scopes = pending.request.consent_scopes();
    let page = ConsentPage {
        f: frame(&p, loc),
        action: p.endpoint("/consent"),
        csrf: csrf_token(&state, &seed, &pending.id),
        request_id: &pending.id,
        client_name: &pending.client.name,
        scopes: consent_scopes.iter().map(|s| t.scope(s)).collect(),
        account: user.map(|u| u.email).unwrap_or_default(),
    };
    let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(&state, csrf_cookie_name(&state).into(), seed, None));
    }
    Ok(resp.body(body))
}

/// `POST {issuer}/consent` — "Allow" or "Deny".
pub async fn consent_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(session) = current_session(&state, &req, &p).await? else {
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        )));
    };
    if form.get("decision") != Some("allow") {
        authorization::finish_request(state.authorization(), &p, &pending.id).await?;
        let e = authorization::ErrorRedirect {
            redirect_uri: pending.request.redirect_uri.clone(),
            response_mode: pending.request.response_mode,
            state: pending.request.state.clone(),
            error: "access_denied",
            description: "the user denied the request".into(),
        };
        return respond(&authorization::error_response(&p, &e), loc);
    }
    authorization::grant_consent(
        state.authorization(),
        &p,
        &pending.client,
        &session.user_id,
        &pending.request.consent_scopes(),
    )
    .await?;
    resume(&state, &p, &pending, &session, true, loc).await
}

/// `GET|POST {issuer}/logout` — RP-Initiated Logout 1.0. The post-logout redirect URI must
/// be registered for the client named by `id_token_hint` or `client_id`; otherwise the
/// user sees an error and is not redirected.
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let params = if req.method() == actix_web::http::Method::POST {
        Params::parse(&body)
    } else {
        query_params(&req)
    };
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
            let mut resp = HttpResponse::Ok();
            resp.content_type("text/html; charset=utf-8");
            if set {
                resp.cookie(cookie(&state, csrf_cookie_name(&state).into(), seed, None));
            }
            Ok(resp.body(body))
        }
        None => finish_logout(&state, &p, loc, redirect, None),
    }
}

pub(super) fn finish_logout(
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

/// `GET {issuer}/branding.css` — the tenant's accent colour (kept out of the pages so the
/// CSP needs no inline style).
pub async fn branding_css(TenantProvider(p): TenantProvider) -> HttpResponse {
    let accent = p
        .tenant
        .settings
        .branding
        .accent_color
        .as_deref()
        .filter(|c| {
            c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .unwrap_or("#2b59c3");
    HttpResponse::Ok()
        .content_type("text/css")
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .body(format!(":root {{ --accent: {accent}; }}\n"))
}

/// `GET /static/{file}` — the stylesheet and the form-post script, embedded in the binary.
pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    let (body, ctype): (&'static str, &str) = match path.as_str() {
        "style.css" => (include_str!("../../static/style.css"), "text/css"),
        "form_post.js" => (include_str!("../../static/form_post.js"), "text/javascript"),
        _ => return crate::error::not_found(),
    };
    HttpResponse::Ok()
        .content_type(ctype)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

/// `GET {issuer}/verify-email?token=…` — the link of the verification mail.
pub async fn verify_email_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let loc = locale(&req, None);
    let t = loc.texts();
    let (status, title, text) =
        match accounts::verify_email(&state.pool, &p.tenant, q.get("token").unwrap_or("")).await {
            Ok(()) => (
                StatusCode::OK,
                t.email_verified_title,
                t.email_verified_text,
            ),
            Err(AccountError::InvalidToken) => {
                (StatusCode::BAD_REQUEST, t.error_title, t.link_invalid)
            }
            Err(e) => return Err(PageError::from(e)),
        };
    html(
        status,
        MessagePage {
            f: frame(&p, loc),
            title,
            text,
            back: None,
        },
    )
}

fn reset_page<'a>(
    state: &AppState,
    p: &'a Provider,
    seed: &str,
    token: &'a str,
    loc: Locale,
    error: Option<&'a str>,
) -> ResetPasswordPage<'a> {
    ResetPasswordPage {
        f: frame(p, loc),
        action: p.endpoint("/reset-password"),
        csrf: csrf_token(state, seed, "reset"),
        token,
        error,
    }
}

/// `GET {issuer}/reset-password?token=…` — the form of the reset mail's link.
pub async fn reset_password_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let loc = locale(&req, None);
    let (seed, set) = csrf_seed(&state, &req);
    let body = reset_page(&state, &p, &seed, q.get("token").unwrap_or(""), loc, None)
        .render()
        .map_err(|e| PageError::unexpected(loc, &e))?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(&state, csrf_cookie_name(&state).into(), seed, None));
    }
    Ok(resp.body(body))
}

/// `POST {issuer}/reset-password` — sets the new password (policy and history apply).
pub async fn reset_password_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    check_csrf(&state, &req, &form, "reset", loc)?;
    let token = form.get("token").unwrap_or("");
    let t = loc.texts();
    match accounts::reset_password(
        &state.pool,
        &state.hasher,
        &p.tenant,
        token,
        form.get("new_password").unwrap_or(""),
    )
    .await
    {
        Ok(()) => {
            audit::record(
                &state.audit,
                AuditEvent::new("password.reset", Some(&p.tenant)),
                &audit_context(&req),
            );
            html(
                StatusCode::OK,
                MessagePage {
                    f: frame(&p, loc),
                    title: t.reset_title,
                    text: t.password_set_text,
                    back: None,
                },
            )
        }
        Err(AccountError::InvalidToken) => html(
            StatusCode::BAD_REQUEST,
            MessagePage {
                f: frame(&p, loc),
                title: t.error_title,
                text: t.link_invalid,
                back: None,
            },
        ),
        Err(e @ (AccountError::WeakPassword(_) | AccountError::PasswordReused)) => {
            let seed = csrf_cookie_value(&state, &req);
            let message = e.to_string();
            let body = reset_page(&state, &p, &seed, token, loc, Some(&message))
                .render()
                .map_err(|e| PageError::unexpected(loc, &e))?;
            Ok(HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY)
                .content_type("text/html; charset=utf-8")
                .body(body))
        }
        Err(e) => Err(PageError::from(e)),
    }
}

/// `GET {issuer}/mfa/enroll?request=…` — enrolment required by the tenant's MFA policy:
/// the QR code (SVG, rendered here) and the secret in text, then a first code.
pub async fn mfa_enroll_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let mut loc = locale(&req, None);
    let pending = pending(&state, &p, q.get("request"), loc).await?;
    loc = locale(&req, pending.request.ui_locales.as_deref());
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        )));
    };
    let user = accounts::find_user(&state.pool, &p.tenant, &user_id)
        .await?
        .ok_or_else(|| PageError::bad_request(loc, loc.texts().request_expired))?;
    let enrollment = mfa::setup(state.mfa(), &p.tenant, &user.id, &user.email)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?;
    let (seed, set) = csrf_seed(&state, &req);
    let page = MfaEnrollPage {
        f: frame(&p, loc),
        action: p.endpoint("/mfa/enroll"),
        csrf: csrf_token(&state, &seed, &pending.id),
        request_id: &pending.id,
        qr_svg: &enrollment.qr_svg,
        secret: &enrollment.secret,
        error: None,
    };
    let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(&state, csrf_cookie_name(&state).into(), seed, None));
    }
    Ok(resp.body(body))
}

/// `POST {issuer}/mfa/enroll` — a first valid code enables TOTP; the backup codes are shown
/// once, with the way to continue.
pub async fn mfa_enroll_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        )));
    };
    let user = accounts::find_user(&state.pool, &p.tenant, &user_id)
        .await?
        .ok_or_else(|| PageError::bad_request(loc, loc.texts().request_expired))?;
    let codes = match mfa::enable(
        state.mfa(),
        &p.tenant,
        &user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(codes) => codes,
        Err(mfa::MfaError::Unexpected(e)) => return Err(PageError::unexpected(loc, &e)),
        Err(_) => {
            // Start again with a fresh secret; say why.
            let enrollment = mfa::setup(state.mfa(), &p.tenant, &user.id, &user.email)
                .await
                .map_err(|e| PageError::unexpected(loc, &e))?;
            let seed = csrf_cookie_value(&state, &req);
            let page = MfaEnrollPage {
                f: frame(&p, loc),
                action: p.endpoint("/mfa/enroll"),
                csrf: csrf_token(&state, &seed, &pending.id),
                request_id: &pending.id,
                qr_svg: &enrollment.qr_svg,
                secret: &enrollment.secret,
                error: Some(loc.texts().invalid_code),
            };
            let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
            return Ok(HttpResponse::build(StatusCode::UNAUTHORIZED)
                .content_type("text/html; charset=utf-8")
                .body(body));
        }
    };
    audit::record(
        &state.audit,
        AuditEvent::new("mfa.enabled", Some(&p.tenant)).actor(Some(&user.id)),
        &audit_context(&req),
    );
    authorization::set_mfa_user(state.authorization(), &p, &pending.id, None).await?;
    let amr = [pending.first_factor.as_deref().unwrap_or("pwd"), "otp"];
    let existing = current_session(&state, &req, &p).await?;
    let started = establish_session(&state, &req, &p, &pending, &user, existing, &amr).await?;
    let page = BackupCodesPage {
        f: frame(&p, loc),
        codes: &codes,
        continue_action: p.endpoint("/continue"),
        request_id: &pending.id,
    };
    let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .cookie(session_cookie(&state, &p, &started))
        .body(body))
}

/// `GET {issuer}/continue?request=…` — continues a request after an interstitial page (the
/// backup codes), in the session that authenticated for it.
pub async fn continue_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let mut loc = locale(&req, None);
    let pending = pending(&state, &p, q.get("request"), loc).await?;
    loc = locale(&req, pending.request.ui_locales.as_deref());
    match current_session(&state, &req, &p).await? {
        Some(s) => resume(&state, &p, &pending, &s, false, loc).await,
        None => Ok(see_other(&format!(
            "{}?request={}",
            p.endpoint("/login"),
            pending.id
        ))),
    }
}

/// One row of the account page's session list.
struct SessionRowView {
    sid: String,
    when: String,
    ip: String,
    agent: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    f: Frame<'a>,
    base: &'a str,
    csrf: String,
    email: &'a str,
    notice: Option<&'a str>,
    error: Option<&'a str>,
    mfa_enabled: bool,
    remaining_codes: i64,
    sessions: Vec<SessionRowView>,
    linked: Vec<LinkedView>,
    linkable: Vec<LinkableView>,
}

/// A linked sign-in method on the account page.
struct LinkedView {
    connection_id: String,
    name: String,
    since: String,
    last_used: String,
}

/// A connection the user may link.
struct LinkableView {
    id: String,
    name: String,
}

/// "Link your sign-in method": a federated sign-in met an existing account.
#[derive(Template)]
#[template(path = "link_account.html")]
pub(super) struct LinkAccountPage<'a> {
    pub f: Frame<'a>,
    pub text: &'a str,
    pub action: &'a str,
}

/// The cookie carrying a [`federation::PendingLink`] while its owner signs in.
pub(super) fn link_cookie_name(state: &AppState) -> &'static str {
    if state.config.is_https() {
        "__Host-portcullis_link"
    } else {
        "portcullis_link"
    }
}

/// After a sign-in with a method the account already had: links the identity waiting in
/// the browser (when it was matched to this very account) and audits it. `true` when a
/// link cookie was there (to be cleared, linked or not).
async fn finish_pending_link(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    user: &accounts::User,
) -> Result<bool, PageError> {
    let Some(c) = req.cookie(link_cookie_name(state)) else {
        return Ok(false);
    };
    if let Some(link) = federation::PendingLink::open(&state.master_key, &p.tenant, c.value()) {
        let linked = federation::finish_link(state.federation(), &p.tenant, &link, user)
            .await
            .map_err(|e| PageError::unexpected(Locale::En, &anyhow::anyhow!(e.to_string())))?;
        if linked {
            audit::record(
                &state.audit,
                AuditEvent::new("federation.linked", Some(&p.tenant))
                    .actor(Some(&user.id))
                    .detail("connection", link.connection_id.clone())
                    .detail("channel", "sign_in"),
                &audit_context(req),
            );
        }
    }
    Ok(true)
}

const ACCOUNT_FORM: &str = "account";

/// The signed-in user of the account pages, or the redirect to sign in first.
pub(super) async fn account_session(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    loc: Locale,
) -> Result<Result<(Session, accounts::User), HttpResponse>, PageError> {
    let Some(session) = current_session(state, req, p).await? else {
        let id = authorization::account_sign_in(state.authorization(), p, Some(loc.tag()))
            .await
            .map_err(PageError::from)?;
        return Ok(Err(see_other(&format!(
            "{}?request={id}",
            p.endpoint("/login")
        ))));
    };
    let user = accounts::find_user(&state.pool, &p.tenant, &session.user_id)
        .await?
        .ok_or_else(|| PageError::bad_request(loc, loc.texts().request_expired))?;
    Ok(Ok((session, user)))
}

/// The common preamble of the account page's forms: the CSRF check, then the signed-in
/// user (or the redirect to sign in first).
pub(super) async fn account_form_session(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    form: &Params,
    loc: Locale,
) -> Result<Result<(Session, accounts::User), HttpResponse>, PageError> {
    check_csrf(state, req, form, ACCOUNT_FORM, loc)?;
    account_session(state, req, p, loc).await
}

pub(super) async fn account_page(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    loc: Locale,
    session: &Session,
    user: &accounts::User,
    message: (StatusCode, Option<&str>, Option<&str>),
) -> Result<HttpResponse, PageError> {
    let mfa_enabled = mfa::is_enabled(&state.pool, &p.tenant, &user.id)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?;
    let remaining_codes = if mfa_enabled {
        mfa::remaining_backup_codes(&state.pool, &user.id)
            .await
            .map_err(|e| PageError::unexpected(loc, &e))?
    } else {
        0
    };
    let sessions = sessions::list_user_sessions(&state.pool, &p.tenant, &user.id)
        .await?
        .into_iter()
        .map(|s| SessionRowView {
            current: s.sid == session.sid,
            when: crate::storage::format_instant(s.created_at),
            ip: s.ip.unwrap_or_else(|| "-".into()),
            agent: s
                .user_agent
                .unwrap_or_else(|| "-".into())
                .chars()
                .take(80)
                .collect(),
            sid: s.sid,
        })
        .collect();
    let linked_rows = federation::linked_methods(state.federation(), &p.tenant, &user.id).await?;
    let linkable = federation::list(&state.pool, &p.tenant)
        .await?
        .into_iter()
        .filter(|c| c.enabled && !linked_rows.iter().any(|m| m.connection_id == c.id))
        .map(|c| LinkableView {
            id: c.id,
            name: c.name,
        })
        .collect();
    let linked = linked_rows
        .into_iter()
        .map(|m| LinkedView {
            since: crate::storage::format_instant(m.created_at),
            last_used: crate::storage::format_instant(m.last_login_at),
            connection_id: m.connection_id,
            name: m.name,
        })
        .collect();
    let (seed, set) = csrf_seed(state, req);
    let page = AccountPage {
        linked,
        linkable,
        f: frame(p, loc),
        base: &p.issuer,
        csrf: csrf_token(state, &seed, ACCOUNT_FORM),
        email: &user.email,
        notice: message.1,
        error: message.2,
        mfa_enabled,
        remaining_codes,
        sessions,
    };
    let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
    let mut resp = HttpResponse::build(message.0);
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(state, csrf_cookie_name(state).into(), seed, None));
    }
    Ok(resp.body(body))
}

/// `GET {issuer}/account` — change password, two-step verification, active sessions.
pub async fn account_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    match account_session(&state, &req, &p, loc).await? {
        Ok((session, user)) => {
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (StatusCode::OK, None, None),
            )
            .await
        }
        Err(redirect) => Ok(redirect),
    }
}

/// `POST {issuer}/account/password` — asks for the current password.
pub async fn account_password_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let (session, user) = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let t = loc.texts();
    let outcome = accounts::change_password(
        &state.pool,
        &state.hasher,
        &p.tenant,
        &user.id,
        form.get("current_password").unwrap_or(""),
        form.get("new_password").unwrap_or(""),
    )
    .await;
    match outcome {
        Ok(()) => {
            audit::record(
                &state.audit,
                AuditEvent::new("password.changed", Some(&p.tenant)).actor(Some(&user.id)),
                &audit_context(&req),
            );
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (StatusCode::OK, Some(t.password_changed), None),
            )
            .await
        }
        Err(AccountError::InvalidCredentials) => {
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (StatusCode::UNAUTHORIZED, None, Some(t.invalid_credentials)),
            )
            .await
        }
        Err(e @ (AccountError::WeakPassword(_) | AccountError::PasswordReused)) => {
            let message = e.to_string();
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (StatusCode::UNPROCESSABLE_ENTITY, None, Some(&message)),
            )
            .await
        }
        Err(e) => Err(PageError::from(e)),
    }
}

/// `GET {issuer}/account/mfa` — enrolment: QR code and key.
pub async fn account_mfa_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let (_, user) = match account_session(&state, &req, &p, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let enrollment = match mfa::setup(state.mfa(), &p.tenant, &user.id, &user.email).await {
        Ok(e) => e,
        Err(mfa::MfaError::AlreadyEnabled) => return Ok(see_other(&p.endpoint("/account"))),
        Err(e) => return Err(PageError::unexpected(loc, &e)),
    };
    let (seed, set) = csrf_seed(&state, &req);
    let page = MfaEnrollPage {
        f: frame(&p, loc),
        action: p.endpoint("/account/mfa"),
        csrf: csrf_token(&state, &seed, ACCOUNT_FORM),
        request_id: "",
        qr_svg: &enrollment.qr_svg,
        secret: &enrollment.secret,
        error: None,
    };
    let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("text/html; charset=utf-8");
    if set {
        resp.cookie(cookie(&state, csrf_cookie_name(&state).into(), seed, None));
    }
    Ok(resp.body(body))
}

fn backup_codes_page(
    p: &Provider,
    loc: Locale,
    codes: &[String],
) -> Result<HttpResponse, PageError> {
    html(
        StatusCode::OK,
        BackupCodesPage {
            f: frame(p, loc),
            codes,
            continue_action: p.endpoint("/account"),
            request_id: "",
        },
    )
}

/// `POST {issuer}/account/mfa` — a first code enables TOTP; the backup codes are shown once.
pub async fn account_mfa_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let (session, user) = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    match mfa::enable(
        state.mfa(),
        &p.tenant,
        &user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(codes) => {
            audit::record(
                &state.audit,
                AuditEvent::new("mfa.enabled", Some(&p.tenant)).actor(Some(&user.id)),
                &audit_context(&req),
            );
            backup_codes_page(&p, loc, &codes)
        }
        Err(mfa::MfaError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(_) => {
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (
                    StatusCode::UNAUTHORIZED,
                    None,
                    Some(loc.texts().invalid_code),
                ),
            )
            .await
        }
    }
}

/// `POST {issuer}/account/mfa/disable` — requires a current code or a backup code.
pub async fn account_mfa_disable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let (session, user) = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let t = loc.texts();
    match mfa::disable(
        state.mfa(),
        &p.tenant,
        &user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(()) => {
            audit::record(
                &state.audit,
                AuditEvent::new("mfa.disabled", Some(&p.tenant)).actor(Some(&user.id)),
                &audit_context(&req),
            );
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (StatusCode::OK, Some(t.mfa_disabled_notice), None),
            )
            .await
        }
        Err(mfa::MfaError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(_) => {
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (StatusCode::UNAUTHORIZED, None, Some(t.invalid_code)),
            )
            .await
        }
    }
}

/// `POST {issuer}/account/backup-codes` — new backup codes (requires a current code).
pub async fn account_backup_codes_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let (session, user) = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    match mfa::regenerate_backup_codes(
        state.mfa(),
        &p.tenant,
        &user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(codes) => backup_codes_page(&p, loc, &codes),
        Err(mfa::MfaError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(_) => {
            account_page(
                &state,
                &req,
                &p,
                loc,
                &session,
                &user,
                (
                    StatusCode::UNAUTHORIZED,
                    None,
                    Some(loc.texts().invalid_code),
                ),
            )
            .await
        }
    }
}

/// `POST {issuer}/account/sessions/end` — signs one session out.
pub async fn account_session_end_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let (session, user) = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let sid = form.get("sid").unwrap_or("");
    sessions::end_user_session(&state.pool, &state.outbound, &p, &user.id, sid).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("signout", Some(&p.tenant)).actor(Some(&user.id)),
        &audit_context(&req),
    );
    if sid == session.sid {
        return finish_logout(
            &state,
            &p,
            loc,
            None,
            Some(sessions::cookie_name(&p.tenant.slug)),
        );
    }
    Ok(see_other(&p.endpoint("/account")))
}

/// `POST {issuer}/account/sessions/end-all` — signs out everywhere and revokes every
/// refresh token.
pub async fn account_sessions_end_all_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    FormParams(form): FormParams,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let (_, user) = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    sessions::end_all_user_sessions(&state.pool, &state.outbound, &p, &user.id).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("signout.everywhere", Some(&p.tenant)).actor(Some(&user.id)),
        &audit_context(&req),
    );
    finish_logout(
        &state,
        &p,
        loc,
        None,
        Some(sessions::cookie_name(&p.tenant.slug)),
    )
}
