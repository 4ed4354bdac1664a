//! Provisioning: creating a tenant with everything it needs to work — the tenant row, its
//! first signing keys (an active and a next key per algorithm) and the built-in roles.
//! Orchestrates `tenants`, `keys` and `rbac`, which know nothing of each other.

use crate::crypto::MasterKey;
use crate::keys;
use crate::rbac;
use crate::storage::Pool;
use crate::tenants::{self, Tenant, TenantError, TenantSlug};

/// Creates a tenant with its first signing keys and the built-in `admin` role.
pub async fn create_tenant(
    pool: &Pool,
    master_key: &MasterKey,
    slug: &TenantSlug,
    name: Option<&str>,
) -> Result<Tenant, TenantError> {
    let tenant = tenants::insert_tenant(pool, slug, name).await?;
    keys::provision_initial_keys(pool, master_key, &tenant).await?;
    rbac::create_builtin_roles(pool, &tenant).await?;
    Ok(tenant)
}
