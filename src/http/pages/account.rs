//! The account page (`{issuer}/account`): change password, two-step verification and
//! backup codes, active sessions; each form asks for the signed-in session and a CSRF token.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{
    check_csrf, csrf_seed, csrf_token, current_session, form_page, frame, html, locale,
    no_store_json, see_other, to_step,
};
use super::error::Frame;
use super::logout::finish_logout;
use super::mfa::{BackupCodesPage, MfaEnrollPage};
use crate::accounts::{self, AccountError};
use crate::audit::{self, AuditEvent};
use crate::authorization::{self, Params};
use crate::error::PageError;
use crate::federation::{self};
use crate::http::extractors::{audit_context, PageForm, TenantProvider};
use crate::i18n::Locale;
use crate::mfa;
use crate::passkeys;
use crate::provider::Provider;
use crate::sessions::{self, Session};
use crate::state::AppState;

/// One row of the account page's session list.
struct SessionRowView {
    sid: String,
    when: String,
    ip: String,
    agent: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "pages/account/account.html")]
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
    passkeys: Vec<PasskeyRowView>,
    /// Passkeys work on this server (the public URL has a host name).
    passkeys_on: bool,
}

/// A passkey on the account page.
struct PasskeyRowView {
    id: String,
    name: String,
    created: String,
    last_used: String,
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

const ACCOUNT_FORM: &str = "account";

/// A signed-in user on the account pages: who, in which session, and the page drawn for
/// them.
pub struct AccountVisit<'a> {
    state: &'a AppState,
    req: &'a HttpRequest,
    p: &'a Provider,
    pub loc: Locale,
    pub session: Session,
    pub user: accounts::User,
}

/// The signed-in user of the account pages, or the redirect to sign in first.
pub async fn account_session<'a>(
    state: &'a AppState,
    req: &'a HttpRequest,
    p: &'a Provider,
    loc: Locale,
) -> Result<Result<AccountVisit<'a>, HttpResponse>, PageError> {
    let Some(session) = current_session(state, req, p).await? else {
        let id = authorization::account_sign_in(state.authorization(), p, Some(loc.tag()))
            .await
            .map_err(PageError::from)?;
        return Ok(Err(to_step(p, "/login", &id)));
    };
    let user = accounts::find_user(&state.pool, &p.tenant, &session.user_id)
        .await?
        .ok_or_else(|| PageError::bad_request(loc, loc.texts().request_expired))?;
    Ok(Ok(AccountVisit {
        state,
        req,
        p,
        loc,
        session,
        user,
    }))
}

/// The common preamble of the account page's forms: the CSRF check, then the signed-in
/// user (or the redirect to sign in first).
pub async fn account_form_session<'a>(
    state: &'a AppState,
    req: &'a HttpRequest,
    p: &'a Provider,
    form: &Params,
    loc: Locale,
) -> Result<Result<AccountVisit<'a>, HttpResponse>, PageError> {
    check_csrf(state, req, form, ACCOUNT_FORM, loc)?;
    account_session(state, req, p, loc).await
}

impl AccountVisit<'_> {
    /// The account page with a status and a notice or an error.
    pub async fn page(
        &self,
        status: StatusCode,
        notice: Option<&str>,
        error: Option<&str>,
    ) -> Result<HttpResponse, PageError> {
        account_page(self, (status, notice, error)).await
    }
}

async fn account_page(
    visit: &AccountVisit<'_>,
    message: (StatusCode, Option<&str>, Option<&str>),
) -> Result<HttpResponse, PageError> {
    let AccountVisit {
        state,
        req,
        p,
        loc,
        ref session,
        ref user,
    } = *visit;
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
    let passkeys = passkeys::list(state.passkeys(), &p.tenant, &user.id)
        .await?
        .into_iter()
        .map(|k| PasskeyRowView {
            created: crate::storage::format_instant(k.created_at),
            last_used: k.last_used_at.map_or_else(
                || loc.texts().never.to_string(),
                crate::storage::format_instant,
            ),
            id: k.id,
            name: k.name,
        })
        .collect();
    let (seed, set) = csrf_seed(state, req);
    let page = AccountPage {
        passkeys_on: passkeys::available(&state.config.public_url),
        passkeys,
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
    Ok(form_page(state, message.0, body, seed, set))
}

/// `GET {issuer}/account` — change password, two-step verification, active sessions.
pub async fn account_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    match account_session(&state, &req, &p, loc).await? {
        Ok(account) => account.page(StatusCode::OK, None, None).await,
        Err(redirect) => Ok(redirect),
    }
}

