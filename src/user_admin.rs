//! What an administrator does to a user beyond their profile, where it spans the people
//! modules: disabling (which also ends every session and revokes every refresh token, so a
//! disabled user is signed out at once, not at the next expiry) and resetting the second
//! factors (TOTP with its backup codes, and passkeys) of a user who lost them. The admin API
//! and the console both call these.

use std::sync::Arc;

use crate::accounts::{self, AccountError, User};
use crate::outbound::Outbound;
use crate::provider::Provider;
use crate::sessions;
use crate::storage::{self, Pool};

/// Disables (`true`) or enables a user; disabling signs them out everywhere.
pub async fn set_disabled(
    pool: &Pool,
    outbound: &Arc<Outbound>,
    provider: &Provider,
    user_id: &str,
    disabled: bool,
) -> Result<User, AccountError> {
    let tenant = &provider.tenant;
    if !storage::users::set_disabled(pool, &tenant.id, user_id, disabled, storage::now()).await? {
        return Err(AccountError::NotFound);
    }
    if disabled {
        sessions::end_all_user_sessions(pool, outbound, provider, user_id).await?;
    }
    accounts::find_user(pool, tenant, user_id)
        .await?
        .ok_or(AccountError::NotFound)
}

/// Removes every second factor of a user: their TOTP secret, backup codes and passkeys. They
/// sign in with their password next time (and enrol again where MFA is required).
pub async fn reset_second_factors(
    pool: &Pool,
    provider: &Provider,
    user_id: &str,
) -> Result<(), AccountError> {
    let tenant = &provider.tenant;
    accounts::find_user(pool, tenant, user_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    storage::mfa::delete_totp(pool, user_id).await?;
    storage::passkeys::delete_user_passkeys(pool, &tenant.id, user_id).await?;
    Ok(())
}
