//! The console's users: search and pages of the list, "New user", and a user's page — the
//! profile form, disable/enable, lifting a lockout, resetting the second factors, deleting
//! (each destructive action after a confirmation page), the directly assigned roles and the
//! live sessions with "Sign out". The rules are the domain's, as the admin API calls them:
//! [`accounts`], [`user_admin`], [`rbac::check_grantable`], [`sessions`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::visit::{console_form, console_session, Console, Shell};
use crate::accounts::{self, AccountError, Email, NewUser, Password, Profile, User};
use crate::authorization::Params;
use crate::error::PageError;
use crate::http::api::common::path_id;
use crate::http::extractors::{query_params, PageForm, TenantProvider};
use crate::http::pages::common::locale;
use crate::rbac::{self, RbacError};
use crate::sessions;
use crate::state::AppState;
use crate::storage::{format_instant, roles::RoleRow};
use crate::user_admin;

const PAGE_SIZE: i64 = 25;

pub struct UserRow {
    pub href: String,
    pub email: String,
    pub name: String,
    pub disabled: bool,
}

#[derive(Template)]
#[template(path = "pages/console/users.html")]
struct UsersPage<'a> {
    c: Shell<'a>,
    users: Vec<UserRow>,
    search: String,
    action: String,
    next: Option<String>,
    new_href: Option<String>,
    notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "pages/console/user_new.html")]
struct NewUserPage<'a> {
    c: Shell<'a>,
    action: String,
    email: String,
    name: String,
    error: Option<String>,
    back: String,
}

pub struct RoleItem {
    pub id: String,
    pub label: String,
    /// The form that takes the role back, when the visitor may.
    pub remove: Option<String>,
}

pub struct SessionItem {
    pub started: String,
    pub ip: String,
    pub browser: String,
    pub end: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/console/user.html")]
struct UserPage<'a> {
    c: Shell<'a>,
    user: User,
    base: String,
    can_update: bool,
    can_delete: bool,
    totp: bool,
    passkey: bool,
    roles: Vec<RoleItem>,
    /// Roles that can be added, when the visitor may assign roles.
    assignable: Option<Vec<RoleItem>>,
    sessions: Vec<SessionItem>,
    notice: Option<&'static str>,
    error: Option<String>,
    back: String,
}

fn role_label(r: &RoleRow) -> String {
    if r.client_id.is_empty() {
        r.name.clone()
    } else {
        format!("{} ({})", r.name, r.client_id)
    }
}

/// `GET {issuer}/admin/users?q=&cursor=` (users:read)
pub async fn users_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("users:read")?;
    let q = query_params(&req);
    let search = q.get("q").map(|s| s.trim().to_string()).unwrap_or_default();
    let cursor = q.get("cursor").and_then(crate::storage::parse_cursor);
    list_page(&c, &search, cursor, None).await
}

async fn list_page(
    c: &Console<'_>,
    search: &str,
    cursor: Option<(i64, &str)>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let mut page = accounts::list_users(
        &c.state.pool,
        &c.p.tenant,
        cursor,
        Some(search),
        PAGE_SIZE + 1,
    )
    .await?;
    let next = if page.len() as i64 > PAGE_SIZE {
        page.truncate(PAGE_SIZE as usize);
        page.last().map(|(u, created)| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("q", search);
            query.append_pair("cursor", &crate::storage::format_cursor(*created, &u.id));
            format!("{}?{}", c.url("/users"), query.finish())
        })
    } else {
        None
    };
    c.page(
        StatusCode::OK,
        UsersPage {
            c: c.shell("/users"),
            users: page
                .iter()
                .map(|(u, _)| UserRow {
                    href: c.url(&format!("/users/{}", u.id)),
                    email: u.email.clone(),
                    name: u.profile.name.clone().unwrap_or_default(),
                    disabled: u.disabled,
                })
                .collect(),
            search: search.to_string(),
            action: c.url("/users"),
            next,
            new_href: c.can("users:create").then(|| c.url("/users/new")),
            notice,
        },
    )
}

