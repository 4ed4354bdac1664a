//! Role-based access control: roles carry `resource:action` permissions (with `resource:*`
//! and `*` wildcards), may inherit other roles and may be scoped to one client (app
//! roles). Computes the effective roles and permissions that go into tokens.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::storage::{self, json_list, parse_list, roles::RoleRow, Pool};
use crate::tenants::Tenant;

/// `*`, or colon-separated segments of `[a-z0-9_.-]` whose last may be `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission(String);

impl Permission {
    pub fn parse(s: &str) -> Result<Self, RbacError> {
        let segments: Vec<&str> = s.split(':').collect();
        let ok = s == "*"
            || (segments.len() >= 2
                && segments.iter().enumerate().all(|(i, seg)| {
                    (*seg == "*" && i == segments.len() - 1)
                        || (!seg.is_empty()
                            && seg.bytes().all(|b| {
                                b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)
                            }))
                }));
        if ok && s.len() <= 200 {
            Ok(Self(s.to_string()))
        } else {
            Err(RbacError::Invalid(format!(
                "permission {s:?} must look like resource:action (wildcards: resource:*, *)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether holding `self` grants `wanted` (`*` grants all; `users:*` grants
    /// `users:read` and `users:roles:assign`).
    pub fn grants(&self, wanted: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => wanted.starts_with(prefix),
            None => self.0 == wanted,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("{0}")]
    Invalid(String),
    #[error("role already exists")]
    AlreadyExists,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change would hand out permissions its author does not hold.
    #[error("insufficient permissions")]
    NotHeld {
        required: Vec<String>,
        held: Vec<String>,
    },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for RbacError {
    fn from(e: sqlx::Error) -> Self {
        RbacError::Unexpected(e.into())
    }
}

pub const ADMIN_ROLE: &str = "admin";

pub async fn create_builtin_roles(pool: &Pool, tenant: &Tenant) -> Result<(), sqlx::Error> {
    let row = RoleRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        client_id: String::new(),
        name: ADMIN_ROLE.into(),
        description: "Tenant administrator: every permission".into(),
        permissions: json_list(&["*".to_string()]),
        inherits: "[]".into(),
        created_at: storage::now(),
    };
    storage::roles::insert_role(pool, &row).await
}

pub async fn find_role(
    pool: &Pool,
    tenant: &Tenant,
    name: &str,
) -> Result<Option<RoleRow>, sqlx::Error> {
    storage::roles::find_role_by_name(pool, &tenant.id, "", name).await
}

/// A role to create: tenant-wide, or an app role scoped to one client (seed 004).
#[derive(Debug, Clone, Default)]
pub struct NewRole {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub inherits: Vec<String>,
    pub client_id: Option<String>,
}

/// Creates a role. Inherited roles must already exist (so no cycle can ever form); an app
/// role may inherit roles of its client or tenant-wide ones.
pub async fn create_role(pool: &Pool, tenant: &Tenant, new: NewRole) -> Result<RoleRow, RbacError> {
    let name = new.name.as_str();
    if name.is_empty()
        || name.len() > 100
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(RbacError::Invalid(
            "role name must be 1-100 characters of letters, digits, '_', '.', '-'".into(),
        ));
    }
    let client_id = new.client_id.unwrap_or_default();
    if !client_id.is_empty()
        && storage::clients::find_client(pool, &tenant.id, &client_id)
            .await?
            .is_none()
    {
        return Err(RbacError::NotFound("client"));
    }
    let perms = valid_permissions(&new.description, &new.permissions)?;
    for parent in &new.inherits {
        let own = storage::roles::find_role_by_name(pool, &tenant.id, &client_id, parent).await?;
        if own.is_none() && find_role(pool, tenant, parent).await?.is_none() {
            return Err(RbacError::Invalid(format!(
                "inherited role {parent:?} does not exist"
            )));
        }
    }
    let row = RoleRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        client_id,
        name: name.to_string(),
        description: new.description.clone(),
        permissions: json_list(&perms),
        inherits: json_list(&new.inherits),
        created_at: storage::now(),
    };
    match storage::roles::insert_role(pool, &row).await {
        Ok(()) => Ok(row),
        Err(e) if storage::is_unique_violation(&e) => Err(RbacError::AlreadyExists),
        Err(e) => Err(e.into()),
    }
}

/// The description and permissions of a role as given, checked.
fn valid_permissions(description: &str, permissions: &[String]) -> Result<Vec<String>, RbacError> {
    if description.len() > 500 {
        return Err(RbacError::Invalid(
            "description must be at most 500 characters".into(),
        ));
    }
    permissions
        .iter()
        .map(|p| Permission::parse(p).map(|p| p.0))
        .collect()
}

/// What an update of a role may change: its name and client stay.
#[derive(Debug, Clone, Default)]
pub struct RoleChange {
    pub description: String,
    pub permissions: Vec<String>,
    pub inherits: Vec<String>,
}

/// A role of the tenant by its id.
pub async fn find_role_by_id(
    pool: &Pool,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<RoleRow>, sqlx::Error> {
    Ok(storage::roles::list_roles(pool, &tenant.id)
        .await?
        .into_iter()
        .find(|r| r.id == id))
}

/// Changes a role's description, permissions and inherited roles. The built-in `admin` role
/// stays as it is; inherited roles must exist and must not lead back to the role; and since
/// whoever holds the role gets the change at once, its author must hold every permission
/// the role will carry (`held`) — as nobody grants a role they could not hold.
pub async fn update_role(
    pool: &Pool,
    tenant: &Tenant,
    id: &str,
    change: RoleChange,
    held: &[String],
) -> Result<RoleRow, RbacError> {
    let all = storage::roles::list_roles(pool, &tenant.id).await?;
    let current = all
        .iter()
        .find(|r| r.id == id)
        .ok_or(RbacError::NotFound("role"))?;
    if current.client_id.is_empty() && current.name == ADMIN_ROLE {
        return Err(RbacError::Invalid(
            "the built-in admin role cannot be changed".into(),
        ));
    }
    let perms = valid_permissions(&change.description, &change.permissions)?;
    for parent in &change.inherits {
        let exists = all.iter().any(|r| {
            r.name == *parent && (r.client_id == current.client_id || r.client_id.is_empty())
        });
        if !exists {
            return Err(RbacError::Invalid(format!(
                "inherited role {parent:?} does not exist"
            )));
        }
    }
    let updated = RoleRow {
        description: change.description,
        permissions: json_list(&perms),
        inherits: json_list(&change.inherits),
        ..current.clone()
    };
    let after: Vec<RoleRow> = all
        .iter()
        .map(|r| {
            if r.id == id {
                updated.clone()
            } else {
                r.clone()
            }
        })
        .collect();
    if inherits_itself(&after, &updated) {
        return Err(RbacError::Invalid(format!(
            "role {:?} would inherit itself",
            updated.name
        )));
    }
    let required = expand(
        &after,
        std::slice::from_ref(&updated.id),
        &updated.client_id,
    )
    .permissions;
    check_held(held, &required)?;
    storage::roles::update_role(pool, &tenant.id, &updated).await?;
    Ok(updated)
}

/// Whether following `role`'s inherited roles comes back to it.
fn inherits_itself(all: &[RoleRow], role: &RoleRow) -> bool {
    let find = |scope: &str, name: &str| {
        all.iter()
            .find(|r| r.client_id == scope && r.name == name)
            .or_else(|| {
                all.iter()
                    .find(|r| r.client_id.is_empty() && r.name == name)
            })
    };
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<&RoleRow> = parse_list(&role.inherits)
        .iter()
        .filter_map(|n| find(&role.client_id, n))
        .collect();
    while let Some(r) = queue.pop_front() {
        if r.id == role.id {
            return true;
        }
        if !seen.insert(r.id.clone()) {
            continue;
        }
        for parent in parse_list(&r.inherits) {
            if let Some(p) = find(&r.client_id, &parent) {
                queue.push_back(p);
            }
        }
    }
    false
}

/// Deletes a role (its assignments go with it). The built-in `admin` role stays, and so
/// does a role other roles inherit.
pub async fn delete_role(pool: &Pool, tenant: &Tenant, id: &str) -> Result<RoleRow, RbacError> {
    let all = storage::roles::list_roles(pool, &tenant.id).await?;
    let role = all
        .iter()
        .find(|r| r.id == id)
        .ok_or(RbacError::NotFound("role"))?;
    if role.client_id.is_empty() && role.name == ADMIN_ROLE {
        return Err(RbacError::Invalid(
            "the built-in admin role cannot be deleted".into(),
        ));
    }
    if let Some(heir) = all.iter().find(|r| {
        r.id != role.id
            && (r.client_id == role.client_id || role.client_id.is_empty())
            && parse_list(&r.inherits).contains(&role.name)
    }) {
        return Err(RbacError::Invalid(format!(
            "role {:?} inherits it; change that role first",
            heir.name
        )));
    }
    storage::roles::delete_role(pool, &tenant.id, id).await?;
    Ok(role.clone())
}

/// The permissions a role editor offers: those Portcullis checks and those the tenant's
/// roles already use.
pub async fn permission_catalogue(
    pool: &Pool,
    tenant: &Tenant,
) -> Result<Vec<String>, sqlx::Error> {
    let mut all: BTreeSet<String> = BUILTIN_PERMISSIONS.iter().map(|s| s.to_string()).collect();
    for r in list_roles(pool, tenant).await? {
        all.extend(parse_list(&r.permissions));
    }
    Ok(all.into_iter().collect())
}

/// `held` grants every one of `wanted`, or the refusal naming both.
pub fn check_held(held: &[String], wanted: &[String]) -> Result<(), RbacError> {
    if grants_all(held, wanted) {
        Ok(())
    } else {
        Err(RbacError::NotHeld {
            required: wanted.to_vec(),
            held: held.to_vec(),
        })
    }
}

/// Nobody hands out a role carrying permissions they do not hold (`held`).
pub async fn check_grantable(
    pool: &Pool,
    tenant: &Tenant,
    held: &[String],
    role: &RoleRow,
) -> Result<(), RbacError> {
    check_held(held, &role_permissions(pool, tenant, role).await?)
}

/// The roles assigned to a user directly (not those they inherit).
pub async fn user_roles(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Vec<RoleRow>, sqlx::Error> {
    let ids = storage::roles::list_user_role_ids(pool, user_id).await?;
    Ok(storage::roles::list_roles(pool, &tenant.id)
        .await?
        .into_iter()
        .filter(|r| ids.contains(&r.id))
        .collect())
}

/// Takes a directly assigned role from a user; false when they did not hold it.
pub async fn unassign_role(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
    role: &RoleRow,
) -> Result<bool, RbacError> {
    if storage::users::find_user(pool, &tenant.id, user_id)
        .await?
        .is_none()
    {
        return Err(RbacError::NotFound("user"));
    }
    Ok(storage::roles::delete_user_role(pool, user_id, &role.id).await?)
}

/// A tenant-wide role, or an app role of `client_id`.
pub async fn find_scoped_role(
    pool: &Pool,
    tenant: &Tenant,
    client_id: Option<&str>,
    name: &str,
) -> Result<Option<RoleRow>, sqlx::Error> {
    storage::roles::find_role_by_name(pool, &tenant.id, client_id.unwrap_or(""), name).await
}

/// A documented starting set of roles a tenant can import.
pub struct Template {
    pub name: &'static str,
    pub description: &'static str,
    pub roles: &'static [(
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
}

/// Role templates (name, description, permissions, inherits per role).
pub const TEMPLATES: [Template; 2] = [
    Template {
        name: "financial-institution",
        description: "Payments institution roles (treasury, operator, securities, forex, viewer, auditor); admin is built in",
        roles: &[
            ("viewer", "Read-only access", &["transactions:read", "settlements:read", "str:balance:read", "securities:read", "forex:read", "cash:read"], &[]),
            ("auditor", "Compliance auditor: read all and generate extracts", &["extracts:create", "audit:read"], &["viewer"]),
            ("operator", "Transaction operator (TED, DOC)", &["transactions:create", "transactions:cancel", "ted:create", "doc:create"], &["viewer"]),
            ("treasury", "Treasury operations: STR, TED, DOC, balance, settlements", &["str:*", "ted:*", "doc:*", "settlements:*", "transactions:*", "cash:create"], &["viewer"]),
            ("securities", "Securities desk: SEL, CTP", &["securities:*", "sel:*", "ctp:*"], &["viewer"]),
            ("forex", "FX desk: CAM", &["forex:*", "cam:*"], &["viewer"]),
        ],
    },
    Template {
        name: "analytics-platform",
        description: "Viewer, analyst; admin is built in",
        roles: &[
            ("viewer", "Read own data", &["data:read"], &[]),
            ("analyst", "Upload, process, chat, export", &["data:upload", "data:process", "chat:use", "data:export"], &["viewer"]),
        ],
    },
];

/// Creates the roles of a template that do not exist yet; returns the names created.
pub async fn import_template(
    pool: &Pool,
    tenant: &Tenant,
    template: &str,
) -> Result<Vec<String>, RbacError> {
    let t = TEMPLATES
        .iter()
        .find(|t| t.name == template)
        .ok_or_else(|| RbacError::Invalid(format!("unknown template {template:?}")))?;
    let mut created = Vec::new();
    for (name, description, perms, inherits) in t.roles {
        if find_role(pool, tenant, name).await?.is_some() {
            continue;
        }
        let new = NewRole {
            name: name.to_string(),
            description: description.to_string(),
            permissions: perms.iter().map(|p| p.to_string()).collect(),
            inherits: inherits.iter().map(|p| p.to_string()).collect(),
            client_id: None,
        };
        create_role(pool, tenant, new).await?;
        created.push(name.to_string());
    }
    Ok(created)
}

/// Everything Portcullis itself checks (SPEC "Permissions Portcullis itself checks").
pub const BUILTIN_PERMISSIONS: [&str; 29] = [
    "clients:read",
    "clients:create",
    "clients:update",
    "clients:delete",
    "users:read",
    "users:create",
    "users:update",
    "users:delete",
    "users:roles:assign",
    "roles:read",
    "roles:create",
    "roles:update",
    "roles:delete",
    "apikeys:read",
    "apikeys:create",
    "apikeys:revoke",
    "sso:read",
    "sso:configure",
    "keys:read",
    "keys:rotate",
    "settings:read",
    "settings:update",
    "audit:read",
    "tenants:read",
    "tenants:create",
    "bans:read",
    "bans:create",
    "bans:delete",
    "*",
];

/// Whether `held` grants every one of `wanted`.
pub fn grants_all(held: &[String], wanted: &[String]) -> bool {
    let held: Vec<Permission> = held
        .iter()
        .filter_map(|p| Permission::parse(p).ok())
        .collect();
    wanted.iter().all(|w| {
        held.iter().any(|h| {
            if w == "*" {
                h.as_str() == "*"
            } else if let Some(prefix) = w.strip_suffix('*') {
                // A wildcard is granted only by a wildcard at least as broad.
                h.as_str() == "*"
                    || h.as_str()
                        .strip_suffix('*')
                        .is_some_and(|hp| prefix.starts_with(hp))
            } else {
                h.grants(w)
            }
        })
    })
}

pub async fn list_roles(pool: &Pool, tenant: &Tenant) -> Result<Vec<RoleRow>, sqlx::Error> {
    storage::roles::list_roles(pool, &tenant.id).await
}

/// The permissions a role carries, with those of the roles it inherits.
pub async fn role_permissions(
    pool: &Pool,
    tenant: &Tenant,
    role: &RoleRow,
) -> Result<Vec<String>, sqlx::Error> {
    let all = storage::roles::list_roles(pool, &tenant.id).await?;
    Ok(expand(&all, std::slice::from_ref(&role.id), &role.client_id).permissions)
}

/// Gives a user of this tenant a tenant-wide role.
pub async fn assign_role(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
    role: &RoleRow,
) -> Result<(), RbacError> {
    if storage::users::find_user(pool, &tenant.id, user_id)
        .await?
        .is_none()
    {
        return Err(RbacError::NotFound("user"));
    }
    storage::roles::insert_user_role(pool, user_id, &role.id).await?;
    Ok(())
}

/// The roles a user holds (directly or by inheritance) that apply to `client_id`
/// (tenant-wide roles and that client's app roles), and their permissions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

pub async fn effective_access(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
    client_id: &str,
) -> Result<Access, sqlx::Error> {
    let direct = storage::roles::list_user_role_ids(pool, user_id).await?;
    if direct.is_empty() {
        return Ok(Access::default());
    }
    let all = storage::roles::list_roles(pool, &tenant.id).await?;
    Ok(expand(&all, &direct, client_id))
}

fn expand(all: &[RoleRow], direct: &[String], client_id: &str) -> Access {
    let by_id: HashMap<&str, &RoleRow> = all.iter().map(|r| (r.id.as_str(), r)).collect();
    let by_name: HashMap<(&str, &str), &RoleRow> = all
        .iter()
        .map(|r| ((r.client_id.as_str(), r.name.as_str()), r))
        .collect();
    let mut seen = BTreeSet::new();
    let mut roles = BTreeSet::new();
    let mut perms = BTreeSet::new();
    let mut queue: VecDeque<&RoleRow> = direct
        .iter()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    while let Some(role) = queue.pop_front() {
        if !seen.insert(role.id.as_str()) {
            continue;
        }
        if !role.client_id.is_empty() && role.client_id != client_id {
            continue;
        }
        roles.insert(role.name.clone());
        perms.extend(parse_list(&role.permissions));
        for parent in parse_list(&role.inherits) {
            let found = by_name
                .get(&(role.client_id.as_str(), parent.as_str()))
                .or_else(|| by_name.get(&("", parent.as_str())));
            if let Some(p) = found {
                queue.push_back(p);
            }
        }
    }
    Access {
        roles: roles.into_iter().collect(),
        permissions: perms.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: &str, name: &str, client: &str, perms: &[&str], inherits: &[&str]) -> RoleRow {
        RoleRow {
            id: id.into(),
            tenant_id: "t".into(),
            client_id: client.into(),
            name: name.into(),
            description: String::new(),
            permissions: serde_json::to_string(perms).unwrap(),
            inherits: serde_json::to_string(inherits).unwrap(),
            created_at: 0,
        }
    }

    #[test]
    fn wildcards_grant_what_they_cover() {
        assert!(Permission::parse("*").unwrap().grants("users:read"));
        assert!(Permission::parse("users:*")
            .unwrap()
            .grants("users:roles:assign"));
        assert!(!Permission::parse("users:*").unwrap().grants("clients:read"));
        assert!(!Permission::parse("users:read")
            .unwrap()
            .grants("users:create"));
    }

    #[test]
    fn malformed_permissions_are_refused() {
        for bad in [
            "users",
            "Users:read",
            "users::read",
            "*:read",
            "users:re ad",
        ] {
            assert!(Permission::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn inherited_roles_add_their_permissions_and_cycles_terminate() {
        let all = vec![
            role("1", "viewer", "", &["reports:read"], &["operator"]),
            role("2", "operator", "", &["orders:process"], &["viewer"]),
            role("3", "app-admin", "other-client", &["*"], &[]),
        ];
        let a = expand(&all, &["1".into(), "3".into()], "my-client");
        assert_eq!(a.roles, vec!["operator", "viewer"]);
        assert_eq!(a.permissions, vec!["orders:process", "reports:read"]);
    }
}
