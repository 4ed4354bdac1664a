//! The console's roles: the list with "Import a template", "New role" (tenant-wide or an app
//! role of a client), the editor (permissions from the catalogue plus any of the tenant's
//! own, inherited roles; read-only without `roles:update`, and for the built-in `admin`
//! role) and deletion after a confirmation page. The rules are the domain's, as the admin
//! API calls them: [`rbac::create_role`], [`rbac::update_role`], [`rbac::delete_role`],
//! [`rbac::import_template`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::visit::{console_form, console_session, Console, Shell};
use crate::authorization::Params;
use crate::error::PageError;
use crate::http::api::common::path_id;
use crate::http::extractors::{PageForm, TenantProvider};
use crate::http::pages::common::locale;
use crate::rbac::{self, RbacError};
use crate::state::AppState;
use crate::storage::{parse_list, roles::RoleRow};

pub struct RoleLine {
    pub href: String,
    pub name: String,
    pub scope: String,
    pub permissions: String,
    pub inherits: String,
}

#[derive(Template)]
#[template(path = "pages/console/roles.html")]
struct RolesPage<'a> {
    c: Shell<'a>,
    roles: Vec<RoleLine>,
    new_href: Option<String>,
    import_action: Option<String>,
    templates: Vec<(&'static str, &'static str)>,
    notice: Option<String>,
    error: Option<String>,
}

pub struct Check {
    pub value: String,
    pub id: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "pages/console/role_form.html")]
struct RoleFormPage<'a> {
    c: Shell<'a>,
    /// None: a new role.
    role_name: Option<String>,
    scope: String,
    action: String,
    name: String,
    description: String,
    /// (client id, name, selected) for a new role's scope.
    clients: Vec<(String, String, bool)>,
    permissions: Vec<Check>,
    other_permissions: String,
    inherits: Vec<Check>,
    editable: bool,
    builtin: bool,
    delete_href: Option<String>,
    error: Option<String>,
    notice: Option<&'static str>,
    back: String,
}

/// What the role form was given (or holds): the lists as the form sends them.
struct RoleValues {
    name: String,
    description: String,
    client_id: String,
    permissions: Vec<String>,
    inherits: Vec<String>,
}

impl RoleValues {
    fn of(r: &RoleRow) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            client_id: r.client_id.clone(),
            permissions: parse_list(&r.permissions),
            inherits: parse_list(&r.inherits),
        }
    }

    /// The checked boxes (one field per box, `perm.<permission>` and `inherit.<role>`,
    /// since a form's repeated names are not kept) and the lines of "other permissions".
    fn from_form(form: &Params, base: Option<&RoleRow>) -> Self {
        let many = |prefix: &str| -> Vec<String> {
            let mut v: Vec<String> = form
                .values
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .filter_map(|(k, _)| k.strip_prefix(prefix))
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        let mut permissions = many("perm.");
        for line in form.get("other_permissions").unwrap_or("").lines() {
            let line = line.trim();
            if !line.is_empty() && !permissions.iter().any(|p| p == line) {
                permissions.push(line.to_string());
            }
        }
        Self {
            name: base
                .map(|r| r.name.clone())
                .unwrap_or_else(|| form.get("name").unwrap_or("").to_string()),
            description: form.get("description").unwrap_or("").to_string(),
            client_id: base
                .map(|r| r.client_id.clone())
                .unwrap_or_else(|| form.get("client_id").unwrap_or("").to_string()),
            permissions,
            inherits: many("inherit."),
        }
    }
}

fn refusal(c: &Console<'_>, e: RbacError) -> Result<String, PageError> {
    match e {
        RbacError::Invalid(m) => Ok(m),
        RbacError::AlreadyExists => Ok("a role with this name already exists".into()),
        RbacError::NotFound(what) => Ok(format!("{what} does not exist")),
        RbacError::NotHeld { required, held } => Ok(c.not_held(&required, &held)),
        RbacError::Unexpected(e) => Err(PageError::unexpected(c.loc, &e)),
    }
}

