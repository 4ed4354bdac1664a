//! Accounts: users, e-mail addresses, the password policy and Argon2id hashing. Password
//! hashing never runs on the async executor: it goes to the blocking pool behind a
//! semaphore sized to the cores. An unknown user is checked against a dummy hash so a
//! wrong e-mail and a wrong password take the same time and give the same answer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2_rust::params::Memory;
use argon2_rust::{decode_phc, Algorithm, Argon2, Hasher, Params, Version, RANDOM_SALT_LEN};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::{OnceCell, Semaphore};

use crate::config::Argon2Params;
use crate::mail::Mailer;
use crate::rbac;
use crate::storage::lockout::Ledger;
use crate::storage::{self, users::UserRow, Pool};
use crate::tenants::{LockoutPolicy, PasswordPolicy, Tenant};

/// An e-mail address: trimmed, one `@`, a dotted or local domain, at most 254 bytes.
/// Compared case-insensitively through [`Email::key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, AccountError> {
        let s = s.trim();
        let valid = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(s.to_string()))
        } else {
            Err(AccountError::Validation(
                "email is not a valid address".into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A new password that satisfies the policy (SPEC: at least 12 characters with upper,
/// lower, digit and symbol).
pub struct Password(SecretString);

impl Password {
    /// Checks the default policy (SPEC).
    pub fn parse(s: &str) -> Result<Self, AccountError> {
        Self::parse_with(s, &PasswordPolicy::default())
    }

    /// Checks a tenant's policy; every rule that fails is named, in words.
    pub fn parse_with(s: &str, policy: &PasswordPolicy) -> Result<Self, AccountError> {
        let mut missing = Vec::new();
        let len = s.chars().count();
        if len < policy.min_length {
            missing.push(format!("at least {} characters", policy.min_length));
        }
        if len > 1024 {
            missing.push("at most 1024 characters".to_string());
        }
        if policy.require_upper && !s.chars().any(|c| c.is_uppercase()) {
            missing.push("an upper-case letter".to_string());
        }
        if policy.require_lower && !s.chars().any(|c| c.is_lowercase()) {
            missing.push("a lower-case letter".to_string());
        }
        if policy.require_digit && !s.chars().any(|c| c.is_ascii_digit()) {
            missing.push("a digit".to_string());
        }
        if policy.require_symbol
            && !s
                .chars()
                .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
        {
            missing.push("a symbol".to_string());
        }
        if missing.is_empty() {
            Ok(Self(SecretString::from(s.to_string())))
        } else {
            Err(AccountError::WeakPassword(missing))
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Validation(String),
    /// The password rules that are not met.
    #[error("password needs {}", .0.join(", "))]
    WeakPassword(Vec<String>),
    #[error("the password was used recently; choose another")]
    PasswordReused,
    #[error("the link is invalid, expired or already used")]
    InvalidToken,
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    #[error("account is locked until {until}")]
    AccountLocked { until: i64 },
    #[error("a user with this e-mail already exists")]
    AlreadyExists,
    #[error("user not found")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Unexpected(e.into())
    }
}

/// The OpenID Connect Core §5.1 claims a user record holds besides the address: what the
/// `profile` scope releases. Set through the admin API, the CLI (`--name`) and upstream
/// attribute mapping.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    /// An https URL of the user's picture.
    pub picture: Option<String>,
    /// A BCP 47 language tag (`pt-BR`).
    pub locale: Option<String>,
    /// An IANA time zone (`America/Sao_Paulo`).
    pub zoneinfo: Option<String>,
}

impl Profile {
    /// Blank values are absent; each value is checked for its claim's form.
    pub fn normalised(self) -> Result<Self, AccountError> {
        let clean =
            |v: Option<String>, field: &str, max: usize| -> Result<Option<String>, AccountError> {
                match v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
                    Some(s) if s.chars().count() > max => Err(AccountError::Validation(format!(
                        "{field} is longer than {max} characters"
                    ))),
                    Some(s) if s.chars().any(char::is_control) => Err(AccountError::Validation(
                        format!("{field} contains control characters"),
                    )),
                    other => Ok(other),
                }
            };
        let p = Self {
            name: clean(self.name, "name", 200)?,
            given_name: clean(self.given_name, "given_name", 100)?,
            family_name: clean(self.family_name, "family_name", 100)?,
            preferred_username: clean(self.preferred_username, "preferred_username", 100)?,
            picture: clean(self.picture, "picture", 2000)?,
            locale: clean(self.locale, "locale", 35)?,
            zoneinfo: clean(self.zoneinfo, "zoneinfo", 64)?,
        };
        if let Some(u) = &p.picture {
            let ok = url::Url::parse(u).is_ok_and(|u| u.scheme() == "https" && u.host().is_some());
            if !ok {
                return Err(AccountError::Validation(
                    "picture must be an https URL".into(),
                ));
            }
        }
        if let Some(l) = &p.locale {
            let ok = l.split('-').all(|part| {
                (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
            });
            if !ok {
                return Err(AccountError::Validation(
                    "locale must be a BCP 47 language tag such as pt-BR".into(),
                ));
            }
        }
        if let Some(z) = &p.zoneinfo {
            let ok = z
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
                && !z.starts_with('/');
            if !ok {
                return Err(AccountError::Validation(
                    "zoneinfo must be an IANA time zone such as America/Sao_Paulo".into(),
                ));
            }
        }
        Ok(p)
    }

    /// The same checks, leaving out each value that fails instead of refusing the whole
    /// profile (for what an upstream provider sends).
    pub fn lenient(self) -> Self {
        let one = |p: Profile| p.normalised().unwrap_or_default();
        let d = Profile::default;
        Profile {
            name: one(Profile {
                name: self.name,
                ..d()
            })
            .name,
            given_name: one(Profile {
                given_name: self.given_name,
                ..d()
            })
            .given_name,
            family_name: one(Profile {
                family_name: self.family_name,
                ..d()
            })
            .family_name,
            preferred_username: one(Profile {
                preferred_username: self.preferred_username,
                ..d()
            })
            .preferred_username,
            picture: one(Profile {
                picture: self.picture,
                ..d()
            })
            .picture,
            locale: one(Profile {
                locale: self.locale,
                ..d()
            })
            .locale,
            zoneinfo: one(Profile {
                zoneinfo: self.zoneinfo,
                ..d()
            })
            .zoneinfo,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub email_verified: bool,
    pub profile: Profile,
    pub attributes: Map<String, Value>,
    pub disabled: bool,
    pub updated_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            attributes: serde_json::from_str(&r.attributes).unwrap_or_default(),
            id: r.id,
            tenant_id: r.tenant_id,
            email: r.email,
            email_verified: r.email_verified,
            profile: Profile {
                name: r.name,
                given_name: r.given_name,
                family_name: r.family_name,
                preferred_username: r.preferred_username,
                picture: r.picture,
                locale: r.locale,
                zoneinfo: r.zoneinfo,
            },
            disabled: r.disabled,
            updated_at: r.updated_at,
        }
    }
}

/// Argon2id hashing on the blocking pool, bounded to the number of cores.
///
/// Each hash runs on a [`Hasher`] that keeps its memory between hashes: a 64 MiB
/// (`memory_kib`) arena mapped once with transparent huge pages and wiped after every use,
/// instead of 16,384 fresh 4 KiB pages to fault in and zero per hash. At most one arena per
/// permit exists (the pool's resident size is `cores × memory_kib`); arenas unused for
/// [`PasswordHasher::IDLE_RELEASE`] are returned to the system by [`PasswordHasher::release_idle`].
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2,
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<(Hasher, Instant)>>>,
    dummy: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    /// How long an arena stays mapped without being used.
    pub const IDLE_RELEASE: Duration = Duration::from_secs(60);

    pub fn new(params: Argon2Params) -> Result<Self, anyhow::Error> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let p = Params::builder()
            .memory(Memory::kib(u64::from(params.memory_kib)))
            .passes(params.iterations)
            .lanes(params.parallelism)
            .build()
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, p),
            permits: Arc::new(Semaphore::new(cores)),
            idle: Arc::new(Mutex::new(Vec::with_capacity(cores))),
            dummy: Arc::new(OnceCell::new()),
        })
    }

    /// Runs `f` on the blocking pool with a pooled [`Hasher`], at most one per core at once.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hasher) -> Result<T, anyhow::Error> + Send + 'static,
    ) -> Result<T, anyhow::Error> {
        let _permit = self.permits.acquire().await?;
        let pooled = self.lock_idle().pop().map(|(h, _)| h);
        let mut hasher = pooled.unwrap_or_else(|| self.argon2.hasher());
        let (hasher, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut hasher);
            (hasher, result)
        })
        .await?;
        self.lock_idle().push((hasher, Instant::now()));
        result
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(Hasher, Instant)>> {
        // A panic while the lock is held cannot leave the list inconsistent: take it anyway.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unmaps (wiped) the arenas not used for `idle`; run by the background jobs.
    pub fn release_idle(&self, idle: Duration) {
        self.lock_idle().retain(|(_, used)| used.elapsed() < idle);
    }

    /// Arenas currently mapped by idle hashers (for tests and the README's memory figure).
    pub fn pooled_arenas(&self) -> usize {
        self.lock_idle()
            .iter()
            .filter(|(h, _)| h.reserved_blocks() > 0)
            .count()
    }

    pub async fn hash(&self, password: &str) -> Result<String, anyhow::Error> {
        let password = SecretString::from(password.to_string());
        self.run(move |hasher| {
            hasher
                .hash_password(
                    password.expose_secret().as_bytes(),
                    &crate::crypto::random_bytes(RANDOM_SALT_LEN),
                )
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await
    }

    /// Verifies `password` against `stored` (or against a dummy hash when there is no
    /// user, so both cost the same). Returns whether it matched and whether the stored
    /// hash uses other parameters than the configured ones (it is then re-hashed).
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: &str,
    ) -> Result<(bool, bool), anyhow::Error> {
        let real = stored.is_some();
        let stored = match stored {
            Some(s) => s,
            None => self.dummy_hash().await?,
        };
        let wanted = self.argon2;
        let password = SecretString::from(password.to_string());
        let (ok, outdated) = self
            .run(move |hasher| {
                let decoded =
                    decode_phc(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
                let (p, w) = (decoded.params, wanted.params());
                let outdated = decoded.algorithm != wanted.algorithm()
                    || decoded.version != wanted.version()
                    || p.memory_kib() != w.memory_kib()
                    || p.passes() != w.passes()
                    || p.lanes() != w.lanes()
                    || p.tag_len_bytes() != w.tag_len_bytes();
                let ok = hasher
                    .verify_encoded(
                        &stored,
                        password.expose_secret().as_bytes(),
                        decoded.algorithm,
                    )
                    .is_ok();
                Ok((ok, outdated))
            })
            .await?;
        Ok((ok && real, outdated))
    }

    async fn dummy_hash(&self) -> Result<String, anyhow::Error> {
        self.dummy
            .get_or_try_init(|| async { self.hash("portcullis dummy password").await })
            .await
            .cloned()
    }
}

/// What the mail-sending account flows (registration, password reset) use.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub hasher: &'a PasswordHasher,
    pub mailer: &'a Mailer,
    /// The base of the links in the mails.
    pub public_url: &'a str,
}

pub struct NewUser {
    pub email: Email,
    pub password: Option<Password>,
    pub profile: Profile,
    pub email_verified: bool,
    pub roles: Vec<String>,
    /// Free-form attributes (for example a department), usable in tenant custom claims as
    /// `"user.<name>"`.
    pub attributes: Map<String, Value>,
}

pub async fn create_user(
    pool: &Pool,
    hasher: &PasswordHasher,
    tenant: &Tenant,
    new: NewUser,
) -> Result<User, AccountError> {
    let profile = new.profile.clone().normalised()?;
    if storage::users::find_user_by_email(pool, &tenant.id, &new.email.key())
        .await?
        .is_some()
    {
        return Err(AccountError::AlreadyExists);
    }
    let mut role_ids = Vec::new();
    for name in &new.roles {
        let role = rbac::find_role(pool, tenant, name)
            .await
            .map_err(|e| AccountError::Unexpected(e.into()))?
            .ok_or_else(|| AccountError::Validation(format!("role {name:?} does not exist")))?;
        role_ids.push(role.id);
    }
    let hash = match &new.password {
        Some(p) => Some(hasher.hash(p.expose()).await?),
        None => None,
    };
    let now = storage::now();
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        email: new.email.as_str().to_string(),
        email_key: new.email.key(),
        email_verified: new.email_verified,
        password_hash: hash,
        name: profile.name,
        given_name: profile.given_name,
        family_name: profile.family_name,
        preferred_username: profile.preferred_username,
        picture: profile.picture,
        locale: profile.locale,
        zoneinfo: profile.zoneinfo,
        attributes: Value::Object(new.attributes.clone()).to_string(),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    if let Err(e) = storage::users::insert_user(pool, &row).await {
        return Err(if storage::is_unique_violation(&e) {
            AccountError::AlreadyExists
        } else {
            e.into()
        });
    }
    for role_id in role_ids {
        storage::roles::insert_user_role(pool, &row.id, &role_id).await?;
    }
    Ok(User::from(row))
}

pub async fn find_user(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Option<User>, AccountError> {
    Ok(storage::users::find_user(pool, &tenant.id, user_id)
        .await?
        .map(User::from))
}

/// Checks an e-mail and password. Unknown e-mail, disabled account and wrong password
/// are indistinguishable to the caller, in answer and in time. A correct password stored
/// with outdated Argon2 parameters is re-hashed with the current ones.
///
/// Brute force: see [`check_password`], with the tenant's lockout policy (SPEC: 5 in 15
/// minutes, for 15 minutes).
pub async fn authenticate(
    pool: &Pool,
    hasher: &PasswordHasher,
    tenant: &Tenant,
    email: &str,
    password: &str,
) -> Result<User, AccountError> {
    let (row, outdated) = check_password(
        pool,
        hasher,
        Ledger::Tenant(&tenant.id),
        &tenant.settings.lockout,
        email,
        password,
        async |key: String| {
            let row = storage::users::find_user_by_email(pool, &tenant.id, &key).await?;
            Ok(row.map(|r| {
                let stored = r.password_hash.clone().filter(|_| !r.disabled);
                (r, stored)
            }))
        },
    )
    .await?;
    if outdated {
        let hash = hasher.hash(password).await?;
        storage::users::update_password_hash(pool, &tenant.id, &row.id, &hash, storage::now())
            .await?;
    }
    Ok(User::from(row))
}

/// The brute-force guard around a password check, for tenant users and platform
/// administrators alike: a locked address is refused before any work; `find` looks the
/// account up by its address key and gives its stored hash (None when it may not sign in
/// with a password); an unknown address costs the same hash as a wrong password. Failures
/// are counted per address in `ledger` — known or not, so a lockout says nothing about
/// whether the account exists — and reaching `policy`'s threshold within its window locks
/// the address; a success resets the count. The account, and whether its hash uses outdated
/// parameters (for the caller to re-hash).
pub async fn check_password<T>(
    pool: &Pool,
    hasher: &PasswordHasher,
    ledger: Ledger<'_>,
    policy: &LockoutPolicy,
    email: &str,
    password: &str,
    find: impl AsyncFnOnce(String) -> Result<Option<(T, Option<String>)>, sqlx::Error>,
) -> Result<(T, bool), AccountError> {
    let email_key = email.trim().to_lowercase();
    if email_key.is_empty() || email_key.len() > 254 {
        return Err(AccountError::InvalidCredentials);
    }
    let now = storage::now();
    if let Some(until) = storage::lockout::find_lock(pool, ledger, &email_key, now).await? {
        return Err(AccountError::AccountLocked { until });
    }
    let found = match Email::parse(email) {
        Ok(_) => find(email_key.clone()).await?,
        Err(_) => None,
    };
    let (account, stored) = match found {
        Some((a, stored)) => (Some(a), stored),
        None => (None, None),
    };
    let (ok, outdated) = hasher.verify(stored, password).await?;
    let Some(account) = account.filter(|_| ok) else {
        return Err(
            match count_failure(pool, ledger, policy, &email_key).await? {
                Some(until) => AccountError::AccountLocked { until },
                None => AccountError::InvalidCredentials,
            },
        );
    };
    storage::lockout::clear_failures(pool, ledger, &email_key).await?;
    Ok((account, outdated))
}

/// Counts a failure for `email_key` in `ledger`; the end of the lockout when it is now locked.
async fn count_failure(
    pool: &Pool,
    ledger: Ledger<'_>,
    policy: &LockoutPolicy,
    email_key: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let now = storage::now();
    let locked = storage::lockout::record_failure(
        pool,
        ledger,
        email_key,
        now,
        policy.window_secs,
        policy.threshold.max(1),
        policy.duration_secs,
    )
    .await?;
    Ok(locked.filter(|until| *until > now))
}

/// A page of a tenant's users after the cursor `(created_at, id)`; with `search`, those
/// whose e-mail address contains it (case-insensitively).
pub async fn list_users(
    pool: &Pool,
    tenant: &Tenant,
    after: Option<(i64, &str)>,
    search: Option<&str>,
    limit: i64,
) -> Result<Vec<(User, i64)>, AccountError> {
    let search = search
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    Ok(
        storage::users::list_users(pool, &tenant.id, after, search.as_deref(), limit)
            .await?
            .into_iter()
            .map(|r| {
                let created = r.created_at;
                (User::from(r), created)
            })
            .collect(),
    )
}

/// Counts a failed sign-in step (a wrong password or a wrong second-factor code) for an
/// address; returns the end of the lockout when the address is now locked.
pub async fn record_failure(
    pool: &Pool,
    tenant: &Tenant,
    email: &str,
) -> Result<Option<i64>, sqlx::Error> {
    count_failure(
        pool,
        Ledger::Tenant(&tenant.id),
        &tenant.settings.lockout,
        &email.trim().to_lowercase(),
    )
    .await
}

/// Lifts a lockout of the user's address (admin action).
pub async fn unlock(pool: &Pool, tenant: &Tenant, user_id: &str) -> Result<(), AccountError> {
    let user = find_user(pool, tenant, user_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    storage::lockout::clear_failures(pool, Ledger::Tenant(&tenant.id), &user.email.to_lowercase())
        .await?;
    Ok(())
}

/// Deletes a user with their sessions, tokens and role assignments.
pub async fn delete_user(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
) -> Result<bool, AccountError> {
    let now = storage::now();
    storage::tokens::revoke_user_refresh_tokens(pool, &tenant.id, user_id, now).await?;
    Ok(storage::users::delete_user(pool, &tenant.id, user_id).await?)
}

impl User {
    /// The profile as the admin API shows it (never the password hash).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.profile.name,
            "profile": self.profile,
            "disabled": self.disabled,
            "attributes": self.attributes,
        })
    }
}

