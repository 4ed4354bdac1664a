//! The console's single sign-on connections: the list, "New Google / OpenID Connect /
//! SAML 2.0 connection" forms, the connection page with "Test connection" (each check and
//! what it found), enable/disable, the SP metadata link and download, and deletion after a
//! confirmation page. Every page needs `sso:read`, every change `sso:configure`. The rules
//! are the domain's, as `/api/v1/admin/sso` calls them: [`federation::configure`] (which
//! fetches and validates the upstream's documents before anything is stored),
//! [`federation::test`], [`federation::set_enabled`], [`federation::delete`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::visit::{console_form, console_session, Console, Shell};
use crate::authorization::Params;
use crate::error::PageError;
use crate::federation::{
    self, AttributeMapping, ConfigureRequest, Connection, FederationError, Protocol, TestReport,
};
use crate::http::api::common::path_id;
use crate::http::extractors::{query_params, PageForm, TenantProvider};
use crate::http::pages::common::{locale, see_other};
use crate::state::AppState;
use crate::storage::format_instant;

/// The kinds of connection the "new" form knows, by their `type` query value.
const KINDS: [&str; 3] = ["google", "oidc", "saml2"];

pub struct ConnectionLine {
    pub name: String,
    pub kind: &'static str,
    pub domains: String,
    pub enabled: bool,
    pub href: String,
}

#[derive(Template)]
#[template(path = "pages/console/sso.html")]
struct ListPage<'a> {
    c: Shell<'a>,
    connections: Vec<ConnectionLine>,
    /// (href, label) of the "new connection" links, when the visitor may configure.
    new: Vec<(String, &'static str)>,
    notice: Option<&'static str>,
}

/// The values of the new-connection form, as typed.
pub struct FormValues {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub scopes: String,
    pub metadata_url: String,
    pub metadata_xml: String,
    pub idp_entity_id: String,
    pub domains: String,
    pub attr_email: String,
    pub attr_name: String,
    pub attr_roles: String,
    pub allow_idp_initiated: bool,
    pub sign_authn_requests: bool,
    pub want_assertions_signed: bool,
    pub name_id_format: String,
    pub link_by_email: bool,
    pub apply_mfa_policy: bool,
}