async fn list_page(
    c: &Console<'_>,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let roles = rbac::list_roles(&c.state.pool, &c.p.tenant).await?;
    let ct = c.texts();
    let can_create = c.can("roles:create");
    c.page(
        status,
        RolesPage {
            c: c.shell("/roles"),
            roles: roles
                .iter()
                .map(|r| RoleLine {
                    href: c.url(&format!("/roles/{}", r.id)),
                    name: r.name.clone(),
                    scope: if r.client_id.is_empty() {
                        ct.tenant_wide.to_string()
                    } else {
                        r.client_id.clone()
                    },
                    permissions: parse_list(&r.permissions).join(" "),
                    inherits: parse_list(&r.inherits).join(", "),
                })
                .collect(),
            new_href: can_create.then(|| c.url("/roles/new")),
            import_action: can_create.then(|| c.url("/roles/import")),
            templates: rbac::TEMPLATES
                .iter()
                .map(|t| (t.name, t.description))
                .collect(),
            notice,
            error,
        },
    )
}

async fn form_page(
    c: &Console<'_>,
    status: StatusCode,
    role: Option<&RoleRow>,
    v: RoleValues,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let state = c.state;
    let tenant = &c.p.tenant;
    let catalogue = rbac::permission_catalogue(&state.pool, tenant).await?;
    let permissions: Vec<Check> = catalogue
        .iter()
        .enumerate()
        .map(|(i, p)| Check {
            value: p.clone(),
            id: format!("perm-{i}"),
            checked: v.permissions.contains(p),
        })
        .collect();
    let other_permissions = v
        .permissions
        .iter()
        .filter(|p| !catalogue.contains(p))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let all = rbac::list_roles(&state.pool, tenant).await?;
    let inherits = all
        .iter()
        .filter(|r| role.is_none_or(|x| x.id != r.id))
        .filter(|r| r.client_id.is_empty() || r.client_id == v.client_id)
        .enumerate()
        .map(|(i, r)| Check {
            value: r.name.clone(),
            id: format!("inherit-{i}"),
            checked: v.inherits.contains(&r.name),
        })
        .collect();
    let builtin = role.is_some_and(|r| r.client_id.is_empty() && r.name == rbac::ADMIN_ROLE);
    let (action, editable, clients, delete_href) = match role {
        Some(r) => (
            c.url(&format!("/roles/{}", r.id)),
            c.can("roles:update") && !builtin,
            Vec::new(),
            (c.can("roles:delete") && !builtin).then(|| c.url(&format!("/roles/{}/delete", r.id))),
        ),
        None => {
            let clients = crate::clients::list_clients(state.clients(), tenant)
                .await
                .map_err(|e| PageError::unexpected(c.loc, &e))?
                .into_iter()
                .filter(|x| x.id != crate::clients::first_party_client_id(tenant))
                .map(|x| {
                    let selected = x.id == v.client_id;
                    (x.id, x.name, selected)
                })
                .collect();
            (c.url("/roles"), true, clients, None)
        }
    };
    c.page(
        status,
        RoleFormPage {
            c: c.shell("/roles"),
            role_name: role.map(|r| r.name.clone()),
            scope: if v.client_id.is_empty() {
                c.texts().tenant_wide.to_string()
            } else {
                v.client_id.clone()
            },
            action,
            name: v.name,
            description: v.description,
            clients,
            permissions,
            other_permissions,
            inherits,
            editable,
            builtin,
            delete_href,
            error,
            notice,
            back: c.url("/roles"),
        },
    )
}

async fn find(c: &Console<'_>, id: &str) -> Result<RoleRow, PageError> {
    rbac::find_role_by_id(&c.state.pool, &c.p.tenant, id)
        .await?
        .ok_or_else(|| c.not_found())
}

/// `GET {issuer}/admin/roles` (roles:read)
pub async fn roles_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("roles:read")?;
    list_page(&c, StatusCode::OK, None, None).await
}

/// `GET {issuer}/admin/roles/new` (roles:create)
pub async fn role_new_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("roles:create")?;
    let v = RoleValues {
        name: String::new(),
        description: String::new(),
        client_id: String::new(),
        permissions: Vec::new(),
        inherits: Vec::new(),
    };
    form_page(&c, StatusCode::OK, None, v, None, None).await
}

