//! A console visit: the session check (sign-in, step-up, permissions), the layout's shell,
//! the CSRF check of its forms and the audit of its writes, shared by every console page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::accounts::{self, User};
use crate::audit::{self, AuditEvent};
use crate::authorization::{self, Params};
use crate::error::PageError;
use crate::http::extractors::audit_context;
use crate::http::pages::common::{
    check_csrf, csrf_seed, csrf_token, current_session, form_page, frame,
};
use crate::http::pages::error::Frame;
use crate::i18n::{ConsoleTexts, Locale};
use crate::provider::Provider;
use crate::rbac;
use crate::state::AppState;

/// The CSRF binding of the console's forms.
const CONSOLE_FORM: &str = "console";

/// A signed-in administrator's visit: who, what they may do, and the CSRF token of the
/// forms the page will show.
pub struct Console<'a> {
    pub state: &'a AppState,
    pub req: &'a HttpRequest,
    pub p: &'a Provider,
    pub loc: Locale,
    pub user: User,
    permissions: Vec<String>,
    /// When this session last gave a second factor (its sign-in time when its acr is 2).
    verified_at: Option<i64>,
    /// Whether the user has a second factor to give (only looked up when the tenant lists
    /// step-up permissions).
    has_factor: bool,
    seed: String,
    new_seed: bool,
}

/// One entry of the console's navigation.
pub struct NavItem {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// What every console page shows around its content.
pub struct Shell<'a> {
    pub f: Frame<'a>,
    pub ct: &'static ConsoleTexts,
    pub nav: Vec<NavItem>,
    pub user_email: String,
    pub csrf: String,
    pub sign_out: String,
}

/// The console's sections: (path under `/admin`, the permission that shows it).
const SECTIONS: &[(&str, &str)] = &[
    ("", ""),
    ("/clients", "clients:read"),
    ("/users", "users:read"),
    ("/roles", "roles:read"),
    ("/api-keys", "apikeys:read"),
    ("/sso", "sso:read"),
    ("/keys", "keys:read"),
    ("/settings", "settings:read"),
    ("/audit", "audit:read"),
];

impl<'a> Console<'a> {
    /// Whether the user's roles grant `permission` (the admin API's rule).
    pub fn can(&self, permission: &str) -> bool {
        rbac::grants_all(&self.permissions, &[permission.to_string()])
    }

    /// Every permission the user's roles grant (what they may hand out to others).
    pub fn permissions(&self) -> &[String] {
        &self.permissions
    }

