//! Federation endpoints: starting an upstream sign-in (sign-in page buttons and
//! `GET /api/v1/auth/sso/login`), the OIDC callback, the SAML ACS and SP metadata. The
//! protocol work is in [`crate::federation`]; the end of a federated sign-in joins the
//! password sign-in's path (second factor, session, code for the relying party).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::extractors::{audit_context, query_params, PageForm, TenantProvider};
use super::pages::account::{account_form_session, account_session};
use super::pages::common::{
    cookie, csrf_cookie_value, current_session, frame, html, locale, pending_form, see_other,
    to_step, Back, MessagePage,
};
use super::pages::flow::{complete_sign_in, second_factor_step, session_cookie, start_session};
use super::pages::link::{link_cookie_name, LinkAccountPage};
use super::pages::logout::finish_logout;
use super::pages::sign_in::{sign_in_page, SignInView};
use crate::audit::{self, AuditEvent};
use crate::authorization::{self, ErrorRedirect, Pending};
use crate::crypto;
use crate::error::{ApiError, PageError};
use crate::federation::{
    self, oidc, saml, slo, Connection, FederationError, Protocol, UpstreamIdentity,
};
use crate::first_party;
use crate::i18n::Locale;
use crate::provider::Provider;
use crate::state::AppState;
use crate::storage::federation::FlowRow;

/// The cookie binding an OIDC upstream flow to the browser that started it (login CSRF).
fn browser_cookie_name(state: &AppState) -> &'static str {
    if state.config.is_https() {
        "__Host-portcullis_fed"
    } else {
        "portcullis_fed"
    }
}

/// A federated sign-in that failed: logged, audited with the upstream's identifiers, and
/// shown on a page that leads back to the relying party with an OAuth error when a
/// request is pending.
async fn failure(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    conn: Option<&Connection>,
    pending: Option<&Pending>,
    err: FederationError,
) -> Result<HttpResponse, PageError> {
    let loc = locale(req, pending.and_then(|x| x.request.ui_locales.as_deref()));
    let (reason, message) = match err {
        FederationError::LinkRequired(link) => {
            return link_required(state, req, p, pending, &link, loc).await
        }
        FederationError::Failed { reason, message } => (reason, message),
        FederationError::Invalid(m) => ("misconfigured", m),
        FederationError::NotFound => ("unknown_connection", "Single sign-on is not set up.".into()),
        FederationError::Unexpected(e) => return Err(PageError::unexpected(loc, &e)),
    };
    tracing::info!(
        tenant = %p.tenant.slug,
        connection = conn.map(|c| c.id.as_str()).unwrap_or("-"),
        reason,
        "federated sign-in failed"
    );
    let mut event = AuditEvent::new("federation.failure", Some(&p.tenant)).detail("reason", reason);
    if let Some(c) = conn {
        event = event
            .detail("connection", c.id.clone())
            .detail("protocol", c.protocol.as_str());
    }
    if let Some(x) = pending {
        event = event.client(&x.client.id);
    }
    audit::record(&state.audit, event, &audit_context(req));
    let back = match pending {
        Some(x) => {
            authorization::finish_request(state.authorization(), p, &x.id).await?;
            let e = ErrorRedirect {
                redirect_uri: x.request.redirect_uri.clone(),
                response_mode: x.request.response_mode,
                state: x.request.state.clone(),
                error: "access_denied",
                description: format!("federated sign-in failed: {reason}"),
            };
            Some(Back::from(&authorization::error_response(p, &e)))
        }
        None => None,
    };
    let t = loc.texts();
    let text = format!("{message} ({reason})");
    html(
        StatusCode::BAD_REQUEST,
        MessagePage {
            f: frame(p, loc),
            title: t.sso_failed_title,
            text: &text,
            back,
        },
    )
}