impl FormValues {
    /// What the form shows: the posted values, or the defaults of a new connection.
    fn of(form: Option<&Params>, kind: &str) -> Self {
        let text = |k: &str| form.and_then(|f| f.get(k)).unwrap_or_default().to_string();
        let check = |k: &str, default: bool| form.map_or(default, |f| f.get(k).is_some());
        Self {
            name: form.map(|_| text("name")).unwrap_or_else(|| {
                if kind == "google" {
                    "Google".into()
                } else {
                    String::new()
                }
            }),
            issuer: text("issuer"),
            client_id: text("client_id"),
            scopes: text("scopes"),
            metadata_url: text("metadata_url"),
            metadata_xml: text("metadata_xml"),
            idp_entity_id: text("idp_entity_id"),
            domains: text("domains"),
            attr_email: text("attr_email"),
            attr_name: text("attr_name"),
            attr_roles: text("attr_roles"),
            allow_idp_initiated: check("allow_idp_initiated", false),
            sign_authn_requests: check("sign_authn_requests", true),
            want_assertions_signed: check("want_assertions_signed", true),
            name_id_format: text("name_id_format"),
            link_by_email: check("link_by_email", false),
            apply_mfa_policy: check("apply_mfa_policy", false),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/console/sso_form.html")]
struct FormPage<'a> {
    c: Shell<'a>,
    kind: &'static str,
    title: &'static str,
    action: String,
    v: FormValues,
    name_id_formats: [&'static str; 4],
    error: Option<String>,
    back: String,
}

#[derive(Template)]
#[template(path = "pages/console/sso_connection.html")]
struct ConnectionPage<'a> {
    c: Shell<'a>,
    name: String,
    id: String,
    /// (label, value) of the connection's settings.
    rows: Vec<(&'static str, String)>,
    /// For SAML: the SP metadata document and its download.
    metadata: Option<(String, String)>,
    /// For OIDC: the redirect URI to register upstream.
    redirect_uri: Option<String>,
    test: String,
    /// With `sso:configure`: the enable form's action (a disabled connection) or the
    /// disable confirmation page (an enabled one), and the deletion page.
    enable: Option<String>,
    disable: Option<String>,
    delete: Option<String>,
    report: Option<TestReport>,
    notice: Option<&'static str>,
    error: Option<String>,
    back: String,
}

fn kind_label(conn: &Connection) -> &'static str {
    match (conn.protocol, conn.is_google()) {
        (_, true) => "Google",
        (Protocol::Oidc, false) => "OpenID Connect",
        (Protocol::Saml2, false) => "SAML 2.0",
    }
}

fn kind_title(c: &Console<'_>, kind: &str) -> &'static str {
    let ct = c.texts();
    match kind {
        "google" => ct.new_google,
        "oidc" => ct.new_oidc,
        _ => ct.new_saml,
    }
}

async fn list_page(
    c: &Console<'_>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let list = federation::list(&c.state.pool, &c.p.tenant).await?;
    let new = if c.can("sso:configure") {
        KINDS
            .iter()
            .map(|k| (c.url(&format!("/sso/new?type={k}")), kind_title(c, k)))
            .collect()
    } else {
        Vec::new()
    };
    c.page(
        StatusCode::OK,
        ListPage {
            c: c.shell("/sso"),
            connections: list
                .iter()
                .map(|conn| ConnectionLine {
                    name: conn.name.clone(),
                    kind: kind_label(conn),
                    domains: conn.domains.join(", "),
                    enabled: conn.enabled,
                    href: c.url(&format!("/sso/{}", conn.id)),
                })
                .collect(),
            new,
            notice,
        },
    )
}

fn form_page(
    c: &Console<'_>,
    status: StatusCode,
    kind: &'static str,
    form: Option<&Params>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    c.page(
        status,
        FormPage {
            c: c.shell("/sso"),
            kind,
            title: kind_title(c, kind),
            action: c.url(&format!("/sso?type={kind}")),
            v: FormValues::of(form, kind),
            name_id_formats: federation::saml::NAME_ID_CHOICES,
            error,
            back: c.url("/sso"),
        },
    )
}

/// The domain's request from the form of a `kind` connection. Empty fields are absent, so
/// that the domain says which are required; the SAML switches are given only for SAML.
fn request(kind: &str, form: &Params) -> ConfigureRequest {
    let text = |k: &str| {
        form.get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let on = |k: &str| form.get(k).is_some();
    let saml = kind == "saml2";
    ConfigureRequest {
        protocol: Some(if saml { "saml2" } else { "oidc" }.to_string()),
        provider: (kind == "google").then(|| "google".to_string()),
        name: text("name"),
        metadata_url: text("metadata_url"),
        metadata_xml: text("metadata_xml"),
        issuer: text("issuer"),
        discovery_url: None,
        client_id: text("client_id"),
        client_secret: text("client_secret"),
        scopes: text("scopes").map(|s| s.split_whitespace().map(str::to_string).collect()),
        domains: form
            .get("domains")
            .unwrap_or("")
            .split(['\n', ','])
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect(),
        attribute_mapping: AttributeMapping {
            email: text("attr_email"),
            name: text("attr_name"),
            roles: text("attr_roles"),
            ..AttributeMapping::default()
        },
        allow_idp_initiated: saml && on("allow_idp_initiated"),
        idp_entity_id: text("idp_entity_id"),
        sign_authn_requests: saml.then(|| on("sign_authn_requests")),
        want_assertions_signed: saml.then(|| on("want_assertions_signed")),
        name_id_format: text("name_id_format"),
        link_by_email: on("link_by_email"),
        apply_mfa_policy: on("apply_mfa_policy"),
    }
}

/// The `type` of the new-connection form (`google`, `oidc` or `saml2`).
fn kind_of(req: &HttpRequest) -> Option<&'static str> {
    let q = query_params(req);
    let t = q.get("type")?;
    KINDS.iter().copied().find(|k| *k == t)
}

async fn find(c: &Console<'_>, id: &str) -> Result<Connection, PageError> {
    federation::find(&c.state.pool, &c.p.tenant, id)
        .await?
        .ok_or_else(|| c.not_found())
}

fn connection_page(
    c: &Console<'_>,
    status: StatusCode,
    conn: &Connection,
    report: Option<TestReport>,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let ct = c.texts();
    let yes_no = |b: bool| if b { ct.yes } else { ct.no }.to_string();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_string());
    let mut rows = vec![
        (ct.protocol, kind_label(conn).to_string()),
        (
            ct.status,
            if conn.enabled { ct.active } else { ct.disabled }.to_string(),
        ),
        (ct.domains_lines, conn.domains.join(", ")),
    ];
    let (mut metadata, mut redirect_uri) = (None, None);
    match conn.protocol {
        Protocol::Oidc => {
            rows.push((ct.issuer_url, opt(&conn.config.issuer)));
            rows.push((ct.client_id, opt(&conn.config.client_id)));
            rows.push((ct.client_secret_stored, yes_no(conn.has_secret)));
            rows.push((ct.scopes, conn.config.effective_scopes().join(" ")));
            redirect_uri = Some(federation::oidc::callback_url(c.p));
        }
        Protocol::Saml2 => {
            rows.push((ct.metadata_url, opt(&conn.config.metadata_url)));
            rows.push((ct.idp_entity_id, opt(&conn.config.idp_entity_id)));
            rows.push((
                ct.metadata_fetched,
                conn.metadata_fetched_at
                    .map(format_instant)
                    .unwrap_or_else(|| "—".to_string()),
            ));
            rows.push((
                ct.allow_idp_initiated,
                yes_no(conn.config.allow_idp_initiated),
            ));
            rows.push((ct.sign_requests, yes_no(conn.config.sign_authn_requests)));
            rows.push((
                ct.want_signed_assertions,
                yes_no(conn.config.want_assertions_signed),
            ));
            rows.push((
                ct.name_id_format,
                conn.config
                    .name_id_format
                    .clone()
                    .unwrap_or_else(|| ct.negotiated.to_string()),
            ));
            let doc =
                c.p.endpoint(&format!("/saml/metadata?connection={}", conn.id));
            metadata = Some((doc.clone(), format!("{doc}&download=1")));
        }
    }
    rows.push((ct.attr_email, opt(&conn.mapping.email)));
    rows.push((ct.attr_name, opt(&conn.mapping.name)));
    rows.push((ct.attr_roles, opt(&conn.mapping.roles)));
    rows.push((ct.link_by_email, yes_no(conn.config.link_by_email)));
    rows.push((ct.apply_mfa_policy, yes_no(conn.config.apply_mfa_policy)));
    rows.push((ct.created, format_instant(conn.created_at)));
    let here = |a: &str| c.url(&format!("/sso/{}{a}", conn.id));
    let configure = c.can("sso:configure");
    c.page(
        status,
        ConnectionPage {
            c: c.shell("/sso"),
            name: conn.name.clone(),
            id: conn.id.clone(),
            rows,
            metadata,
            redirect_uri,
            test: here("/test"),
            enable: (configure && !conn.enabled).then(|| here("/enable")),
            disable: (configure && conn.enabled).then(|| here("/disable")),
            delete: configure.then(|| here("/delete")),
            report,
            notice,
            error,
            back: c.url("/sso"),
        },
    )
}

/// `GET {issuer}/admin/sso` (sso:read)
pub async fn sso_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("sso:read")?;
    list_page(&c, None).await
}

/// `GET {issuer}/admin/sso/new?type=google|oidc|saml2` (sso:configure)
pub async fn new_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("sso:read")?;
    c.require("sso:configure")?;
    let kind = kind_of(&req).ok_or_else(|| c.not_found())?;
    form_page(&c, StatusCode::OK, kind, None, None)
}

