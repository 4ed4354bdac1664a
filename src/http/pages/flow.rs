//! The authorization request's way through the pages: `{issuer}/authorize`, then sign-in,
//! second factor and consent as `authorization::decide` says, the session they start, and the
//! response to the relying party (redirect or form_post) once nothing more is owed.

use actix_web::cookie::Cookie;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{cookie, current_session, locale, pending, see_other, to_step};
use super::link::{finish_pending_link, link_cookie_name};
use crate::accounts::{self};
use crate::audit::{self, AuditEvent};
use crate::authorization::{self, AuthorizeError, CodeResponse, Next, Pending, ResponseMode};
use crate::error::PageError;
use crate::federation::{self, slo};
use crate::http::extractors::{audit_context, query_params, PageParams, TenantProvider};
use crate::i18n::{Locale, Texts};
use crate::mfa;
use crate::provider::Provider;
use crate::sessions::{self, Session};
use crate::state::AppState;
use crate::tenants::MfaPolicy;

#[derive(Template)]
#[template(path = "pages/flow/form_post.html")]
struct FormPostPage<'a> {
    lang: &'static str,
    t: &'static Texts,
    action: &'a str,
    fields: &'a [(&'static str, String)],
}

/// Sends the authorization response to the client: a redirect with the parameters in
/// the query, or an auto-submitting form (OAuth 2.0 Form Post Response Mode).
pub fn respond(resp: &CodeResponse, loc: Locale) -> Result<HttpResponse, PageError> {
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

/// `GET|POST {issuer}/authorize` (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2).
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageParams(params): PageParams,
) -> Result<HttpResponse, PageError> {
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
            Ok(to_step(&p, "/consent", &id))
        }
        (Next::SecondFactor, Some(s)) => {
            let id = authorization::save_request(state.authorization(), &p, &request, None)
                .await
                .map_err(PageError::from)?;
            authorization::set_mfa_user(state.authorization(), &p, &id, Some(&s.user_id)).await?;
            Ok(to_step(&p, "/mfa", &id))
        }
        (Next::SignIn | Next::Consent | Next::Issue | Next::SecondFactor, _) => {
            let id = authorization::save_request(state.authorization(), &p, &request, None)
                .await
                .map_err(PageError::from)?;
            Ok(to_step(&p, "/login", &id))
        }
    }
}

/// Continues a pending request once the user has signed in (or consented).
pub async fn resume(
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
        Next::SignIn => Ok(to_step(p, "/login", &pending.id)),
        Next::SecondFactor => {
            authorization::set_mfa_user(
                state.authorization(),
                p,
                &pending.id,
                Some(&session.user_id),
            )
            .await?;
            Ok(to_step(p, "/mfa", &pending.id))
        }
        Next::Consent if !consented => Ok(to_step(p, "/consent", &pending.id)),
        Next::Consent | Next::Issue => {
            // A request completes once: a replayed form cannot mint a second code.
            if !authorization::finish_request(state.authorization(), p, &pending.id).await? {
                return Err(PageError::bad_request(loc, loc.texts().request_expired));
            }
            if pending.request.account_page {
                // Our own page (account, console), whose URL is this request's redirect URI.
                return Ok(see_other(&pending.request.redirect_uri));
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

/// The page of the second factor this sign-in still owes (`/mfa`, or `/mfa/enroll` when
/// the factor is required but not enrolled), if any: the stricter of the tenant's and the
/// client's policy applies, and a client-declared privileged scope requires it.
pub async fn second_factor_step(
    state: &AppState,
    p: &Provider,
    pending: &Pending,
    user_id: &str,
    loc: Locale,
) -> Result<Option<&'static str>, PageError> {
    let passkeys_on = crate::passkeys::available(&state.config.public_url);
    let enrolled = mfa::second_factors(&state.pool, &p.tenant, user_id, passkeys_on)
        .await
        .map_err(|e| PageError::unexpected(loc, &e))?
        .any();
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
pub async fn establish_session(
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
pub async fn start_session(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    user: &accounts::User,
    existing: Option<Session>,
    amr: &[&str],
) -> Result<sessions::Started, PageError> {
    let ctx = audit_context(req);
    let acr = sessions::acr_for(amr);
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
pub fn session_cookie<'a>(
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
pub async fn complete_sign_in(
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
        None => Ok(to_step(&p, "/login", &pending.id)),
    }
}