/// "Link your sign-in method": the upstream identity's address belongs to an account it may
/// not take over. The identity waits in a sealed cookie while the person signs in with the
/// account's own method (the pending request's sign-in page, or the account page's), and
/// is linked then. The pending request stays open.
async fn link_required(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    pending: Option<&Pending>,
    link: &federation::PendingLink,
    loc: Locale,
) -> Result<HttpResponse, PageError> {
    let mut event = AuditEvent::new("federation.failure", Some(&p.tenant))
        .actor(Some(&link.user_id))
        .detail("reason", "link_required")
        .detail("connection", link.connection_id.clone());
    if let Some(x) = pending {
        event = event.client(&x.client.id);
    }
    audit::record(&state.audit, event, &audit_context(req));
    let sealed = link
        .seal(&state.master_key, &p.tenant)
        .map_err(|e| PageError::unexpected(loc, &anyhow::anyhow!(e.to_string())))?;
    let action = match pending {
        Some(x) => format!("{}?request={}", p.endpoint("/login"), x.id),
        None => p.endpoint("/account/link"),
    };
    let text = loc
        .texts()
        .link_text
        .replace("{email}", &link.email)
        .replace("{connection}", &link.connection_name);
    let mut resp = html(
        StatusCode::CONFLICT,
        LinkAccountPage {
            f: frame(p, loc),
            text: &text,
            action: &action,
        },
    )?;
    resp.add_cookie(&cookie(
        state,
        link_cookie_name(state).into(),
        sealed,
        Some(600),
    ))
    .map_err(|e| PageError::unexpected(loc, &e))?;
    Ok(resp)
}

/// `GET {issuer}/account/link` — from the "Link your sign-in method" page without a pending
/// request: a fresh sign-in (the account's own method) that returns to the account page,
/// where the waiting method is then linked.
pub async fn account_link_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let id = authorization::account_sign_in(state.authorization(), &p, Some(loc.tag()))
        .await
        .map_err(PageError::from)?;
    Ok(to_step(&p, "/login", &id))
}

/// `POST {issuer}/account/linked/add` — links another method to the signed-in user: a
/// federated sign-in at that connection whose identity is linked instead of signed in.
pub async fn account_linked_add_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let user = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(account) => account.user,
        Err(redirect) => return Ok(redirect),
    };
    let conn = match federation::find(&state.pool, &p.tenant, form.get("connection").unwrap_or(""))
        .await?
    {
        Some(c) if c.enabled => c,
        _ => return Err(PageError::bad_request(loc, loc.texts().request_expired)),
    };
    match begin(&state, &req, &p, &conn, None, Some(&user.id)).await {
        Ok(r) => Ok(r),
        Err(e) => failure(&state, &req, &p, Some(&conn), None, e).await,
    }
}

/// `POST {issuer}/account/linked/remove` — unlinks a method, never the account's last way
/// to sign in.
pub async fn account_linked_remove_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let account = match account_form_session(&state, &req, &p, &form, loc).await? {
        Ok(account) => account,
        Err(redirect) => return Ok(redirect),
    };
    let user = &account.user;
    let connection = form.get("connection").unwrap_or("");
    let t = loc.texts();
    let message = match federation::unlink(state.federation(), &p.tenant, user, connection).await {
        Ok(()) => {
            audit::record(
                &state.audit,
                AuditEvent::new("federation.unlinked", Some(&p.tenant))
                    .actor(Some(&user.id))
                    .detail("connection", connection.to_string()),
                &audit_context(&req),
            );
            (StatusCode::OK, Some(t.unlinked_notice), None)
        }
        Err(FederationError::Failed { message, .. }) => {
            return account
                .page(StatusCode::CONFLICT, None, Some(&message))
                .await;
        }
        Err(FederationError::NotFound) => (StatusCode::NOT_FOUND, None, Some(t.request_expired)),
        Err(e) => return Err(PageError::unexpected(loc, &anyhow::anyhow!(e.to_string()))),
    };
    account.page(message.0, message.1, message.2).await
}

/// Starts a flow at `conn`: the redirect to the upstream, and the browser-binding cookie.
async fn begin(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    conn: &Connection,
    request_id: Option<&str>,
    link_user: Option<&str>,
) -> Result<HttpResponse, FederationError> {
    let browser = match req.cookie(browser_cookie_name(state)) {
        Some(c) if c.value().len() == 43 => c.value().to_string(),
        _ => crypto::random_token(32),
    };
    let location =
        federation::start(state.federation(), p, conn, request_id, &browser, link_user).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie(
            state,
            browser_cookie_name(state).into(),
            browser,
            Some(600),
        ))
        .finish())
}

