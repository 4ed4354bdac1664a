//! The platform console at the root `/admin`, for the installation's administrators
//! (`portcullis admin create`): its own sign-in (`/admin/login`, counted by the protection
//! layer like every credential endpoint), the tenants (list, "New tenant" through
//! [`provisioning::create_tenant`], as `POST /api/v1/admin/tenants` does) and the banned
//! addresses (list, ban, lift, through the same [`crate::protection`] calls as
//! `/api/v1/admin/bans`). Every write is audited with the administrator as the actor,
//! `platform:{id}` (platform administrators act only here), tenant creation also with
//! `source: console`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::visit::{render, ConfirmPage, NavItem, Shell};
use crate::accounts::AccountError;
use crate::audit::{self, AuditEvent};
use crate::authorization::Params;
use crate::error::PageError;
use crate::http::extractors::{audit_context, PageForm};
use crate::http::pages::common::{
    check_csrf, cookie, csrf_seed, csrf_token, form_page, locale, see_other,
};
use crate::http::pages::error::Frame;
use crate::i18n::{ConsoleTexts, Locale};
use crate::platform_admins::{self, PlatformAdmin, SESSION_TTL};
use crate::protection::{self, BanError, BanRequest};
use crate::state::AppState;
use crate::storage::format_instant;
use crate::tenants::{self, TenantError, TenantSlug};

/// The CSRF bindings of the sign-in form and of the signed-in pages' forms.
const LOGIN_FORM: &str = "platform-login";
const PLATFORM_FORM: &str = "platform";

fn cookie_name(state: &AppState) -> &'static str {
    if state.config.is_https() {
        "__Host-portcullis_platform"
    } else {
        "portcullis_platform"
    }
}

fn platform_frame(loc: Locale) -> Frame<'static> {
    Frame {
        lang: loc.tag(),
        t: loc.texts(),
        tenant_name: loc.console().platform_title,
        logo_url: None,
        branding_css: None,
    }
}

/// A signed-in platform administrator's visit.
pub struct Platform<'a> {
    state: &'a AppState,
    req: &'a HttpRequest,
    loc: Locale,
    admin: PlatformAdmin,
    seed: String,
    new_seed: bool,
}

impl<'a> Platform<'a> {
    fn texts(&self) -> &'static ConsoleTexts {
        self.loc.console()
    }

    fn shell(&self, current: &str) -> Shell<'static> {
        let ct = self.texts();
        Shell {
            f: platform_frame(self.loc),
            ct,
            nav: [("/admin", ct.nav_tenants), ("/admin/bans", ct.nav_bans)]
                .into_iter()
                .map(|(href, label)| NavItem {
                    href: href.to_string(),
                    label,
                    current: href == current,
                })
                .collect(),
            user_email: self.admin.email.clone(),
            csrf: csrf_token(self.state, &self.seed, PLATFORM_FORM),
            sign_out: "/admin/logout".to_string(),
        }
    }

    fn page(&self, status: StatusCode, page: impl Template) -> Result<HttpResponse, PageError> {
        render(
            self.state,
            self.loc,
            status,
            page,
            &self.seed,
            self.new_seed,
        )
    }

    fn audit(&self, event: &'static str, tenant: Option<&tenants::Tenant>, detail: (&str, &str)) {
        audit::record(
            &self.state.audit,
            AuditEvent::new(event, tenant)
                .actor(Some(&self.actor()))
                .detail(detail.0, detail.1)
                .detail("source", "console"),
            &audit_context(self.req),
        );
    }

    fn actor(&self) -> String {
        format!("platform:{}", self.admin.id)
    }
}

/// The visit, or the redirect to the platform sign-in.
async fn platform_session<'a>(
    state: &'a AppState,
    req: &'a HttpRequest,
    loc: Locale,
) -> Result<Result<Platform<'a>, HttpResponse>, PageError> {
    let admin = match req.cookie(cookie_name(state)) {
        Some(c) => platform_admins::session(&state.pool, c.value()).await?,
        None => None,
    };
    let Some(admin) = admin else {
        return Ok(Err(see_other("/admin/login")));
    };
    let (seed, new_seed) = csrf_seed(state, req);
    Ok(Ok(Platform {
        state,
        req,
        loc,
        admin,
        seed,
        new_seed,
    }))
}

async fn platform_form<'a>(
    state: &'a AppState,
    req: &'a HttpRequest,
    form: &Params,
    loc: Locale,
) -> Result<Result<Platform<'a>, HttpResponse>, PageError> {
    check_csrf(state, req, form, PLATFORM_FORM, loc)?;
    platform_session(state, req, loc).await
}

#[derive(Template)]
#[template(path = "pages/console/platform_login.html")]
struct LoginPage {
    f: Frame<'static>,
    ct: &'static ConsoleTexts,
    csrf: String,
    email: String,
    error: Option<&'static str>,
}