    /// `permission`, or the "not allowed" page (403). A change (POST) using a permission the
    /// tenant lists in `mfa_step_up_permissions` also needs a second factor given in the
    /// last five minutes, when the user has one (the admin API's rule,
    /// [`crate::mfa::needs_fresh_factor`]): else a 403 page leading to `/admin/step-up`.
    pub fn require(&self, permission: &str) -> Result<(), PageError> {
        let ct = self.texts();
        if !self.can(permission) {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                self.loc,
                ct.not_allowed,
            ));
        }
        if self.has_factor
            && self.req.method() == actix_web::http::Method::POST
            && crate::mfa::needs_fresh_factor(&self.p.tenant, permission, self.verified_at)
        {
            return Err(
                PageError::new(StatusCode::FORBIDDEN, self.loc, ct.step_up_needed)
                    .with_link(self.url("/step-up"), ct.give_second_factor),
            );
        }
        Ok(())
    }

    /// The URL of a console path (`""` is the dashboard).
    pub fn url(&self, path: &str) -> String {
        self.p.endpoint(&format!("/admin{path}"))
    }

    pub fn texts(&self) -> &'static ConsoleTexts {
        self.loc.console()
    }

    /// The frame of a page of section `current` (its path under `/admin`).
    pub fn shell(&self, current: &str) -> Shell<'a> {
        let ct = self.texts();
        let label = |path: &str| match path {
            "/clients" => ct.nav_clients,
            "/users" => ct.nav_users,
            "/roles" => ct.nav_roles,
            "/api-keys" => ct.nav_api_keys,
            "/sso" => ct.nav_sso,
            "/keys" => ct.nav_keys,
            "/settings" => ct.nav_settings,
            "/audit" => ct.nav_audit,
            _ => ct.nav_dashboard,
        };
        Shell {
            f: frame(self.p, self.loc),
            ct,
            nav: SECTIONS
                .iter()
                .filter(|(_, perm)| perm.is_empty() || self.can(perm))
                .map(|(path, _)| NavItem {
                    href: self.url(path),
                    label: label(path),
                    current: *path == current,
                })
                .collect(),
            user_email: self.user.email.clone(),
            csrf: csrf_token(self.state, &self.seed, CONSOLE_FORM),
            sign_out: self.p.endpoint("/logout"),
        }
    }

    /// A rendered page, setting the CSRF cookie its forms need when the browser has none.
    pub fn page(
        &self,
        status: StatusCode,
        page: impl askama::Template,
    ) -> Result<HttpResponse, PageError> {
        render(
            self.state,
            self.loc,
            status,
            page,
            &self.seed,
            self.new_seed,
        )
    }

    /// The page asking to confirm a destructive action: `message`, then a button posting to
    /// `action` and a link back to `cancel`.
    pub fn confirm(
        &self,
        section: &str,
        title: &str,
        message: &'static str,
        action: String,
        button: &'static str,
        cancel: String,
    ) -> Result<HttpResponse, PageError> {
        self.page(
            StatusCode::OK,
            ConfirmPage {
                c: self.shell(section),
                title,
                message,
                action,
                button,
                cancel,
            },
        )
    }

    /// The page showing a new secret, once.
    pub fn secret(
        &self,
        section: &str,
        status: StatusCode,
        s: Secret<'_>,
    ) -> Result<HttpResponse, PageError> {
        self.page(
            status,
            SecretPage {
                c: self.shell(section),
                s,
            },
        )
    }

    /// Why a change that would hand out `required` was refused: "not allowed" with the
    /// permissions of it the visitor does not hold (`held`).
    pub fn not_held(&self, required: &[String], held: &[String]) -> String {
        let missing: Vec<&str> = required
            .iter()
            .filter(|p| !rbac::grants_all(held, std::slice::from_ref(*p)))
            .map(String::as_str)
            .collect();
        format!("{} ({})", self.texts().not_allowed, missing.join(", "))
    }

    /// The console's "not found" page (404).
    pub fn not_found(&self) -> PageError {
        PageError::new(StatusCode::NOT_FOUND, self.loc, self.texts().not_found)
    }

    /// Audits a change made in the console: the user as actor, `source: console`.
    pub fn audit(&self, event: &'static str, detail: (&str, &str)) {
        self.audit_with(event, &[detail]);
    }

    /// [`Console::audit`] with several details.
    pub fn audit_with(&self, event: &'static str, details: &[(&str, &str)]) {
        let mut e = AuditEvent::new(event, Some(&self.p.tenant)).actor(Some(&self.user.id));
        for (k, v) in details {
            e = e.detail(k, *v);
        }
        audit::record(
            &self.state.audit,
            e.detail("source", "console"),
            &audit_context(self.req),
        );
    }
}

/// The console visit of this request, or where the browser must go first: the sign-in (no
/// session), the second factor (a password-only session, when the console requires one), or
/// a page saying why the console is closed to this user.
pub async fn console_session<'a>(
    state: &'a AppState,
    req: &'a HttpRequest,
    p: &'a Provider,
    loc: Locale,
) -> Result<Result<Console<'a>, HttpResponse>, PageError> {
    let ct = loc.console();
    let Some(session) = current_session(state, req, p).await? else {
        let id = authorization::own_page_sign_in(
            state.authorization(),
            p,
            "/admin",
            None,
            None,
            Some(loc.tag()),
        )
        .await
        .map_err(PageError::from)?;
        return Ok(Err(crate::http::pages::common::to_step(p, "/login", &id)));
    };
    let user = accounts::find_user(&state.pool, &p.tenant, &session.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| PageError::new(StatusCode::FORBIDDEN, loc, ct.no_console_access))?;
    let first_party = crate::clients::first_party_client_id(&p.tenant);
    let access = rbac::effective_access(&state.pool, &p.tenant, &user.id, &first_party).await?;
    if access.permissions.is_empty() {
        return closed(p, loc, ct.no_console_access, None).map(Err);
    }
    if p.tenant.settings.console_requires_mfa && !crate::sessions::acr_satisfies(&session.acr, "2")
    {
        if !has_second_factor(state, p, &user.id, loc).await? {
            return closed(p, loc, ct.console_needs_mfa, Some(p.endpoint("/account"))).map(Err);
        }
        // A step-up of this session (OIDC Core §3.1.2.1 acr_values "2"), back to the console.
        return step_up_redirect(state, p, loc, None).await.map(Err);
    }
    let (seed, new_seed) = csrf_seed(state, req);
    Ok(Ok(Console {
        state,
        req,
        p,
        loc,
        user,
        permissions: access.permissions,
        verified_at: crate::sessions::acr_satisfies(&session.acr, "2").then_some(session.auth_time),
        has_factor: false,
        seed,
        new_seed,
    }))
}

