//! The consent page (`{issuer}/consent`): the client's name, the scopes in words, "Allow"
//! and "Deny".

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::common::{
    csrf_seed, csrf_token, current_session, form_page, frame, locale, pending, pending_form,
    to_step,
};
use super::error::Frame;
use super::flow::{respond, resume};
use crate::accounts::{self};
use crate::authorization::{self};
use crate::error::PageError;
use crate::http::extractors::{query_params, PageForm, TenantProvider};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "pages/consent/consent.html")]
struct ConsentPage<'a> {
    f: Frame<'a>,
    action: String,
    csrf: String,
    request_id: &'a str,
    client_name: &'a str,
    scopes: Vec<&'a str>,
    account: String,
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
        return Ok(to_step(&p, "/login", &pending.id));
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
    Ok(form_page(&state, StatusCode::OK, body, seed, set))
}

/// `POST {issuer}/consent` — "Allow" or "Deny".
pub async fn consent_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let Some(session) = current_session(&state, &req, &p).await? else {
        return Ok(to_step(&p, "/login", &pending.id));
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