/// `POST {issuer}/account/password` — asks for the current password.
pub async fn account_password_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let account = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let t = loc.texts();
    let outcome = accounts::change_password(
        &state.pool,
        &state.hasher,
        &p.tenant,
        &account.user.id,
        form.get("current_password").unwrap_or(""),
        form.get("new_password").unwrap_or(""),
    )
    .await;
    match outcome {
        Ok(()) => {
            audit::record(
                &state.audit,
                AuditEvent::new("password.changed", Some(&p.tenant)).actor(Some(&account.user.id)),
                &audit_context(&req),
            );
            account
                .page(StatusCode::OK, Some(t.password_changed), None)
                .await
        }
        Err(AccountError::InvalidCredentials) => {
            account
                .page(StatusCode::UNAUTHORIZED, None, Some(t.invalid_credentials))
                .await
        }
        Err(e @ (AccountError::WeakPassword(_) | AccountError::PasswordReused)) => {
            let message = e.to_string();
            account
                .page(StatusCode::UNPROCESSABLE_ENTITY, None, Some(&message))
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
    let account = match account_session(&state, &req, &p, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let enrollment = match mfa::setup(
        state.mfa(),
        &p.tenant,
        &account.user.id,
        &account.user.email,
    )
    .await
    {
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
        passkey_options: None,
    };
    let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
    Ok(form_page(&state, StatusCode::OK, body, seed, set))
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
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let account = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    match mfa::enable(
        state.mfa(),
        &p.tenant,
        &account.user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(codes) => {
            audit::record(
                &state.audit,
                AuditEvent::new("mfa.enabled", Some(&p.tenant)).actor(Some(&account.user.id)),
                &audit_context(&req),
            );
            backup_codes_page(&p, loc, &codes)
        }
        Err(mfa::MfaError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(_) => {
            account
                .page(
                    StatusCode::UNAUTHORIZED,
                    None,
                    Some(loc.texts().invalid_code),
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
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let account = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let t = loc.texts();
    match mfa::disable(
        state.mfa(),
        &p.tenant,
        &account.user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(()) => {
            audit::record(
                &state.audit,
                AuditEvent::new("mfa.disabled", Some(&p.tenant)).actor(Some(&account.user.id)),
                &audit_context(&req),
            );
            account
                .page(StatusCode::OK, Some(t.mfa_disabled_notice), None)
                .await
        }
        Err(mfa::MfaError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(_) => {
            account
                .page(StatusCode::UNAUTHORIZED, None, Some(t.invalid_code))
                .await
        }
    }
}

/// `POST {issuer}/account/backup-codes` — new backup codes (requires a current code).
pub async fn account_backup_codes_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let account = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    match mfa::regenerate_backup_codes(
        state.mfa(),
        &p.tenant,
        &account.user.id,
        form.get("code").unwrap_or(""),
    )
    .await
    {
        Ok(codes) => backup_codes_page(&p, loc, &codes),
        Err(mfa::MfaError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(_) => {
            account
                .page(
                    StatusCode::UNAUTHORIZED,
                    None,
                    Some(loc.texts().invalid_code),
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
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let account = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let sid = form.get("sid").unwrap_or("");
    sessions::end_user_session(&state.pool, &state.outbound, &p, &account.user.id, sid).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("signout", Some(&p.tenant)).actor(Some(&account.user.id)),
        &audit_context(&req),
    );
    if sid == account.session.sid {
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
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let account = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    sessions::end_all_user_sessions(&state.pool, &state.outbound, &p, &account.user.id).await?;
    audit::record(
        &state.audit,
        AuditEvent::new("signout.everywhere", Some(&p.tenant)).actor(Some(&account.user.id)),
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

/// `POST {issuer}/account/passkeys/options` — starts registering a passkey (the account
/// page's script asks; CSRF-checked like the forms): options for `navigator.credentials.create`.
pub async fn passkey_options_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let visit = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    let options = passkeys::start_registration(state.passkeys(), &rp, &p.tenant, &visit.user)
        .await
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    Ok(no_store_json(options))
}

/// `POST {issuer}/account/passkeys` — finishes registering a passkey: `ceremony`,
/// `credential` (the authenticator's answer) and the `name` the user gave it.
pub async fn passkey_add_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let visit = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    let answer = passkeys::Answer {
        ceremony: form.get("ceremony").unwrap_or(""),
        name: form.get("name").unwrap_or(""),
        response: form.get("credential").unwrap_or(""),
    };
    let t = loc.texts();
    match passkeys::finish_registration(
        state.passkeys(),
        &rp,
        &p.tenant,
        &visit.user,
        answer,
        &audit_context(&req),
    )
    .await
    {
        Ok(_) => {
            visit
                .page(StatusCode::OK, Some(t.passkey_added), None)
                .await
        }
        Err(passkeys::PasskeyError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(passkeys::PasskeyError::Invalid(why)) => {
            visit.page(StatusCode::BAD_REQUEST, None, Some(why)).await
        }
        Err(_) => {
            visit
                .page(StatusCode::BAD_REQUEST, None, Some(t.passkey_failed))
                .await
        }
    }
}

/// `POST {issuer}/account/passkeys/remove` — removes one of the user's passkeys.
pub async fn passkey_remove_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let visit = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(v) => v,
        Err(redirect) => return Ok(redirect),
    };
    let removed = passkeys::remove(
        state.passkeys(),
        &p.tenant,
        &visit.user.id,
        form.get("passkey").unwrap_or(""),
        &audit_context(&req),
    )
    .await?;
    if removed {
        visit
            .page(StatusCode::OK, Some(loc.texts().passkey_removed), None)
            .await
    } else {
        Err(PageError::new(
            StatusCode::NOT_FOUND,
            loc,
            "This passkey does not exist.",
        ))
    }
}