fn login_page(
    state: &AppState,
    req: &HttpRequest,
    loc: Locale,
    status: StatusCode,
    email: &str,
    error: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let (seed, new_seed) = csrf_seed(state, req);
    let body = LoginPage {
        f: platform_frame(loc),
        ct: loc.console(),
        csrf: csrf_token(state, &seed, LOGIN_FORM),
        email: email.to_string(),
        error,
    }
    .render()
    .map_err(|e| PageError::unexpected(loc, &e))?;
    Ok(form_page(state, status, body, seed, new_seed))
}

/// `GET /admin/login`
pub async fn login_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    if let Ok(_visit) = platform_session(&state, &req, loc).await? {
        return Ok(see_other("/admin"));
    }
    login_page(&state, &req, loc, StatusCode::OK, "", None)
}

/// `POST /admin/login` `email`, `password` — a wrong address and a wrong password get the
/// same answer after the same hashing work.
pub async fn login_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let loc = locale(&req, None);
    check_csrf(&state, &req, &form, LOGIN_FORM, loc)?;
    let email = form.get("email").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    match platform_admins::sign_in(&state.pool, &state.hasher, email, password).await {
        Ok((admin, token)) => {
            audit::record(
                &state.audit,
                AuditEvent::new("platform.signin", None)
                    .actor(Some(&format!("platform:{}", admin.id))),
                &audit_context(&req),
            );
            Ok(HttpResponse::SeeOther()
                .insert_header((actix_web::http::header::LOCATION, "/admin"))
                .cookie(cookie(
                    &state,
                    cookie_name(&state).into(),
                    token,
                    Some(SESSION_TTL),
                ))
                .finish())
        }
        Err(e @ (AccountError::InvalidCredentials | AccountError::AccountLocked { .. })) => {
            let (status, reason, message) = match e {
                AccountError::AccountLocked { .. } => {
                    (StatusCode::LOCKED, "locked", loc.console().platform_locked)
                }
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    loc.console().bad_credentials,
                ),
            };
            audit::record(
                &state.audit,
                AuditEvent::new("platform.signin_failed", None).detail("reason", reason),
                &audit_context(&req),
            );
            login_page(&state, &req, loc, status, email, Some(message))
        }
        Err(e) => Err(PageError::unexpected(loc, &e)),
    }
}

/// `GET /admin/logout` — asks first (signing out is a form, like every change).
pub async fn logout_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let v = visit!(platform_session(&state, &req, locale(&req, None)));
    let ct = v.texts();
    v.page(
        StatusCode::OK,
        ConfirmPage {
            c: v.shell(""),
            title: v.loc.texts().sign_out,
            message: ct.confirm_sign_out,
            action: "/admin/logout".into(),
            button: v.loc.texts().sign_out,
            cancel: "/admin".into(),
        },
    )
}

/// `POST /admin/logout`
pub async fn logout_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let v = visit!(platform_form(&state, &req, &form, locale(&req, None)));
    if let Some(c) = req.cookie(cookie_name(&state)) {
        platform_admins::sign_out(&state.pool, c.value()).await?;
    }
    v.audit("platform.signout", None, ("admin_id", &v.admin.id));
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, "/admin/login"))
        .cookie(cookie(
            &state,
            cookie_name(&state).into(),
            String::new(),
            Some(0),
        ))
        .finish())
}

pub struct TenantLine {
    pub slug: String,
    pub name: String,
    pub issuer: String,
    pub console: String,
}

#[derive(Template)]
#[template(path = "pages/console/platform_tenants.html")]
struct TenantsPage<'a> {
    c: Shell<'a>,
    tenants: Vec<TenantLine>,
    slug: String,
    name: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

async fn tenants_page(
    v: &Platform<'_>,
    status: StatusCode,
    form: Option<&Params>,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let public = &v.state.config.public_url;
    let list = tenants::list_tenants(&v.state.pool)
        .await
        .map_err(|e| PageError::unexpected(v.loc, &e))?;
    let field = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_string();
    v.page(
        status,
        TenantsPage {
            c: v.shell("/admin"),
            tenants: list
                .into_iter()
                .map(|t| {
                    let issuer = crate::provider::issuer_for(public, &t.slug);
                    TenantLine {
                        console: format!("{issuer}/admin"),
                        issuer,
                        slug: t.slug,
                        name: t.name,
                    }
                })
                .collect(),
            slug: field("slug"),
            name: field("name"),
            notice,
            error,
        },
    )
}

/// `GET /admin` — the tenants.
pub async fn tenants_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let v = visit!(platform_session(&state, &req, locale(&req, None)));
    tenants_page(&v, StatusCode::OK, None, None, None).await
}

