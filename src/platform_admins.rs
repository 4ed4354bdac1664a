//! Platform administrators: the people who run the installation (tenants, bans) through the
//! console at the root `/admin`. They are not users of any tenant; `portcullis admin create`
//! adds them. Their passwords follow the default policy and are hashed by the same bounded
//! hasher as users'; a console session is a random token whose digest alone is stored.

use crate::accounts::{self, AccountError, Email, Password, PasswordHasher};
use crate::crypto;
use crate::storage::lockout::Ledger;
use crate::storage::{self, platform::PlatformAdminRow, Pool};
use crate::tenants::LockoutPolicy;

/// How long a platform console session lasts (absolute).
pub const SESSION_TTL: i64 = 8 * 3600;

#[derive(Debug, Clone)]
pub struct PlatformAdmin {
    pub id: String,
    pub email: String,
    pub created_at: i64,
    pub last_sign_in_at: Option<i64>,
}

impl From<PlatformAdminRow> for PlatformAdmin {
    fn from(r: PlatformAdminRow) -> Self {
        Self {
            id: r.id,
            email: r.email,
            created_at: r.created_at,
            last_sign_in_at: r.last_sign_in_at,
        }
    }
}

/// Adds a platform administrator (`portcullis admin create`).
pub async fn create(
    pool: &Pool,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> Result<PlatformAdmin, AccountError> {
    let email = Email::parse(email)?;
    let password = Password::parse(password)?;
    let row = PlatformAdminRow {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.key(),
        password_hash: hasher.hash(password.expose()).await?,
        created_at: storage::now(),
        last_sign_in_at: None,
    };
    if !storage::platform::insert_admin(pool, &row).await? {
        return Err(AccountError::AlreadyExists);
    }
    Ok(row.into())
}

/// Every platform administrator, oldest first (`portcullis admin list`).
pub async fn list(pool: &Pool) -> Result<Vec<PlatformAdmin>, sqlx::Error> {
    Ok(storage::platform::list_admins(pool)
        .await?
        .into_iter()
        .map(PlatformAdmin::from)
        .collect())
}

/// Removes an administrator and ends their sessions (`portcullis admin remove`).
pub async fn remove(pool: &Pool, email: &str) -> Result<(), AccountError> {
    let email = Email::parse(email)?;
    if !storage::platform::delete_admin(pool, &email.key()).await? {
        return Err(AccountError::NotFound);
    }
    Ok(())
}

/// Sets a new password (the default policy) and ends every session of the administrator
/// (`portcullis admin password`).
pub async fn set_password(
    pool: &Pool,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> Result<(), AccountError> {
    let email = Email::parse(email)?;
    let password = Password::parse(password)?;
    let hash = hasher.hash(password.expose()).await?;
    if !storage::platform::set_password_hash(pool, &email.key(), &hash).await? {
        return Err(AccountError::NotFound);
    }
    Ok(())
}

/// Checks an administrator's address and password — an unknown address costs the same
/// hash as a wrong password — and opens a session: the administrator and the session
/// token for the cookie. Failures are counted per address, known or not, with the default
/// lockout policy (5 in 15 minutes lock the address for 15 minutes); a success resets them.
pub async fn sign_in(
    pool: &Pool,
    hasher: &PasswordHasher,
    email: &str,
    password: &str,
) -> Result<(PlatformAdmin, String), AccountError> {
    let (row, outdated) = accounts::check_password(
        pool,
        hasher,
        Ledger::Platform,
        &LockoutPolicy::default(),
        email,
        password,
        async |key: String| {
            let row = storage::platform::find_admin_by_email(pool, &key).await?;
            Ok(row.map(|r| {
                let stored = Some(r.password_hash.clone());
                (r, stored)
            }))
        },
    )
    .await?;
    let now = storage::now();
    let new_hash = if outdated {
        Some(hasher.hash(password).await?)
    } else {
        None
    };
    storage::platform::record_sign_in(pool, &row.id, new_hash.as_deref(), now).await?;
    let token = crypto::random_token(32);
    storage::platform::insert_session(
        pool,
        &crypto::token_digest(&token),
        &row.id,
        now,
        now + SESSION_TTL,
    )
    .await?;
    Ok((row.into(), token))
}

/// The administrator of a live session token.
pub async fn session(pool: &Pool, token: &str) -> Result<Option<PlatformAdmin>, sqlx::Error> {
    if token.len() != 43 {
        return Ok(None);
    }
    Ok(
        storage::platform::find_session_admin(pool, &crypto::token_digest(token), storage::now())
            .await?
            .map(PlatformAdmin::from),
    )
}

/// Ends a session.
pub async fn sign_out(pool: &Pool, token: &str) -> Result<(), sqlx::Error> {
    storage::platform::delete_session(pool, &crypto::token_digest(token)).await
}