/// `POST {issuer}/admin/sso?type=…` (sso:configure) — the upstream's discovery document or
/// metadata is fetched and checked first; a connection that cannot work is refused with
/// the domain's reason, and the form keeps what was typed (except the client secret).
pub async fn sso_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("sso:read")?;
    c.require("sso:configure")?;
    let kind = kind_of(&req).ok_or_else(|| c.not_found())?;
    match federation::configure(state.federation(), &p.tenant, request(kind, &form)).await {
        Ok(conn) => {
            c.audit("sso.configured", ("connection", &conn.id));
            Ok(see_other(&c.url(&format!("/sso/{}?created=1", conn.id))))
        }
        Err(FederationError::Invalid(why)) => form_page(
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            kind,
            Some(&form),
            Some(why),
        ),
        Err(e) => Err(PageError::from(e).in_locale(c.loc)),
    }
}

/// `GET {issuer}/admin/sso/{id}` (sso:read)
pub async fn connection_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("sso:read")?;
    let conn = find(&c, path_id(&req)).await?;
    let notice = query_params(&req)
        .get("created")
        .map(|_| c.texts().connection_created);
    connection_page(&c, StatusCode::OK, &conn, None, notice, None)
}

/// `POST {issuer}/admin/sso/{id}/test` (sso:read) — the connection page with each check.
pub async fn test_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("sso:read")?;
    let conn = find(&c, path_id(&req)).await?;
    match federation::test(state.federation(), &conn).await {
        Ok(report) => {
            // A SAML test may have stored freshly fetched metadata.
            let conn = find(&c, &conn.id).await?;
            connection_page(&c, StatusCode::OK, &conn, Some(report), None, None)
        }
        Err(FederationError::Invalid(why)) => connection_page(
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            &conn,
            None,
            None,
            Some(why),
        ),
        Err(e) => Err(PageError::from(e).in_locale(c.loc)),
    }
}

