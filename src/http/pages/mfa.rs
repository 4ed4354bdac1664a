//! The second factor of a sign-in: the "Authentication code" page (`{issuer}/mfa`, which also
//! offers the user's passkeys) and the enrolment a required policy imposes
//! (`{issuer}/mfa/enroll`: TOTP by QR code, then the backup codes; or a new passkey).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{
    csrf_cookie_value, csrf_seed, csrf_token, current_session, form_page, frame, locale,
    no_store_json, pending, pending_form, to_step,
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
use crate::passkeys;
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
    /// The user has TOTP (and so backup codes): the code form is shown.
    totp: bool,
    /// Where the passkey ceremony starts, when the user has a passkey and passkeys work here.
    passkey_options: Option<String>,
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
    /// Where registering a passkey instead of TOTP starts (sign-in enrolment only; the
    /// account page has its own passkey section).
    pub passkey_options: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/mfa/backup_codes.html")]
pub struct BackupCodesPage<'a> {
    pub f: Frame<'a>,
    pub codes: &'a [String],
    pub continue_action: String,
    pub request_id: &'a str,
}

async fn factors(
    state: &AppState,
    p: &Provider,
    user_id: &str,
    loc: Locale,
) -> Result<mfa::SecondFactors, PageError> {
    let passkeys_on = passkeys::available(&state.config.public_url);
    mfa::second_factors(&state.pool, &p.tenant, user_id, passkeys_on)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))
}

async fn mfa_page(
    state: &AppState,
    p: &Provider,
    pending: &Pending,
    user_id: &str,
    seed: &str,
    loc: Locale,
    error: Option<&str>,
) -> Result<String, PageError> {
    let has = factors(state, p, user_id, loc).await?;
    MfaPage {
        f: frame(p, loc),
        action: p.endpoint("/mfa"),
        csrf: csrf_token(state, seed, &pending.id),
        request_id: &pending.id,
        error,
        totp: has.totp,
        passkey_options: has.passkey.then(|| p.endpoint("/mfa/passkey/options")),
    }
    .render()
    .map_err(|e| PageError::unexpected(loc, &e))
}

/// `GET {issuer}/mfa?request=…` — the second-factor page of a sign-in: the "Authentication
/// code" form for TOTP users, "Use a passkey" for users with a passkey.
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
    if !factors(&state, &p, &user_id, loc).await?.any() {
        // A second factor is needed but none is enrolled yet: enrol first.
        return Ok(to_step(&p, "/mfa/enroll", &pending.id));
    }
    let (seed, set) = csrf_seed(&state, &req);
    let body = mfa_page(&state, &p, &pending, &user_id, &seed, loc, None).await?;
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

/// `POST {issuer}/mfa/passkey/options` — starts the passkey ceremony of the second factor
/// (the MFA page's script asks; CSRF-checked like the form): options for
/// `navigator.credentials.get` allowing the passkeys of the user who gave their password.
pub async fn mfa_passkey_options_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Err(PageError::bad_request(loc, loc.texts().request_expired));
    };
    let user = password_step_user(&state, &p, &user_id, loc).await?;
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    let options = passkeys::start_second_factor(state.passkeys(), &rp, &p.tenant, &user.id)
        .await
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    Ok(no_store_json(options))
}

/// The passkey answer of the MFA page: the methods it proved, or None when it does not
/// verify (or is a clone, audited as such).
async fn passkey_factor(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    user: &accounts::User,
    form: &authorization::Params,
    loc: Locale,
) -> Result<Option<Vec<&'static str>>, PageError> {
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    match passkeys::finish_second_factor(
        state.passkeys(),
        &rp,
        &p.tenant,
        &user.id,
        form.get("ceremony").unwrap_or(""),
        form.get("credential").unwrap_or(""),
        &audit_context(req),
    )
    .await
    {
        Ok(signed) => Ok(Some(signed.amr)),
        Err(passkeys::PasskeyError::Unexpected(e)) => Err(PageError::unexpected(loc, &e)),
        Err(_) => Ok(None),
    }
}

/// `POST {issuer}/mfa` — checks the TOTP or backup code (or, with `action=passkey`, the
/// passkey's answer), then completes the sign-in. Failures count towards the address's
/// lockout like wrong passwords.
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
    let passkey = form.get("action") == Some("passkey");
    let given = if passkey {
        passkey_factor(&state, &req, &p, &user, &form, loc).await?
    } else {
        match mfa::verify(
            state.mfa(),
            &p.tenant,
            &user.id,
            form.get("code").unwrap_or(""),
        )
        .await
        {
            Ok(_) => Some(vec!["otp"]),
            Err(
                mfa::MfaError::InvalidCode
                | mfa::MfaError::NotEnrolled
                | mfa::MfaError::InvalidChallenge
                | mfa::MfaError::AlreadyEnabled
                | mfa::MfaError::Locked { .. },
            ) => None,
            Err(mfa::MfaError::Unexpected(e)) => return Err(PageError::unexpected(loc, &e)),
        }
    };
    if let Some(methods) = given {
        authorization::set_mfa_user(state.authorization(), &p, &pending.id, None).await?;
        let existing = current_session(&state, &req, &p).await?;
        let first = pending.first_factor.clone();
        let mut amr = vec![first.as_deref().unwrap_or("pwd")];
        amr.extend(methods);
        let pending = Pending {
            mfa_user_id: None,
            first_factor: None,
            ..pending
        };
        return complete_sign_in(&state, &req, &p, pending, &user, existing, &amr, loc).await;
    }
    audit::record(
        &state.audit,
        AuditEvent::new("mfa.failure", Some(&p.tenant))
            .actor(Some(&user.id))
            .detail("method", if passkey { "passkey" } else { "code" }),
        &audit_context(&req),
    );
    let t = loc.texts();
    let (status, message) =
        match accounts::record_failure(&state.pool, &p.tenant, &user.email).await? {
            Some(until) => {
                // Locked: the sign-in starts over once the lockout ends.
                authorization::set_mfa_user(state.authorization(), &p, &pending.id, None).await?;
                let minutes = (until - crate::storage::now() + 59) / 60;
                (
                    StatusCode::LOCKED,
                    format!("{} {} {}", t.account_locked, minutes.max(1), t.minutes),
                )
            }
            None if passkey => (StatusCode::UNAUTHORIZED, t.passkey_failed.to_string()),
            None => (StatusCode::UNAUTHORIZED, t.invalid_code.to_string()),
        };
    let seed = csrf_cookie_value(&state, &req);
    let body = mfa_page(&state, &p, &pending, &user.id, &seed, loc, Some(&message)).await?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// The enrolment page with a fresh TOTP secret (each view starts again), and the passkey