/// `POST {issuer}/federation/start` — "Continue with Google" (`connection=google`), a
/// connection by id, or "Single sign-on" by the e-mail address's domain.
pub async fn start_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let (pending, loc) = pending_form(&state, &req, &p, &form).await?;
    let connections = federation::list(&state.pool, &p.tenant).await?;
    let email = form.get("email").unwrap_or("");
    let conn = match form.get("connection") {
        Some("google") => connections.iter().find(|c| c.enabled && c.is_google()),
        Some(id) => connections.iter().find(|c| c.enabled && c.id == id),
        None => federation::by_email_domain(&connections, email),
    };
    let Some(conn) = conn else {
        let seed = csrf_cookie_value(&state, &req);
        let view = SignInView {
            email,
            error: Some(loc.texts().no_sso_for_domain),
            current_account: None,
        };
        let body = sign_in_page(&state, &p, &pending, &seed, loc, view).await?;
        return Ok(HttpResponse::BadRequest()
            .content_type("text/html; charset=utf-8")
            .body(body));
    };
    match begin(&state, &req, &p, conn, Some(&pending.id), None).await {
        Ok(resp) => Ok(resp),
        Err(e) => failure(&state, &req, &p, Some(conn), Some(&pending), e).await,
    }
}

/// `GET {issuer}/api/v1/auth/sso/login` (SPEC, seed 001) — starts a federated sign-in for
/// a first-party app: `connection` (an id or `google`), `domain` or `email` chooses the
/// connection (the only one when the tenant has one). At the end the browser receives the
/// first-party tokens, as from `POST /auth/login`. `tenant=<slug>` at the root selects
/// the tenant.
pub async fn sso_login_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, ApiError> {
    let q = query_params(&req);
    if let Some(slug) = q.get("tenant").filter(|s| *s != p.tenant.slug) {
        return Ok(redirect_to_tenant(&state, &req, slug));
    }
    let connections = federation::list(&state.pool, &p.tenant).await?;
    let enabled: Vec<&Connection> = connections.iter().filter(|c| c.enabled).collect();
    let conn = if let Some(id) = q.get("connection") {
        enabled
            .iter()
            .copied()
            .find(|c| c.id == id || (id == "google" && c.is_google()))
    } else if let Some(d) = q.get("domain") {
        federation::by_email_domain(&connections, &format!("x@{d}"))
    } else if let Some(e) = q.get("email") {
        federation::by_email_domain(&connections, e)
    } else if enabled.len() == 1 {
        enabled.first().copied()
    } else {
        return Err(ApiError::ValidationFailed(
            "the tenant has several SSO connections: give connection, domain or email".into(),
        ));
    };
    let conn = conn.ok_or(ApiError::NotFound)?;
    Ok(begin(&state, &req, &p, conn, None, None).await?)
}

/// `GET /api/v1/auth/sso/login?tenant=<slug>` at the root, when no default tenant serves
/// it: the same request under the tenant's issuer.
pub async fn sso_login_root(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match query_params(&req).get("tenant") {
        Some(slug) => redirect_to_tenant(&state, &req, slug),
        None => crate::error::not_found(),
    }
}

fn redirect_to_tenant(state: &AppState, req: &HttpRequest, slug: &str) -> HttpResponse {
    if crate::tenants::TenantSlug::parse(slug).is_err() {
        return crate::error::not_found();
    }
    let rest: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .filter(|(k, _)| k != "tenant")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut url = format!(
        "{}/t/{slug}/api/v1/auth/sso/login",
        state.config.public_url.trim_end_matches('/')
    );
    if !rest.is_empty() {
        url.push('?');
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(rest)
                .finish(),
        );
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .finish()
}

/// The flow named by `handle` (consumed or not), its connection and its pending request.
/// A sign-in through a connection the tenant turned off after the flow started.
fn connection_disabled() -> FederationError {
    FederationError::failed(
        "connection_disabled",
        "Single sign-on through this identity provider is turned off. Sign in another way, or ask your administrator.",
    )
}