/// Replaces a user's profile claims (admin API `PATCH /admin/users/{id}`).
pub async fn update_profile(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
    profile: Profile,
) -> Result<User, AccountError> {
    let p = profile.normalised()?;
    let found = storage::users::update_user_profile(
        pool,
        &tenant.id,
        user_id,
        [
            &p.name,
            &p.given_name,
            &p.family_name,
            &p.preferred_username,
            &p.picture,
            &p.locale,
            &p.zoneinfo,
        ],
        storage::now(),
    )
    .await?;
    if !found {
        return Err(AccountError::NotFound);
    }
    find_user(pool, tenant, user_id)
        .await?
        .ok_or(AccountError::NotFound)
}

const VERIFY_EMAIL: &str = "verify_email";
const RESET_PASSWORD: &str = "reset_password";
const VERIFY_TTL: i64 = 24 * 3600;
const RESET_TTL: i64 = 3600;

async fn email_link(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    purpose: &str,
    ttl: i64,
) -> Result<String, AccountError> {
    let token = crate::crypto::random_token(32);
    let now = storage::now();
    storage::users::insert_email_token(
        d.pool,
        &crate::crypto::token_digest(&token),
        &tenant.id,
        user_id,
        purpose,
        now,
        now + ttl,
    )
    .await?;
    Ok(token)
}