/// alternative where passkeys work.
async fn enroll_page(
    state: &AppState,
    p: &Provider,
    pending: &Pending,
    user: &accounts::User,
    seed: &str,
    loc: Locale,
    error: Option<&str>,
) -> Result<String, PageError> {
    let enrollment = mfa::setup(state.mfa(), &p.tenant, &user.id, &user.email)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?;
    MfaEnrollPage {
        f: frame(p, loc),
        action: p.endpoint("/mfa/enroll"),
        csrf: csrf_token(state, seed, &pending.id),
        request_id: &pending.id,
        qr_svg: &enrollment.qr_svg,
        secret: &enrollment.secret,
        error,
        passkey_options: passkeys::available(&state.config.public_url)
            .then(|| p.endpoint("/mfa/enroll/passkey/options")),
    }
    .render()
    .map_err(|e| PageError::unexpected(loc, &e))
}

/// `GET {issuer}/mfa/enroll?request=…` — enrolment required by the tenant's MFA policy:
/// the QR code (SVG, rendered here) and the secret in text, then a first code; or "Add a
/// passkey" instead.
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
    let (seed, set) = csrf_seed(&state, &req);
    let body = enroll_page(&state, &p, &pending, &user, &seed, loc, None).await?;
    Ok(form_page(&state, StatusCode::OK, body, seed, set))
}

/// `POST {issuer}/mfa/enroll/passkey/options` — starts registering a passkey as the
/// second factor of the user who gave their password (the enrolment page's script asks).
pub async fn mfa_enroll_passkey_options_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(user_id) = pending.mfa_user_id.clone() else {
        return Err(PageError::bad_request(loc, loc.texts().request_expired));
    };
    let user = password_step_user(&state, &p, &user_id, loc).await?;
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    let options = passkeys::start_registration(state.passkeys(), &rp, &p.tenant, &user)
        .await
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    Ok(no_store_json(options))
}

/// `POST {issuer}/mfa/enroll` — a first valid code enables TOTP and the backup codes are
/// shown once, with the way to continue; or (`action=passkey`) the new passkey is
/// registered and the sign-in completes.
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
    if form.get("action") == Some("passkey") {
        return enroll_passkey(&state, &req, &p, pending, &user, &form, loc).await;
    }
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
            let seed = csrf_cookie_value(&state, &req);
            let error = Some(loc.texts().invalid_code);
            let body = enroll_page(&state, &p, &pending, &user, &seed, loc, error).await?;
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

/// Enrolment with a passkey: registered to the user (audited `passkey.registered`), it is
/// the second factor of this sign-in, which completes (`amr` pwd + hwk/swk + user).
async fn enroll_passkey(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    pending: Pending,
    user: &accounts::User,
    form: &authorization::Params,
    loc: Locale,
) -> Result<HttpResponse, PageError> {
    let rp = state
        .relying_party(&p.tenant)
        .map_err(|e| PageError::from(e).in_locale(loc))?;
    let answer = passkeys::Answer {
        ceremony: form.get("ceremony").unwrap_or(""),
        name: form.get("name").unwrap_or(""),
        response: form.get("credential").unwrap_or(""),
    };
    let ctx = audit_context(req);
    let registered =
        passkeys::finish_registration(state.passkeys(), &rp, &p.tenant, user, answer, &ctx).await;
    let why = match registered {
        Ok(r) => {
            authorization::set_mfa_user(state.authorization(), p, &pending.id, None).await?;
            let first = pending.first_factor.clone();
            let mut amr = vec![first.as_deref().unwrap_or("pwd")];
            amr.extend(r.amr);
            let existing = current_session(state, req, p).await?;
            let pending = Pending {
                mfa_user_id: None,
                first_factor: None,
                ..pending
            };
            return complete_sign_in(state, req, p, pending, user, existing, &amr, loc).await;
        }
        Err(passkeys::PasskeyError::Unexpected(e)) => return Err(PageError::unexpected(loc, &e)),
        Err(passkeys::PasskeyError::Invalid(why)) => why,
        Err(
            passkeys::PasskeyError::NotVerified
            | passkeys::PasskeyError::Cloned
            | passkeys::PasskeyError::Unavailable,
        ) => loc.texts().passkey_failed,
    };
    let seed = csrf_cookie_value(state, req);
    let body = enroll_page(state, p, &pending, user, &seed, loc, Some(why)).await?;
    Ok(HttpResponse::build(StatusCode::BAD_REQUEST)
        .content_type("text/html; charset=utf-8")
        .body(body))
}