/// `POST {issuer}/admin/roles` (roles:create)
pub async fn roles_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("roles:create")?;
    let v = RoleValues::from_form(&form, None);
    let new = rbac::NewRole {
        name: v.name.clone(),
        description: v.description.clone(),
        permissions: v.permissions.clone(),
        inherits: v.inherits.clone(),
        client_id: Some(v.client_id.clone()).filter(|x| !x.is_empty()),
    };
    match rbac::create_role(&state.pool, &p.tenant, new).await {
        Ok(role) => {
            c.audit("role.created", ("role", &role.name));
            form_page(
                &c,
                StatusCode::CREATED,
                Some(&role),
                RoleValues::of(&role),
                None,
                Some(c.texts().role_created),
            )
            .await
        }
        Err(e) => {
            let why = refusal(&c, e)?;
            form_page(
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                v,
                Some(why),
                None,
            )
            .await
        }
    }
}

/// `GET {issuer}/admin/roles/{id}` (roles:read; editable with roles:update)
pub async fn role_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("roles:read")?;
    let role = find(&c, path_id(&req)).await?;
    let v = RoleValues::of(&role);
    form_page(&c, StatusCode::OK, Some(&role), v, None, None).await
}

/// `POST {issuer}/admin/roles/{id}` (roles:update)
pub async fn role_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("roles:update")?;
    let role = find(&c, path_id(&req)).await?;
    let v = RoleValues::from_form(&form, Some(&role));
    let change = rbac::RoleChange {
        description: v.description.clone(),
        permissions: v.permissions.clone(),
        inherits: v.inherits.clone(),
    };
    match rbac::update_role(&state.pool, &p.tenant, &role.id, change, c.permissions()).await {
        Ok(saved) => {
            c.audit("role.updated", ("role", &saved.name));
            let v = RoleValues::of(&saved);
            form_page(
                &c,
                StatusCode::OK,
                Some(&saved),
                v,
                None,
                Some(c.texts().saved),
            )
            .await
        }
        Err(e) => {
            let status = if matches!(e, RbacError::NotHeld { .. }) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let why = refusal(&c, e)?;
            form_page(&c, status, Some(&role), v, Some(why), None).await
        }
    }
}

/// `GET {issuer}/admin/roles/{id}/delete` (roles:delete) — asks first.
pub async fn delete_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("roles:delete")?;
    let role = find(&c, path_id(&req)).await?;
    let ct = c.texts();
    c.confirm(
        "/roles",
        &role.name,
        ct.confirm_delete_role,
        c.url(&format!("/roles/{}/delete", role.id)),
        ct.delete,
        c.url(&format!("/roles/{}", role.id)),
    )
}

/// `POST {issuer}/admin/roles/{id}/delete` (roles:delete)
pub async fn delete_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("roles:delete")?;
    let role = find(&c, path_id(&req)).await?;
    match rbac::delete_role(&state.pool, &p.tenant, &role.id).await {
        Ok(deleted) => {
            c.audit("role.deleted", ("role", &deleted.name));
            let notice = c.texts().role_deleted.to_string();
            list_page(&c, StatusCode::OK, Some(notice), None).await
        }
        Err(e) => {
            let why = refusal(&c, e)?;
            list_page(&c, StatusCode::UNPROCESSABLE_ENTITY, None, Some(why)).await
        }
    }
}

/// `POST {issuer}/admin/roles/import` `template=<name>` (roles:create)
pub async fn import_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("roles:create")?;
    let template = form.get("template").unwrap_or("");
    match rbac::import_template(&state.pool, &p.tenant, template).await {
        Ok(created) => {
            c.audit("role.template_imported", ("template", template));
            let ct = c.texts();
            let notice = if created.is_empty() {
                ct.nothing_imported.to_string()
            } else {
                format!("{}{}", ct.roles_imported, created.join(", "))
            };
            list_page(&c, StatusCode::OK, Some(notice), None).await
        }
        Err(e) => {
            let why = refusal(&c, e)?;
            list_page(&c, StatusCode::UNPROCESSABLE_ENTITY, None, Some(why)).await
        }
    }
}
