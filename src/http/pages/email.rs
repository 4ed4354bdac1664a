//! The pages behind the links of mails: e-mail verification and the password reset form.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{
    check_csrf, csrf_cookie_value, csrf_seed, csrf_token, form_page, frame, html, locale,
    MessagePage,
};
use super::error::Frame;
use crate::accounts::{self, AccountError};
use crate::audit::{self, AuditEvent};
use crate::error::PageError;
use crate::http::extractors::{audit_context, query_params, PageForm, TenantProvider};
use crate::i18n::Locale;
use crate::provider::Provider;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "pages/email/reset_password.html")]
struct ResetPasswordPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    token: &'a str,
    error: Option<&'a str>,
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
    Ok(form_page(&state, StatusCode::OK, body, seed, set))
}

/// `POST {issuer}/reset-password` — sets the new password (policy and history apply).
pub async fn reset_password_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
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