fn new_user_page(
    c: &Console<'_>,
    status: StatusCode,
    form: Option<&Params>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let field = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_string();
    c.page(
        status,
        NewUserPage {
            c: c.shell("/users"),
            action: c.url("/users"),
            email: field("email"),
            name: field("name"),
            error,
            back: c.url("/users"),
        },
    )
}

/// `GET {issuer}/admin/users/new` (users:create)
pub async fn user_new_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("users:create")?;
    new_user_page(&c, StatusCode::OK, None, None)
}

/// What the user fixes in a form: the domain's refusal in words, or an unexpected failure.
fn form_refusal(e: AccountError) -> Result<String, PageError> {
    match e {
        AccountError::Validation(m) => Ok(m),
        AccountError::WeakPassword(_)
        | AccountError::PasswordReused
        | AccountError::AlreadyExists => Ok(e.to_string()),
        other => Err(other.into()),
    }
}

/// `POST {issuer}/admin/users` (users:create)
pub async fn users_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:create")?;
    let new = Email::parse(form.get("email").unwrap_or("")).and_then(|email| {
        Ok(NewUser {
            email,
            password: form.get("password").map(Password::parse).transpose()?,
            profile: Profile {
                name: form.get("name").map(str::to_string),
                ..Profile::default()
            },
            email_verified: false,
            roles: Vec::new(),
            attributes: Default::default(),
        })
    });
    let created = match new {
        Ok(new) => accounts::create_user(&state.pool, &state.hasher, &p.tenant, new).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(user) => {
            c.audit("user.created", ("user_id", &user.id));
            user_page(
                &c,
                StatusCode::CREATED,
                user,
                Some(c.texts().user_created),
                None,
            )
            .await
        }
        Err(e) => {
            let why = form_refusal(e)?;
            new_user_page(&c, StatusCode::UNPROCESSABLE_ENTITY, Some(&form), Some(why))
        }
    }
}

async fn find(c: &Console<'_>, id: &str) -> Result<User, PageError> {
    accounts::find_user(&c.state.pool, &c.p.tenant, id)
        .await?
        .ok_or_else(|| c.not_found())
}

async fn user_page(
    c: &Console<'_>,
    status: StatusCode,
    user: User,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let state = c.state;
    let tenant = &c.p.tenant;
    let base = c.url(&format!("/users/{}", user.id));
    let factors = crate::mfa::second_factors(&state.pool, tenant, &user.id, true)
        .await
        .map_err(|e| PageError::unexpected(c.loc, &e))?;
    let can_assign = c.can("users:roles:assign");
    let held = rbac::user_roles(&state.pool, tenant, &user.id).await?;
    let roles = held
        .iter()
        .map(|r| RoleItem {
            id: r.id.clone(),
            label: role_label(r),
            remove: can_assign.then(|| format!("{base}/roles/{}/remove", r.id)),
        })
        .collect();
    let assignable = if can_assign {
        Some(
            rbac::list_roles(&state.pool, tenant)
                .await?
                .iter()
                .filter(|r| !held.iter().any(|h| h.id == r.id))
                .map(|r| RoleItem {
                    id: r.id.clone(),
                    label: role_label(r),
                    remove: None,
                })
                .collect(),
        )
    } else {
        None
    };
    let can_update = c.can("users:update");
    let sessions = sessions::list_user_sessions(&state.pool, tenant, &user.id)
        .await?
        .into_iter()
        .map(|s| SessionItem {
            started: format_instant(s.created_at),
            ip: s.ip.unwrap_or_default(),
            browser: s.user_agent.unwrap_or_default(),
            end: can_update.then(|| format!("{base}/sessions/{}/end", s.sid)),
        })
        .collect();
    c.page(
        status,
        UserPage {
            c: c.shell("/users"),
            base,
            can_update,
            can_delete: c.can("users:delete"),
            totp: factors.totp,
            passkey: factors.passkey,
            roles,
            assignable,
            sessions,
            notice,
            error,
            back: c.url("/users"),
            user,
        },
    )
}

/// `GET {issuer}/admin/users/{id}` (users:read)
pub async fn user_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("users:read")?;
    let user = find(&c, path_id(&req)).await?;
    user_page(&c, StatusCode::OK, user, None, None).await
}