async fn load_flow(
    state: &AppState,
    p: &Provider,
    handle: &str,
) -> Result<Option<(FlowRow, Connection, Option<Pending>)>, PageError> {
    // A sign-out round trip (SAML Single Logout) is never a sign-in.
    let flow = federation::find_flow(&state.pool, &p.tenant, handle).await?;
    let Some(flow) = flow.filter(|f| f.logout_return.is_none()) else {
        return Ok(None);
    };
    let Some(conn) = federation::find(&state.pool, &p.tenant, &flow.connection_id).await? else {
        return Ok(None);
    };
    let pending = match flow.request_id.as_deref() {
        Some(id) => authorization::load_request(state.authorization(), p, id)
            .await
            .map_err(PageError::from)?,
        None => None,
    };
    Ok(Some((flow, conn, pending)))
}

/// `GET {issuer}/federation/oidc/callback` — the upstream OIDC provider's answer.
pub async fn oidc_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let q = query_params(&req);
    let Some((flow, conn, pending)) = load_flow(&state, &p, q.get("state").unwrap_or("")).await?
    else {
        let e = FederationError::failed(
            "unknown_state",
            "This sign-in link is invalid or has expired. Start again from the application.",
        );
        return failure(&state, &req, &p, None, None, e).await;
    };
    let fail = |e| failure(&state, &req, &p, Some(&conn), pending.as_ref(), e);
    if conn.protocol != Protocol::Oidc || flow.consumed_at.is_some() {
        return fail(FederationError::failed(
            "replayed",
            "This sign-in was already completed. Start again from the application.",
        ))
        .await;
    }
    if !conn.enabled {
        return fail(connection_disabled()).await;
    }
    // Login CSRF: the answer must come back to the browser that started the flow.
    let same_browser = match (req.cookie(browser_cookie_name(&state)), &flow.browser_hash) {
        (Some(c), Some(h)) => {
            crypto::constant_time_eq(crypto::token_digest(c.value()).as_bytes(), h.as_bytes())
        }
        _ => false,
    };
    if !same_browser {
        return fail(FederationError::failed(
            "browser_mismatch",
            "This sign-in was started in another browser. Start again from the application.",
        ))
        .await;
    }
    if !federation::consume_flow(&state.pool, &flow).await? {
        return fail(FederationError::failed(
            "replayed",
            "This sign-in was already completed. Start again from the application.",
        ))
        .await;
    }
    if let Some(error) = q.get("error") {
        let reason = if error == "access_denied" {
            "cancelled"
        } else {
            "upstream_error"
        };
        let detail: String = q
            .get("error_description")
            .unwrap_or(error)
            .chars()
            .take(200)
            .collect();
        let message = if reason == "cancelled" {
            format!("The sign-in at {} was cancelled.", conn.name)
        } else {
            format!("{} reported an error: {detail}", conn.name)
        };
        return fail(FederationError::failed(reason, message)).await;
    }
    let Some(code) = q.get("code") else {
        return fail(FederationError::failed(
            "no_code",
            "The identity provider sent no authorization code.",
        ))
        .await;
    };
    match oidc::finish(state.federation(), &p, &conn, &flow, code).await {
        Ok(identity) => complete(&state, &req, &p, &conn, Some(&flow), pending, identity).await,
        Err(e) => fail(e).await,
    }
}