/// Whether the user has a second factor to give (TOTP, or a passkey where passkeys work).
async fn has_second_factor(
    state: &AppState,
    p: &Provider,
    user_id: &str,
    loc: Locale,
) -> Result<bool, PageError> {
    let passkeys_on = crate::passkeys::available(&state.config.public_url);
    Ok(
        crate::mfa::second_factors(&state.pool, &p.tenant, user_id, passkeys_on)
            .await
            .map_err(|e| PageError::unexpected(loc, &e))?
            .any(),
    )
}

/// The sign-in with the second factor (acr `2`) that brings the browser back to the
/// console: a step-up of a password-only session, or — with `max_age` — a new sign-in, as
/// `/admin/step-up` asks ([`crate::mfa::MFA_FRESHNESS`]) before changes under the tenant's
/// step-up permissions.
pub async fn step_up_redirect(
    state: &AppState,
    p: &Provider,
    loc: Locale,
    max_age: Option<i64>,
) -> Result<HttpResponse, PageError> {
    let id = authorization::own_page_sign_in(
        state.authorization(),
        p,
        "/admin",
        Some("2"),
        max_age,
        Some(loc.tag()),
    )
    .await
    .map_err(PageError::from)?;
    Ok(crate::http::pages::common::to_step(p, "/continue", &id))
}

/// A rendered console page (tenant or platform), setting the CSRF cookie `seed` its forms
/// need when the browser has none (`new_seed`).
pub fn render(
    state: &AppState,
    loc: Locale,
    status: StatusCode,
    page: impl askama::Template,
    seed: &str,
    new_seed: bool,
) -> Result<HttpResponse, PageError> {
    let body = page.render().map_err(|e| PageError::unexpected(loc, &e))?;
    Ok(form_page(state, status, body, seed.to_string(), new_seed))
}

/// A secret shown once (a client secret, an API key), with what it belongs to.
pub struct Secret<'a> {
    pub label: &'static str,
    pub id_label: &'static str,
    pub id: &'a str,
    pub once: &'static str,
    pub value: &'a str,
    pub notice: Option<&'static str>,
    pub back: String,
}

#[derive(askama::Template)]
#[template(path = "pages/console/secret.html")]
struct SecretPage<'a> {
    c: Shell<'a>,
    s: Secret<'a>,
}

/// The page asking to confirm an action (see [`Console::confirm`]).
#[derive(askama::Template)]
#[template(path = "pages/console/confirm.html")]
pub struct ConfirmPage<'a> {
    pub c: Shell<'a>,
    pub title: &'a str,
    pub message: &'static str,
    pub action: String,
    pub button: &'static str,
    pub cancel: String,
}

#[derive(askama::Template)]
#[template(path = "pages/console/closed.html")]
struct ClosedPage<'a> {
    f: Frame<'a>,
    ct: &'static ConsoleTexts,
    message: &'a str,
    account: Option<String>,
}

/// The page saying why the console is closed to this user (403), with the way to the
/// account page when that is where to fix it.
fn closed(
    p: &Provider,
    loc: Locale,
    message: &str,
    account: Option<String>,
) -> Result<HttpResponse, PageError> {
    let body = askama::Template::render(&ClosedPage {
        f: frame(p, loc),
        ct: loc.console(),
        message,
        account,
    })
    .map_err(|e| PageError::unexpected(loc, &e))?;
    Ok(HttpResponse::Forbidden()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// The CSRF check of a console form, then the visit.
pub async fn console_form<'a>(
    state: &'a AppState,
    req: &'a HttpRequest,
    p: &'a Provider,
    form: &Params,
    loc: Locale,
) -> Result<Result<Console<'a>, HttpResponse>, PageError> {
    check_csrf(state, req, form, CONSOLE_FORM, loc)?;
    let mut c = match console_session(state, req, p, loc).await? {
        Ok(c) => c,
        elsewhere => return Ok(elsewhere),
    };
    // Whether the step-up rule has a second factor to ask for: forms only (pages are read),
    // and only when the session's own factor is not recent enough already.
    if !p.tenant.settings.mfa_step_up_permissions.is_empty()
        && !crate::mfa::recently_verified(c.verified_at)
    {
        c.has_factor = has_second_factor(state, p, &c.user.id, loc).await?;
    }
    Ok(Ok(c))
}