/// `POST {issuer}/admin/users/{id}` (users:update) — the profile form: the names change, the
/// other profile claims stay.
pub async fn user_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:update")?;
    let user = find(&c, path_id(&req)).await?;
    let profile = Profile {
        name: form.get("name").map(str::to_string),
        given_name: form.get("given_name").map(str::to_string),
        family_name: form.get("family_name").map(str::to_string),
        ..user.profile.clone()
    };
    match accounts::update_profile(&state.pool, &p.tenant, &user.id, profile).await {
        Ok(saved) => {
            c.audit("user.updated", ("user_id", &saved.id));
            user_page(&c, StatusCode::OK, saved, Some(c.texts().saved), None).await
        }
        Err(e) => {
            let why = form_refusal(e)?;
            user_page(&c, StatusCode::UNPROCESSABLE_ENTITY, user, None, Some(why)).await
        }
    }
}

/// The confirmation pages of a user's destructive actions.
async fn confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: &crate::provider::Provider,
    permission: &str,
    action: &str,
    message: fn(&crate::i18n::ConsoleTexts) -> (&'static str, &'static str),
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, p, locale(&req, None)));
    c.require(permission)?;
    let user = find(&c, path_id(&req)).await?;
    let (message, button) = message(c.texts());
    let base = c.url(&format!("/users/{}", user.id));
    c.confirm(
        "/users",
        &user.email,
        message,
        format!("{base}/{action}"),
        button,
        base.clone(),
    )
}

/// `GET {issuer}/admin/users/{id}/disable` (users:update) — asks first.
pub async fn disable_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    confirm(state, req, &p, "users:update", "disable", |t| {
        (t.confirm_disable_user, t.disable)
    })
    .await
}

/// `GET {issuer}/admin/users/{id}/reset-mfa` (users:update) — asks first.
pub async fn reset_mfa_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    confirm(state, req, &p, "users:update", "reset-mfa", |t| {
        (t.confirm_reset_mfa, t.reset_mfa)
    })
    .await
}

/// `GET {issuer}/admin/users/{id}/delete` (users:delete) — asks first.
pub async fn delete_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    confirm(state, req, &p, "users:delete", "delete", |t| {
        (t.confirm_delete_user, t.delete)
    })
    .await
}

/// `POST {issuer}/admin/users/{id}/disable` (users:update)
pub async fn disable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    set_disabled(state, req, p, form, true).await
}

/// `POST {issuer}/admin/users/{id}/enable` (users:update)
pub async fn enable_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    set_disabled(state, req, p, form, false).await
}

async fn set_disabled(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: std::sync::Arc<crate::provider::Provider>,
    form: Params,
    disabled: bool,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:update")?;
    let user = find(&c, path_id(&req)).await?;
    let user =
        user_admin::set_disabled(&state.pool, &state.outbound, &p, &user.id, disabled).await?;
    let (event, notice) = if disabled {
        ("user.disabled", c.texts().user_disabled)
    } else {
        ("user.enabled", c.texts().user_enabled)
    };
    c.audit(event, ("user_id", &user.id));
    user_page(&c, StatusCode::OK, user, Some(notice), None).await
}

/// `POST {issuer}/admin/users/{id}/unlock` (users:update)
pub async fn unlock_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:update")?;
    let user = find(&c, path_id(&req)).await?;
    accounts::unlock(&state.pool, &p.tenant, &user.id).await?;
    c.audit("user.unlocked", ("user_id", &user.id));
    user_page(
        &c,
        StatusCode::OK,
        user,
        Some(c.texts().user_unlocked),
        None,
    )
    .await
}

/// `POST {issuer}/admin/users/{id}/reset-mfa` (users:update)
pub async fn reset_mfa_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:update")?;
    let user = find(&c, path_id(&req)).await?;
    user_admin::reset_second_factors(&state.pool, &p, &user.id).await?;
    c.audit("user.mfa_reset", ("user_id", &user.id));
    user_page(
        &c,
        StatusCode::OK,
        user,
        Some(c.texts().mfa_was_reset),
        None,
    )
    .await
}