/// `POST {issuer}/saml/acs` — the IdP's Response over HTTP-POST. Not CSRF-protected by
/// cookie (the POST is cross-site); the signed response must answer the AuthnRequest its
/// RelayState names, or be an unsolicited response the connection accepts.
pub async fn saml_acs(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let relay = form.get("RelayState").unwrap_or("");
    let loaded = if relay.is_empty() {
        None
    } else {
        load_flow(&state, &p, relay).await?
    };
    let (flow, pending) = match &loaded {
        Some((f, _, x)) => (Some(f), x.as_ref()),
        None => (None, None),
    };
    let malformed = || {
        FederationError::failed(
            "malformed",
            "The identity provider's response is not valid SAML.",
        )
    };
    let conn_of_flow = loaded.as_ref().map(|(_, c, _)| c);
    let raw = form.get("SAMLResponse").unwrap_or("");
    let compact: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() || compact.len() > saml::MAX_RESPONSE {
        return failure(&state, &req, &p, conn_of_flow, pending, malformed()).await;
    }
    let Some(xml) = crypto::b64_decode(&compact).and_then(|b| String::from_utf8(b).ok()) else {
        return failure(&state, &req, &p, conn_of_flow, pending, malformed()).await;
    };
    let shape = match saml::shape(&xml) {
        Ok(s) => s,
        Err(e) => return failure(&state, &req, &p, conn_of_flow, pending, e).await,
    };
    // SP-initiated: the flow's connection and request; otherwise an unsolicited response
    // from an IdP whose connection allows IdP-initiated sign-in.
    let connections;
    let (conn, request_id) = match &loaded {
        Some((f, c, _)) if c.protocol == Protocol::Saml2 => (c, f.saml_request_id.as_deref()),
        Some((_, c, _)) => {
            return failure(&state, &req, &p, Some(c), pending, malformed()).await;
        }
        None => {
            connections = federation::list(&state.pool, &p.tenant).await?;
            let conn = shape
                .issuer
                .as_deref()
                .and_then(|i| saml::by_entity_id(&connections, i));
            match conn {
                Some(c) if c.config.allow_idp_initiated => (c, None),
                other => {
                    let e = FederationError::failed(
                        "unsolicited",
                        "This response does not answer a sign-in started here, and unsolicited sign-in is not enabled.",
                    );
                    return failure(&state, &req, &p, other, None, e).await;
                }
            }
        }
    };
    if !conn.enabled {
        return failure(&state, &req, &p, Some(conn), pending, connection_disabled()).await;
    }
    let decryption_key = if shape.is_encrypted() {
        let key = saml::sp_key(
            state.federation(),
            &p.tenant,
            &p.issuer,
            saml::SpKeyUse::Encryption,
        )
        .await;
        match key {
            Ok((k, _)) => Some(k),
            Err(e) => return failure(&state, &req, &p, Some(conn), pending, e).await,
        }
    } else {
        None
    };
    let verified =
        match saml::verify_response(&p, conn, &xml, &shape, request_id, decryption_key.as_ref()) {
            Ok(v) => v,
            Err(e) => return failure(&state, &req, &p, Some(conn), pending, e).await,
        };
    let replayed = FederationError::failed(
        "replayed",
        "This assertion was already used. Start again from the application.",
    );
    if !saml::remember_assertion(&state.pool, conn, &verified).await? {
        return failure(&state, &req, &p, Some(conn), pending, replayed).await;
    }
    if let Some(f) = flow {
        if !federation::consume_flow(&state.pool, f).await? {
            return failure(&state, &req, &p, Some(conn), pending, replayed).await;
        }
    }
    complete(
        &state,
        &req,
        &p,
        conn,
        flow,
        pending.cloned(),
        verified.identity,
    )
    .await
}

/// `GET {issuer}/saml/metadata[?connection=ID][&download=1]` — the tenant's SP metadata;
/// with a connection, the document for that connection's IdP (its signing switches and
/// NameID format). An unknown connection is 404. `download` asks for it as a file.
pub async fn saml_metadata(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let conn = match query.get("connection") {
        Some(id) => match federation::find(&state.pool, &p.tenant, id).await? {
            Some(c) if c.protocol == Protocol::Saml2 => Some(c),
            _ => return Ok(HttpResponse::NotFound().finish()),
        },
        None => None,
    };
    let xml = saml::sp_metadata(state.federation(), &p, conn.as_ref())
        .await
        .map_err(|e| PageError::unexpected(Locale::En, &e))?;
    let mut resp = HttpResponse::Ok();
    resp.content_type("application/samlmetadata+xml");
    if query.contains_key("download") {
        // The console's "Download" link: a file to hand to the IdP's administrator.
        resp.insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"sp-metadata.xml\"",
        ));
    }
    Ok(resp.body(xml))
}

