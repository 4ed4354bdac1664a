//! Multi-factor authentication: TOTP (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step) with every
//! code accepted once, 10 single-use backup codes stored as digests, and the challenges of
//! the first-party API (`MFA_REQUIRED` → `/auth/mfa/verify`). Secrets are sealed with the
//! master key.

use serde::Serialize;
use totp_rs::{Algorithm, TOTP};

use crate::crypto::{self, MasterKey};
use crate::storage::{self, Pool};
use crate::tenants::Tenant;

/// What the second-factor functions use: the database and the key that seals TOTP secrets.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub master_key: &'a MasterKey,
}

pub const BACKUP_CODES: usize = 10;
/// How long an MFA proof counts as recent for privileged operations, in seconds.
pub const MFA_FRESHNESS: i64 = 300;

/// The tenant's step-up rule (`mfa_step_up_permissions`): whether using `permission` asks
/// for a second factor given within [`MFA_FRESHNESS`], when the user last gave one at
/// `verified_at` (None: not in this token or session). Whether the user has a second factor
/// to give is the caller's to check, once this says yes.
pub fn needs_fresh_factor(tenant: &Tenant, permission: &str, verified_at: Option<i64>) -> bool {
    tenant
        .settings
        .mfa_step_up_permissions
        .iter()
        .any(|p| p == permission)
        && !recently_verified(verified_at)
}

/// Whether a second factor given at `verified_at` is within [`MFA_FRESHNESS`].
pub fn recently_verified(verified_at: Option<i64>) -> bool {
    verified_at.is_some_and(|t| storage::now() - t <= MFA_FRESHNESS)
}
const STEP: u64 = 30;
const CHALLENGE_TTL: i64 = 300;
const CHALLENGE_ATTEMPTS: i64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("the authentication code is not valid")]
    InvalidCode,
    #[error("MFA is not enrolled")]
    NotEnrolled,
    #[error("MFA is already enabled; disable it first")]
    AlreadyEnabled,
    #[error("the MFA challenge is unknown, expired or used up")]
    InvalidChallenge,
    #[error("too many failed attempts; locked until {until}")]
    Locked { until: i64 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for MfaError {
    fn from(e: sqlx::Error) -> Self {
        MfaError::Unexpected(e.into())
    }
}

/// What enrolment shows: the secret in text and as a QR code (SVG, rendered here).
#[derive(Debug, Serialize)]
pub struct Enrollment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<TOTP, MfaError> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret,
        Some(issuer.to_string()),
        account.to_string(),
    )
    .map_err(|e| MfaError::Unexpected(anyhow::anyhow!("totp: {e}")))
}

fn aad(user_id: &str) -> Vec<u8> {
    format!("totp:{user_id}").into_bytes()
}

/// Starts (or restarts) enrolment with a fresh 160-bit secret; not active until enabled.
pub async fn setup(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    account: &str,
) -> Result<Enrollment, MfaError> {
    let secret = crypto::random_bytes(20);
    let t = totp(secret.clone(), tenant.display_name(), account)?;
    let sealed = d
        .master_key
        .seal(&secret, &aad(user_id))
        .map_err(|e| MfaError::Unexpected(e.into()))?;
    if !storage::mfa::upsert_pending_totp(d.pool, &tenant.id, user_id, &sealed, storage::now())
        .await?
    {
        return Err(MfaError::AlreadyEnabled);
    }
    let uri = t.get_url();
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|e| MfaError::Unexpected(anyhow::anyhow!("qr: {e}")))?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrollment {
        secret: t.get_secret_base32(),
        otpauth_uri: uri,
        qr_svg: svg,
    })
}

pub async fn is_enabled(pool: &Pool, tenant: &Tenant, user_id: &str) -> Result<bool, MfaError> {
    Ok(storage::mfa::find_totp(pool, &tenant.id, user_id)
        .await?
        .is_some_and(|r| r.enabled))
}

/// The second factors a user can give after the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecondFactors {
    /// TOTP, with its backup codes.
    pub totp: bool,
    /// A registered passkey, counted only when passkeys work on this server.
    pub passkey: bool,
}

impl SecondFactors {
    pub fn any(self) -> bool {
        self.totp || self.passkey
    }
}

/// What `user_id` has of TOTP and passkeys (`passkeys_on`: whether passkeys work with the
/// server's public URL; a passkey that cannot be used here is no factor).
pub async fn second_factors(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
    passkeys_on: bool,
) -> Result<SecondFactors, MfaError> {
    Ok(SecondFactors {
        totp: is_enabled(pool, tenant, user_id).await?,
        passkey: passkeys_on && storage::passkeys::has_passkey(pool, &tenant.id, user_id).await?,
    })
}

/// Which factor a code proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Totp,
    BackupCode,
}

fn backup_digest(user_id: &str, code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    crypto::token_digest(&format!("{user_id}:{normalized}"))
}

