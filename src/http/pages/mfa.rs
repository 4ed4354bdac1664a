//! The second factor of a sign-in: the "Authentication code" page (`{issuer}/mfa`) and the
//! enrolment a required policy imposes (`{issuer}/mfa/enroll`, QR code, then the backup codes).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{
    csrf_cookie_value, csrf_seed, csrf_token, current_session, form_page, frame, locale, pending,
    pending_form, to_step,
};
use super::error::Frame;
use super::flow::{complete_sign_in, establish_session, session_cookie};
use crate::accounts::{self};
use crate::audit::{self, AuditEvent};
use crate::authorization::{self, Pending};
use crate::error::PageError;
use crate::http::extractors::{audit_context, query_params, PageForm, TenantProvider};
use crate::i18n::Locale;
use crate::mfa;
use crate::provider::Provider;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "pages/mfa/code.html")]
struct MfaPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    request_id: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "pages/mfa/enroll.html")]
pub struct MfaEnrollPage<'a> {
    pub f: Frame<'a>,
    pub action: String,
    pub csrf: String,
    pub request_id: &'a str,
    pub qr_svg: &'a str,
    pub secret: &'a str,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "pages/mfa/backup_codes.html")]
pub struct BackupCodesPage<'a> {
    pub f: Frame<'a>,
    pub codes: &'a [String],
    pub continue_action: String,
    pub request_id: &'a str,
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
        return Ok(to_step(&p, "/login", &pending.id));
    };
    if !mfa::is_enabled(&state.pool, &p.tenant, &user_id)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?
    {
        // A second factor is needed but none is enrolled yet: enrol first.
        return Ok(to_step(&p, "/mfa/enroll", &pending.id));
    }
    let (seed, set) = csrf_seed(&state, &req);
    let body = mfa_page(&state, &p, &pending, &seed, loc, None)?;
    Ok(form_page(&state, StatusCode::OK, body, seed, set))
}

/// The user who passed the password step of this request, if still enabled: a user
/// disabled between the steps can neither verify nor enrol a second factor.
async fn password_step_user(
    state: &AppState,
    p: &Provider,
    user_id: &str,
    loc: Locale,
) -> Result<accounts::User, PageError> {
    accounts::find_user(&state.pool, &p.tenant, user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| PageError::bad_request(loc, loc.texts().request_expired))
}

/// `POST {issuer}/mfa` — checks the TOTP or backup code, then completes the sign-in. Wrong
/// codes count towards the address's lockout like wrong passwords.
pub async fn mfa_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Ok(to_step(&p, "/login", &pending.id));
    };
    let user = password_step_user(&state, &p, &user_id, loc).await?;
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
        return Ok(to_step(&p, "/login", &pending.id));
    };
    let user = password_step_user(&state, &p, &user_id, loc).await?;
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
    Ok(form_page(&state, StatusCode::OK, body, seed, set))
}

/// `POST {issuer}/mfa/enroll` — a first valid code enables TOTP; the backup codes are shown
/// once, with the way to continue.
pub async fn mfa_enroll_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Ok(to_step(&p, "/login", &pending.id));
    };
    let user = password_step_user(&state, &p, &user_id, loc).await?;
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