/// `GET {issuer}/saml/slo` — SAML Single Logout over HTTP-Redirect. A LogoutRequest from
/// an IdP ends the sessions it names and goes back with a signed LogoutResponse; the IdP's
/// LogoutResponse to our request continues to where `/logout` was to send the browser.
/// Anything unsigned, misaddressed, stale or unknown is refused on a page, audited as
/// `federation.logout_failed` with its reason.
pub async fn saml_slo(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    let ctx = audit_context(&req);
    match slo::receive(state.federation(), &p, req.query_string()).await {
        Ok(slo::Outcome::LoggedOut {
            connection_id,
            user_ids,
            respond,
        }) => {
            for user in &user_ids {
                audit::record(
                    &state.audit,
                    AuditEvent::new("signout", Some(&p.tenant))
                        .actor(Some(user))
                        .detail("channel", "saml-slo")
                        .detail("connection", connection_id.clone()),
                    &ctx,
                );
            }
            Ok(see_other(respond.as_str()))
        }
        Ok(slo::Outcome::Returned {
            connection_id,
            return_to,
            status,
        }) => {
            if status != slo::STATUS_SUCCESS {
                // Signed out here already; the IdP could not end every session it holds.
                audit::record(
                    &state.audit,
                    AuditEvent::new("federation.logout_partial", Some(&p.tenant))
                        .detail("connection", connection_id)
                        .detail("status", status),
                    &ctx,
                );
            }
            finish_logout(&state, &p, loc, return_to, None)
        }
        Err(e) => {
            let (reason, message) = match e {
                FederationError::Failed { reason, message } => (reason, message),
                FederationError::Invalid(m) => ("bad_metadata", m),
                FederationError::NotFound | FederationError::LinkRequired(_) => (
                    "malformed",
                    "The sign-out message is not valid SAML.".to_string(),
                ),
                FederationError::Unexpected(e) => return Err(PageError::unexpected(loc, &e)),
            };
            tracing::info!(tenant = %p.tenant.slug, reason, "SAML sign-out message refused");
            audit::record(
                &state.audit,
                AuditEvent::new("federation.logout_failed", Some(&p.tenant))
                    .detail("reason", reason),
                &ctx,
            );
            let text = format!("{message} ({reason})");
            html(
                StatusCode::BAD_REQUEST,
                MessagePage {
                    f: frame(&p, loc),
                    title: loc.texts().slo_failed_title,
                    text: &text,
                    back: None,
                },
            )
        }
    }
}

/// The end of a flow the account page started: the identity is linked to the signed-in
/// user (who must still be the one who started it), then the account page says so.
async fn complete_link(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    conn: &Connection,
    identity: &UpstreamIdentity,
    link_user: &str,
    loc: Locale,
) -> Result<HttpResponse, PageError> {
    let account = match account_session(state, req, p, loc).await? {
        Ok(account) if account.user.id == link_user => account,
        Ok(_) | Err(_) => {
            let e = FederationError::failed(
                "link_session_lost",
                "The account that started linking is no longer signed in here.",
            );
            return failure(state, req, p, Some(conn), None, e).await;
        }
    };
    if let Err(e) =
        federation::link_from_account(state.federation(), &p.tenant, conn, identity, &account.user)
            .await
    {
        return failure(state, req, p, Some(conn), None, e).await;
    }
    audit::record(
        &state.audit,
        AuditEvent::new("federation.linked", Some(&p.tenant))
            .actor(Some(&account.user.id))
            .detail("connection", conn.id.clone())
            .detail("channel", "account")
            .detail("upstream_subject", identity.subject.clone()),
        &audit_context(req),
    );
    let notice = loc
        .texts()
        .linked_notice
        .replace("{connection}", &conn.name);
    account.page(StatusCode::OK, Some(&notice), None).await
}