/// Checks a TOTP code (current step ±1, each step once) or, when `allow_backup`, a backup
/// code (each once). `pending` accepts the not-yet-enabled secret (enrolment).
async fn check(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    code: &str,
    pending: bool,
    allow_backup: bool,
) -> Result<Proof, MfaError> {
    let row = storage::mfa::find_totp(d.pool, &tenant.id, user_id)
        .await?
        .filter(|r| r.enabled != pending)
        .ok_or(MfaError::NotEnrolled)?;
    let code = code.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let secret = d
            .master_key
            .open(&row.secret, &aad(user_id))
            .map_err(|e| MfaError::Unexpected(e.into()))?;
        let t = totp(secret, "portcullis", "user")?;
        let now = storage::now() as u64;
        let current = now / STEP;
        for step in [current.saturating_sub(1), current, current + 1] {
            let expected = t.generate(step * STEP);
            if crypto::constant_time_eq(expected.as_bytes(), code.as_bytes()) {
                // RFC 6238 §5.2: a code is accepted once.
                if storage::mfa::use_totp_step(d.pool, user_id, step as i64).await? {
                    return Ok(Proof::Totp);
                }
                return Err(MfaError::InvalidCode);
            }
        }
        return Err(MfaError::InvalidCode);
    }
    let backup_shaped = allow_backup && !pending && (10..=20).contains(&code.len());
    if backup_shaped
        && storage::mfa::use_backup_code(
            d.pool,
            user_id,
            &backup_digest(user_id, code),
            storage::now(),
        )
        .await?
    {
        return Ok(Proof::BackupCode);
    }
    Err(MfaError::InvalidCode)
}

/// Verifies a code of an enabled factor (TOTP or backup code).
pub async fn verify(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    code: &str,
) -> Result<Proof, MfaError> {
    check(d, tenant, user_id, code, false, true).await
}

/// Verifies a code of the pending secret without enabling it (enrolment step "verify").
pub async fn verify_pending(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    code: &str,
) -> Result<(), MfaError> {
    check(d, tenant, user_id, code, true, false)
        .await
        .map(|_| ())
}

fn new_backup_codes(user_id: &str) -> (Vec<String>, Vec<String>) {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut codes = Vec::with_capacity(BACKUP_CODES);
    for _ in 0..BACKUP_CODES {
        let raw: String = crypto::random_bytes(10)
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        codes.push(format!("{}-{}", &raw[..5], &raw[5..]));
    }
    let hashes = codes.iter().map(|c| backup_digest(user_id, c)).collect();
    (codes, hashes)
}

/// Enables TOTP after a first valid code; returns the backup codes (shown only now).
pub async fn enable(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    code: &str,
) -> Result<Vec<String>, MfaError> {
    if is_enabled(d.pool, tenant, user_id).await? {
        return Err(MfaError::AlreadyEnabled);
    }
    check(d, tenant, user_id, code, true, false).await?;
    let (codes, hashes) = new_backup_codes(user_id);
    storage::mfa::enable_totp(d.pool, user_id, &hashes, storage::now()).await?;
    Ok(codes)
}

/// Turns MFA off; requires a current code (or a backup code).
pub async fn disable(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    code: &str,
) -> Result<(), MfaError> {
    verify(d, tenant, user_id, code).await?;
    storage::mfa::delete_totp(d.pool, user_id).await?;
    Ok(())
}

/// New backup codes (the old ones stop working); requires a current code.
pub async fn regenerate_backup_codes(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    code: &str,
) -> Result<Vec<String>, MfaError> {
    verify(d, tenant, user_id, code).await?;
    let (codes, hashes) = new_backup_codes(user_id);
    storage::mfa::replace_backup_codes(d.pool, user_id, &hashes).await?;
    Ok(codes)
}

pub async fn remaining_backup_codes(pool: &Pool, user_id: &str) -> Result<i64, MfaError> {
    Ok(storage::mfa::count_backup_codes(pool, user_id).await?)
}

/// A challenge for a user who must prove the second factor (`mfa_ch_…`, single use, 5 min).
pub async fn create_challenge(
    pool: &Pool,
    tenant: &Tenant,
    user_id: &str,
) -> Result<String, MfaError> {
    let id = format!("mfa_ch_{}", crypto::random_token(24));
    let now = storage::now();
    storage::mfa::insert_challenge(
        pool,
        &crypto::token_digest(&id),
        &tenant.id,
        user_id,
        now,
        now + CHALLENGE_TTL,
    )
    .await?;
    Ok(id)
}

/// Answers a challenge with a code; returns the user and the factor. A challenge allows
/// five attempts and is used up by a success.
pub async fn answer_challenge(
    d: Deps<'_>,
    tenant: &Tenant,
    challenge_id: &str,
    code: &str,
) -> Result<(String, Proof), MfaError> {
    let hash = crypto::token_digest(challenge_id);
    let user_id = storage::mfa::attempt_challenge(
        d.pool,
        &hash,
        &tenant.id,
        storage::now(),
        CHALLENGE_ATTEMPTS,
    )
    .await?
    .ok_or(MfaError::InvalidChallenge)?;
    let proof = match verify(d, tenant, &user_id, code).await {
        Ok(p) => p,
        Err(MfaError::InvalidCode) => {
            // Wrong codes count towards the address's lockout like wrong passwords, so
            // knowing the password does not allow guessing codes without limit.
            if let Some(user) = storage::users::find_user(d.pool, &tenant.id, &user_id).await? {
                if let Some(until) =
                    crate::accounts::record_failure(d.pool, tenant, &user.email).await?
                {
                    storage::mfa::delete_challenge(d.pool, &hash).await?;
                    return Err(MfaError::Locked { until });
                }
            }
            return Err(MfaError::InvalidCode);
        }
        Err(e) => return Err(e),
    };
    if !storage::mfa::delete_challenge(d.pool, &hash).await? {
        return Err(MfaError::InvalidChallenge);
    }
    Ok((user_id, proof))
}