/// `POST /admin/tenants` `slug`, `name` — a tenant with its signing keys and built-in roles.
pub async fn tenants_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let v = visit!(platform_form(&state, &req, &form, locale(&req, None)));
    let name = form.get("name").map(str::trim).filter(|n| !n.is_empty());
    let created = match TenantSlug::parse(form.get("slug").unwrap_or("").trim()) {
        Ok(slug) => {
            crate::provisioning::create_tenant(&state.pool, &state.master_key, &slug, name).await
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(t) => {
            v.audit("tenant.created", Some(&t), ("slug", &t.slug));
            tenants_page(
                &v,
                StatusCode::CREATED,
                None,
                Some(v.texts().tenant_created),
                None,
            )
            .await
        }
        Err(e @ TenantError::InvalidSlug) => {
            tenants_page(
                &v,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&form),
                None,
                Some(e.to_string()),
            )
            .await
        }
        Err(e @ TenantError::AlreadyExists) => {
            tenants_page(
                &v,
                StatusCode::CONFLICT,
                Some(&form),
                None,
                Some(e.to_string()),
            )
            .await
        }
        Err(e) => Err(PageError::unexpected(v.loc, &e)),
    }
}

pub struct BanLine {
    pub ip: String,
    pub reason: String,
    pub created: String,
    pub expires: String,
    pub created_by: String,
}

#[derive(Template)]
#[template(path = "pages/console/platform_bans.html")]
struct BansPage<'a> {
    c: Shell<'a>,
    bans: Vec<BanLine>,
    ip: String,
    reason: String,
    hours: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

async fn bans_page(
    v: &Platform<'_>,
    status: StatusCode,
    form: Option<&Params>,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let bans = protection::list_bans(&v.state.pool)
        .await
        .map_err(|e| PageError::unexpected(v.loc, &e))?;
    let field = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_string();
    let never = v.texts().never;
    v.page(
        status,
        BansPage {
            c: v.shell("/admin/bans"),
            bans: bans
                .into_iter()
                .map(|b| BanLine {
                    created: format_instant(b.created_at),
                    expires: b
                        .expires_at
                        .map(format_instant)
                        .unwrap_or_else(|| never.to_string()),
                    ip: b.ip,
                    reason: b.reason,
                    created_by: b.created_by,
                })
                .collect(),
            ip: field("ip"),
            reason: field("reason"),
            hours: field("expires_in_hours"),
            notice,
            error,
        },
    )
}

fn ban_error(v: &Platform<'_>, e: BanError) -> Result<(StatusCode, String), PageError> {
    match e {
        BanError::Invalid(m) => Ok((StatusCode::UNPROCESSABLE_ENTITY, m)),
        BanError::NotFound => Ok((StatusCode::NOT_FOUND, e.to_string())),
        BanError::Unexpected(e) => Err(PageError::unexpected(v.loc, &e)),
    }
}

/// `GET /admin/bans`
pub async fn bans_get(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    let v = visit!(platform_session(&state, &req, locale(&req, None)));
    bans_page(&v, StatusCode::OK, None, None, None).await
}

/// `POST /admin/bans` `ip`, `reason`, `expires_in_hours` (empty: permanent)
pub async fn bans_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let v = visit!(platform_form(&state, &req, &form, locale(&req, None)));
    // Empty: permanent; the range is the domain's (in seconds).
    let expires_in_secs = match form
        .get("expires_in_hours")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::parse::<i64>)
    {
        None => None,
        Some(Ok(h)) if h >= 1 => Some(h.saturating_mul(3600)),
        Some(_) => {
            let ct = v.texts();
            let why = format!("{}: {}", ct.lifted_after_hours, ct.not_a_number);
            return bans_page(
                &v,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&form),
                None,
                Some(why),
            )
            .await;
        }
    };
    let reason = form.get("reason").map(str::trim).filter(|r| !r.is_empty());
    let banned = state
        .protection
        .ban(
            &state.pool,
            &state.audit,
            BanRequest {
                target: form.get("ip").unwrap_or("").trim(),
                reason,
                expires_in_secs,
            },
            &v.actor(),
            &audit_context(&req),
        )
        .await;
    match banned {
        Ok(_) => {
            bans_page(
                &v,
                StatusCode::CREATED,
                None,
                Some(v.texts().ban_added),
                None,
            )
            .await
        }
        Err(e) => {
            let (status, why) = ban_error(&v, e)?;
            bans_page(&v, status, Some(&form), None, Some(why)).await
        }
    }
}

/// `POST /admin/bans/lift` `ip`
pub async fn ban_lift_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let v = visit!(platform_form(&state, &req, &form, locale(&req, None)));
    let lifted = state
        .protection
        .unban(
            &state.pool,
            &state.audit,
            form.get("ip").unwrap_or(""),
            &v.actor(),
            &audit_context(&req),
        )
        .await;
    match lifted {
        Ok(()) => bans_page(&v, StatusCode::OK, None, Some(v.texts().ban_lifted), None).await,
        Err(e) => {
            let (status, why) = ban_error(&v, e)?;
            bans_page(&v, status, None, None, Some(why)).await
        }
    }
}