/// The end of every federated sign-in: the local user, then the same path as a password
/// sign-in (second factor when the connection applies the tenant's policy, session, code
/// for the pending request); first-party tokens for `GET /auth/sso/login`; the account page
/// for an unsolicited SAML response.
async fn complete(
    state: &AppState,
    req: &HttpRequest,
    p: &Provider,
    conn: &Connection,
    flow: Option<&FlowRow>,
    pending: Option<Pending>,
    identity: UpstreamIdentity,
) -> Result<HttpResponse, PageError> {
    let loc = locale(
        req,
        pending
            .as_ref()
            .and_then(|x| x.request.ui_locales.as_deref()),
    );
    if flow.is_some_and(|f| f.request_id.is_some()) && pending.is_none() {
        return Err(PageError::bad_request(loc, loc.texts().request_expired));
    }
    if let Some(link_user) = flow.and_then(|f| f.link_user_id.as_deref()) {
        return complete_link(state, req, p, conn, &identity, link_user, loc).await;
    }
    let user = match federation::resolve_user(state.federation(), &p.tenant, conn, &identity).await
    {
        Ok(u) => u,
        Err(e) => return failure(state, req, p, Some(conn), pending.as_ref(), e).await,
    };
    let ctx = audit_context(req);
    audit::record(
        &state.audit,
        AuditEvent::new("federation.signin", Some(&p.tenant))
            .actor(Some(&user.id))
            .detail("connection", conn.id.clone())
            .detail("protocol", conn.protocol.as_str())
            .detail("upstream_issuer", identity.issuer.clone())
            .detail("upstream_subject", identity.subject.clone()),
        &ctx,
    );
    let amr_owned = identity.session_amr();
    let amr: Vec<&str> = amr_owned.iter().map(String::as_str).collect();
    let upstream = identity
        .saml_session
        .as_ref()
        .map(federation::SamlSession::to_json);
    match (pending, flow) {
        (Some(pending), _) => {
            // Recorded with the session (for Single Logout), now or after the second factor.
            let pending = Pending {
                upstream_session: upstream,
                ..pending
            };
            if conn.config.apply_mfa_policy {
                if let Some(step) = second_factor_step(state, p, &pending, &user.id, loc).await? {
                    authorization::set_federated_mfa_user(
                        state.authorization(),
                        p,
                        &pending.id,
                        &user.id,
                        pending.upstream_session.as_deref(),
                    )
                    .await?;
                    return Ok(to_step(p, step, &pending.id));
                }
            }
            let existing = current_session(state, req, p).await?;
            complete_sign_in(state, req, p, pending, &user, existing, &amr, loc).await
        }
        (None, Some(_)) => {
            // GET /api/v1/auth/sso/login: the first-party tokens, as from /auth/login.
            match first_party::login_federated(
                state.first_party(),
                p,
                &user,
                &amr,
                conn.config.apply_mfa_policy,
                &ctx,
            )
            .await
            {
                Ok(t) => {
                    audit::record(
                        &state.audit,
                        AuditEvent::new("signin.success", Some(&p.tenant))
                            .actor(Some(&user.id))
                            .detail("channel", "sso"),
                        &ctx,
                    );
                    Ok(HttpResponse::Ok()
                        .insert_header((header::CACHE_CONTROL, "no-store"))
                        .json(
                            serde_json::json!({ "data": crate::http::api::common::token_data(&t) }),
                        ))
                }
                Err(e) => {
                    let e = ApiError::from(e);
                    Ok(actix_web::ResponseError::error_response(&e))
                }
            }
        }
        (None, None) => {
            // An unsolicited (IdP-initiated) response: a session, then the account page.
            let existing = current_session(state, req, p).await?;
            let started = start_session(state, req, p, &user, existing, &amr).await?;
            if let Some(s) = &identity.saml_session {
                slo::record_session(&state.pool, &p.tenant.id, &started.session.sid, s).await?;
            }
            audit::record(
                &state.audit,
                AuditEvent::new("signin.success", Some(&p.tenant))
                    .actor(Some(&user.id))
                    .detail("channel", "idp-initiated"),
                &ctx,
            );
            let mut resp = see_other(&p.endpoint("/account"));
            resp.add_cookie(&session_cookie(state, p, &started))
                .map_err(|e| PageError::unexpected(loc, &e))?;
            Ok(resp)
        }
    }
}