fn issuer(d: Deps<'_>, tenant: &Tenant) -> String {
    crate::provider::issuer_for(d.public_url, &tenant.slug)
}

/// Sets a new password after checking the tenant's policy and history; the current hash
/// goes into the history; every refresh token of the user is revoked.
async fn set_password(
    pool: &Pool,
    hasher: &PasswordHasher,
    tenant: &Tenant,
    user_id: &str,
    current_hash: Option<String>,
    new: &str,
) -> Result<(), AccountError> {
    let policy = &tenant.settings.password_policy;
    let password = Password::parse_with(new, policy)?;
    let mut previous: Vec<String> = current_hash.iter().cloned().collect();
    previous.extend(
        storage::users::list_password_history(pool, user_id, (policy.history - 1).max(0)).await?,
    );
    for old in previous.into_iter().take(policy.history.max(0) as usize) {
        if hasher.verify(Some(old), password.expose()).await?.0 {
            return Err(AccountError::PasswordReused);
        }
    }
    let hash = hasher.hash(password.expose()).await?;
    let now = storage::now();
    storage::users::update_password_hash(pool, &tenant.id, user_id, &hash, now).await?;
    if let Some(old) = current_hash {
        storage::users::insert_password_history(pool, user_id, &old, now).await?;
    }
    storage::tokens::revoke_user_refresh_tokens(pool, &tenant.id, user_id, now).await?;
    Ok(())
}

