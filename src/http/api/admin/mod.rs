//! The admin API (`{issuer}/api/v1/admin/…`): clients, users, signing keys, tenant settings
//! and the audit log of one tenant, authorised by the caller's permissions (a user token's
//! or an API key's scopes); and, at the root, tenants (platform keys only). Every write is
//! audited.

pub mod clients;
pub mod tenant;
pub mod tenants;
pub mod users;