/// `POST {issuer}/admin/users/{id}/delete` (users:delete)
pub async fn delete_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:delete")?;
    let user = find(&c, path_id(&req)).await?;
    if !accounts::delete_user(&state.pool, &p.tenant, &user.id).await? {
        return Err(c.not_found());
    }
    c.audit("user.deleted", ("user_id", &user.id));
    list_page(&c, "", None, Some(c.texts().user_deleted)).await
}

/// A refusal of a role change, shown on the user's page: only someone holding the role's
/// permissions may hand it out or take it back.
fn role_refusal(c: &Console<'_>, e: RbacError) -> Result<String, PageError> {
    match e {
        RbacError::NotHeld { required, held } => Ok(c.not_held(&required, &held)),
        RbacError::Invalid(m) => Ok(m),
        RbacError::NotFound(what) => Ok(format!("{what} does not exist")),
        other => Err(PageError::unexpected(c.loc, &other)),
    }
}

/// `POST {issuer}/admin/users/{id}/roles` `role=<role id>` (users:roles:assign)
pub async fn role_add_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:roles:assign")?;
    let user = find(&c, path_id(&req)).await?;
    let role = rbac::find_role_by_id(&state.pool, &p.tenant, form.get("role").unwrap_or(""))
        .await?
        .ok_or_else(|| c.not_found())?;
    let outcome = match rbac::check_grantable(&state.pool, &p.tenant, c.permissions(), &role).await
    {
        Ok(()) => rbac::assign_role(&state.pool, &p.tenant, &user.id, &role).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => {
            c.audit_with(
                "role.assigned",
                &[("user_id", &user.id), ("role", &role.name)],
            );
            user_page(&c, StatusCode::OK, user, Some(c.texts().role_added), None).await
        }
        Err(e) => {
            let why = role_refusal(&c, e)?;
            user_page(&c, StatusCode::FORBIDDEN, user, None, Some(why)).await
        }
    }
}

/// `POST {issuer}/admin/users/{id}/roles/{role}/remove` (users:roles:assign)
pub async fn role_remove_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:roles:assign")?;
    let user = find(&c, path_id(&req)).await?;
    let role_id = req.match_info().get("role").unwrap_or("");
    let role = rbac::find_role_by_id(&state.pool, &p.tenant, role_id)
        .await?
        .ok_or_else(|| c.not_found())?;
    let outcome = match rbac::check_grantable(&state.pool, &p.tenant, c.permissions(), &role).await
    {
        Ok(()) => rbac::unassign_role(&state.pool, &p.tenant, &user.id, &role).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(removed) => {
            if removed {
                c.audit_with(
                    "role.unassigned",
                    &[("user_id", &user.id), ("role", &role.name)],
                );
            }
            user_page(&c, StatusCode::OK, user, Some(c.texts().role_removed), None).await
        }
        Err(e) => {
            let why = role_refusal(&c, e)?;
            user_page(&c, StatusCode::FORBIDDEN, user, None, Some(why)).await
        }
    }
}

/// `POST {issuer}/admin/users/{id}/sessions/{sid}/end` (users:update) — with back-channel
/// logout to the clients of that session.
pub async fn session_end_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:update")?;
    let user = find(&c, path_id(&req)).await?;
    let sid = req.match_info().get("sid").unwrap_or("");
    if !sessions::end_user_session(&state.pool, &state.outbound, &p, &user.id, sid).await? {
        return Err(c.not_found());
    }
    c.audit_with("signout", &[("user_id", &user.id), ("sid", sid)]);
    user_page(
        &c,
        StatusCode::OK,
        user,
        Some(c.texts().session_ended),
        None,
    )
    .await
}

/// `POST {issuer}/admin/users/{id}/sessions/end-all` (users:update) — every session and
/// every refresh token.
pub async fn sessions_end_all_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("users:update")?;
    let user = find(&c, path_id(&req)).await?;
    sessions::end_all_user_sessions(&state.pool, &state.outbound, &p, &user.id).await?;
    c.audit_with("signout", &[("user_id", &user.id), ("scope", "everywhere")]);
    user_page(
        &c,
        StatusCode::OK,
        user,
        Some(c.texts().sessions_ended),
        None,
    )
    .await
}