/// `POST {issuer}/admin/sso/{id}/enable` (sso:configure)
pub async fn enable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    switch(&state, &req, &p, &form, true).await
}

/// `GET {issuer}/admin/sso/{id}/disable` (sso:configure) — asks first: nobody signs in
/// through the connection until it is enabled again.
pub async fn disable_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    confirm_page(&state, &req, &p, Asked::Disable).await
}

/// What a confirmation page asks before.
enum Asked {
    Disable,
    Delete,
}

/// The confirmation page of a change to the connection in the path (sso:configure).
async fn confirm_page(
    state: &AppState,
    req: &HttpRequest,
    p: &crate::provider::Provider,
    asked: Asked,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(state, req, p, locale(req, None)));
    c.require("sso:read")?;
    c.require("sso:configure")?;
    let conn = find(&c, path_id(req)).await?;
    let ct = c.texts();
    let (action, message, button) = match asked {
        Asked::Disable => ("disable", ct.confirm_disable_connection, ct.disable),
        Asked::Delete => ("delete", ct.confirm_delete_connection, ct.delete),
    };
    c.confirm(
        "/sso",
        &conn.name,
        message,
        c.url(&format!("/sso/{}/{action}", conn.id)),
        button,
        c.url(&format!("/sso/{}", conn.id)),
    )
}

/// `POST {issuer}/admin/sso/{id}/disable` (sso:configure)
pub async fn disable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    switch(&state, &req, &p, &form, false).await
}

async fn switch(
    state: &AppState,
    req: &HttpRequest,
    p: &crate::provider::Provider,
    form: &Params,
    enabled: bool,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(state, req, p, form, locale(req, None)));
    c.require("sso:read")?;
    c.require("sso:configure")?;
    let conn = federation::set_enabled(&state.pool, &p.tenant, path_id(req), enabled)
        .await?
        .ok_or_else(|| c.not_found())?;
    let ct = c.texts();
    let notice = if enabled {
        ct.connection_enabled
    } else {
        ct.connection_disabled
    };
    c.audit(federation::switch_event(enabled), ("connection", &conn.id));
    connection_page(&c, StatusCode::OK, &conn, None, Some(notice), None)
}

/// `GET {issuer}/admin/sso/{id}/delete` (sso:configure) — asks first.
pub async fn delete_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    confirm_page(&state, &req, &p, Asked::Delete).await
}

/// `POST {issuer}/admin/sso/{id}/delete` (sso:configure)
pub async fn delete_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("sso:read")?;
    c.require("sso:configure")?;
    let id = path_id(&req);
    if !federation::delete(&state.pool, &p.tenant, id).await? {
        return Err(c.not_found());
    }
    c.audit("sso.deleted", ("connection", id));
    list_page(&c, Some(c.texts().connection_deleted)).await
}