/// Changes a password, asking for the current one.
pub async fn change_password(
    pool: &Pool,
    hasher: &PasswordHasher,
    tenant: &Tenant,
    user_id: &str,
    current: &str,
    new: &str,
) -> Result<(), AccountError> {
    let row = storage::users::find_user(pool, &tenant.id, user_id)
        .await?
        .ok_or(AccountError::NotFound)?;
    let (ok, _) = hasher.verify(row.password_hash.clone(), current).await?;
    if !ok {
        return Err(AccountError::InvalidCredentials);
    }
    set_password(pool, hasher, tenant, user_id, row.password_hash, new).await
}

/// Self-registration (when the tenant allows it). The answer never tells whether the
/// address already had an account: its owner gets a mail either way.
pub async fn register(
    d: Deps<'_>,
    tenant: &Tenant,
    email: &str,
    password: &str,
    name: Option<String>,
) -> Result<(), AccountError> {
    if !tenant.settings.self_registration {
        return Err(AccountError::NotFound);
    }
    let email = Email::parse(email)?;
    let password = Password::parse_with(password, &tenant.settings.password_policy)?;
    let new = NewUser {
        email: email.clone(),
        password: Some(password),
        profile: Profile {
            name,
            ..Profile::default()
        },
        email_verified: false,
        roles: vec![],
        attributes: Default::default(),
    };
    match create_user(d.pool, d.hasher, tenant, new).await {
        Ok(user) => {
            let token = email_link(d, tenant, &user.id, VERIFY_EMAIL, VERIFY_TTL).await?;
            let link = format!("{}/verify-email?token={token}", issuer(d, tenant));
            let body = format!(
                "Confirm your e-mail address for {}: {link}\n\nThe link works once, for 24 hours.",
                tenant.display_name()
            );
            crate::mail::send(
                d.pool,
                d.mailer,
                tenant,
                email.as_str(),
                "Confirm your e-mail address",
                &body,
            )
            .await?;
            Ok(())
        }
        Err(AccountError::AlreadyExists) => {
            let body = format!("Someone tried to create an account for this address at {}. You already have one; to reset your password, use \"forgot password\".", tenant.display_name());
            crate::mail::send(
                d.pool,
                d.mailer,
                tenant,
                email.as_str(),
                "You already have an account",
                &body,
            )
            .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Confirms an address with the single-use link of the verification mail.
pub async fn verify_email(pool: &Pool, tenant: &Tenant, token: &str) -> Result<(), AccountError> {
    let now = storage::now();
    let user_id = storage::users::use_email_token(
        pool,
        &crate::crypto::token_digest(token),
        &tenant.id,
        VERIFY_EMAIL,
        now,
    )
    .await?
    .ok_or(AccountError::InvalidToken)?;
    storage::users::set_email_verified(pool, &tenant.id, &user_id, now).await?;
    Ok(())
}

/// Sends a reset link if the address has an account; says nothing either way.
pub async fn request_password_reset(
    d: Deps<'_>,
    tenant: &Tenant,
    email: &str,
) -> Result<(), AccountError> {
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    let Some(user) = storage::users::find_user_by_email(d.pool, &tenant.id, &email.key()).await?
    else {
        return Ok(());
    };
    let token = email_link(d, tenant, &user.id, RESET_PASSWORD, RESET_TTL).await?;
    let link = format!("{}/reset-password?token={token}", issuer(d, tenant));
    let body = format!("Reset your password for {}: {link}\n\nThe link works once, for one hour. If you did not ask for it, ignore this mail.", tenant.display_name());
    crate::mail::send(
        d.pool,
        d.mailer,
        tenant,
        &user.email,
        "Reset your password",
        &body,
    )
    .await?;
    Ok(())
}

/// Sets a new password with the single-use link of the reset mail; lifts a lockout.
pub async fn reset_password(
    pool: &Pool,
    hasher: &PasswordHasher,
    tenant: &Tenant,
    token: &str,
    new: &str,
) -> Result<(), AccountError> {
    Password::parse_with(new, &tenant.settings.password_policy)?;
    let user_id = storage::users::use_email_token(
        pool,
        &crate::crypto::token_digest(token),
        &tenant.id,
        RESET_PASSWORD,
        storage::now(),
    )
    .await?
    .ok_or(AccountError::InvalidToken)?;
    let row = storage::users::find_user(pool, &tenant.id, &user_id)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    set_password(
        pool,
        hasher,
        tenant,
        &user_id,
        row.password_hash.clone(),
        new,
    )
    .await?;
    storage::lockout::clear_failures(pool, Ledger::Tenant(&tenant.id), &row.email_key).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_missing_a_character_class_are_refused_with_the_rule() {
        let err = Password::parse("alllowercase1!").err().unwrap().to_string();
        assert!(err.contains("upper-case"), "{err}");
        let err = Password::parse("Short1!").err().unwrap().to_string();
        assert!(err.contains("12 characters"), "{err}");
    }

    #[test]
    fn passwords_meeting_the_policy_are_accepted() {
        assert!(Password::parse("Correct-Horse-42").is_ok());
    }

    #[test]
    fn emails_are_compared_case_insensitively() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().key(),
            "ana@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "a b@example.com",
            "ana@@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_and_reports_outdated_parameters() {
        let cheap = Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let h = PasswordHasher::new(cheap).unwrap();
        let stored = h.hash("Correct-Horse-42").await.unwrap();
        assert_eq!(
            h.verify(Some(stored.clone()), "Correct-Horse-42")
                .await
                .unwrap(),
            (true, false)
        );
        assert!(!h.verify(Some(stored.clone()), "wrong").await.unwrap().0);
        let other = PasswordHasher::new(Argon2Params {
            memory_kib: 128,
            ..cheap
        })
        .unwrap();
        assert_eq!(
            other
                .verify(Some(stored), "Correct-Horse-42")
                .await
                .unwrap(),
            (true, true)
        );
    }

    /// Hashes written by releases that used the RustCrypto `argon2` crate (PHC strings of
    /// the same format) verify, and are reported outdated when their cost or variant differs.
    #[tokio::test]
    async fn hashes_of_the_earlier_implementation_verify() {
        let h = PasswordHasher::new(Argon2Params {
            memory_kib: 512,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        let id = "$argon2id$v=19$m=512,t=2,p=1$cG9ydGN1bGxpcy0wLjEtcw$3u+P4/JUo4ZSbCN6B6ex77bm8Drj8epu/YjhqoJ1Aa4";
        let i = "$argon2i$v=19$m=256,t=2,p=1$cG9ydGN1bGxpcy0wLjEtcw$UzJoLZsj/1OgiDpTQVjixCBHRzcoshr++TLJ7rMKDk0";
        let ok = |s: &str| Some(s.to_string());
        assert_eq!(
            h.verify(ok(id), "Correct-Horse-42!").await.unwrap(),
            (true, false)
        );
        assert_eq!(
            h.verify(ok(id), "Correct-Horse-43!").await.unwrap(),
            (false, false)
        );
        assert_eq!(
            h.verify(ok(i), "Correct-Horse-42!").await.unwrap(),
            (true, true)
        );
        assert!(h.verify(ok("$argon2id$v=19$m=512,t=2"), "x").await.is_err());
    }

    /// Hashing reuses one arena per permit, and idle arenas are released.
    #[tokio::test]
    async fn arenas_are_reused_and_released_when_idle() {
        let h = PasswordHasher::new(Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert_eq!(h.pooled_arenas(), 0);
        let stored = h.hash("Correct-Horse-42!").await.unwrap();
        for _ in 0..3 {
            assert!(
                h.verify(Some(stored.clone()), "Correct-Horse-42!")
                    .await
                    .unwrap()
                    .0
            );
        }
        assert_eq!(h.pooled_arenas(), 1);
        h.release_idle(Duration::from_secs(3600));
        assert_eq!(h.pooled_arenas(), 1);
        h.release_idle(Duration::ZERO);
        assert_eq!(h.pooled_arenas(), 0);
        assert!(h.verify(Some(stored), "Correct-Horse-42!").await.unwrap().0);
    }
}
