//! Passkeys (WebAuthn Level 2/3 through `webauthn-rs`'s safe API): registration on the
//! account page, and sign-in with a discoverable credential (the browser offers the user's
//! passkeys for this site; no e-mail first). The relying party id is the host of the public
//! URL, shared by every tenant; attestation is `none`; user verification is required.
//!
//! A ceremony spans two requests, possibly on two instances: its state is stored, taken out
//! once, for five minutes at most. Every credential keeps its signature counter and backup
//! flags; a use whose counter does not move forward (the mark of a cloned authenticator, or
//! of a copy used elsewhere first) is refused and audited. Synced passkeys report 0 always,
//! which proves nothing and is accepted.

use serde_json::{json, Value};
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Url, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::accounts::User;
use crate::audit::{self, AuditEvent, AuditSink, Context};
use crate::crypto;
use crate::storage::{self, passkeys::PasskeyRow, Pool};
use crate::tenants::Tenant;

/// How long a started ceremony may be finished.
pub const CEREMONY_TTL: i64 = 300;
/// At most this many passkeys per user.
pub const MAX_PER_USER: usize = 20;
const MAX_NAME: usize = 60;
const MAX_RESPONSE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The request does not fit the ceremony (unknown, expired, malformed, too many): in
    /// words for the user or the client.
    #[error("{0}")]
    Invalid(&'static str),
    /// The authenticator's answer does not verify.
    #[error("the passkey could not be verified")]
    NotVerified,
    /// A counter that did not move forward: a cloned authenticator, refused and audited.
    #[error("this passkey was refused: its signature counter went back (a cloned authenticator?)")]
    Cloned,
    /// The public URL's host is an IP address, which WebAuthn does not accept as a
    /// relying party id: passkeys are off on this server.
    #[error("passkeys need a host name in public_url (a WebAuthn relying party id is not an IP address)")]
    Unavailable,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for PasskeyError {
    fn from(e: sqlx::Error) -> Self {
        PasskeyError::Unexpected(e.into())
    }
}

/// What passkey functions use: the database and the audit log.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub audit: &'a AuditSink,
}

/// The relying party: this server as WebAuthn sees it.
pub struct RelyingParty {
    webauthn: Webauthn,
}

/// Whether passkeys can work with this public URL: its host must be a name (a WebAuthn
/// relying party id is never an IP address).
pub fn available(public_url: &str) -> bool {
    url::Url::parse(public_url).is_ok_and(|u| matches!(u.host(), Some(url::Host::Domain(_))))
}

impl RelyingParty {
    /// The relying party of `public_url` (its host is the RP id, its origin the one allowed),
    /// named after the tenant in the authenticator's prompts.
    pub fn new(public_url: &str, name: &str) -> Result<Self, PasskeyError> {
        let origin = Url::parse(public_url)
            .map_err(|e| PasskeyError::Unexpected(anyhow::anyhow!("public_url: {e}")))?;
        let host = match origin.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(_) => return Err(PasskeyError::Unavailable),
            None => {
                return Err(PasskeyError::Unexpected(anyhow::anyhow!(
                    "public_url has no host"
                )))
            }
        };
        let webauthn = WebauthnBuilder::new(&host, &origin)
            .and_then(|b| b.rp_name(name).build())
            .map_err(|e| PasskeyError::Unexpected(anyhow::anyhow!("webauthn: {e}")))?;
        Ok(Self { webauthn })
    }
}

/// A registered passkey as the account page and the API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Synced between devices (backup state of its last use).
    pub synced: bool,
}

impl From<&PasskeyRow> for PasskeyView {
    fn from(r: &PasskeyRow) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            synced: r.backup_state,
        }
    }
}

/// A verified passkey sign-in: whose, and how (RFC 8176 `amr`: `hwk` for a key bound to
/// its device, `swk` for one that may be synced, plus `user` for user verification).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user_id: String,
    pub amr: Vec<&'static str>,
}

/// The RFC 8176 methods a passkey use proves.
fn amr(backup_eligible: bool, user_verified: bool) -> Vec<&'static str> {
    let mut amr = vec![if backup_eligible { "swk" } else { "hwk" }];
    if user_verified {
        amr.push("user");
    }
    amr
}

/// A passkey just registered, and what its registration proved (the `amr` of a sign-in
/// that enrols it as the second factor).
#[derive(Debug, Clone)]
pub struct Registered {
    pub passkey: PasskeyView,
    pub amr: Vec<&'static str>,
}

const REGISTER: &str = "register";
const SIGN_IN: &str = "sign_in";
const SECOND_FACTOR: &str = "second_factor";

fn unexpected(e: impl std::fmt::Display) -> PasskeyError {
    PasskeyError::Unexpected(anyhow::anyhow!("{e}"))
}

/// Stores a ceremony's state; returns the id the browser sends back.
async fn save_ceremony(
    d: Deps<'_>,
    tenant: &Tenant,
    purpose: &str,
    state: &impl serde::Serialize,
) -> Result<String, PasskeyError> {
    let id = crypto::random_token(24);
    let json = serde_json::to_string(state).map_err(unexpected)?;
    storage::passkeys::insert_ceremony(
        d.pool,
        &crypto::token_digest(&id),
        &tenant.id,
        purpose,
        &json,
        storage::now() + CEREMONY_TTL,
    )
    .await?;
    Ok(id)
}

async fn take_ceremony<T: serde::de::DeserializeOwned>(
    d: Deps<'_>,
    tenant: &Tenant,
    purpose: &str,
    id: &str,
) -> Result<T, PasskeyError> {
    let expired = PasskeyError::Invalid("the passkey ceremony is unknown, expired or already used");
    if id.is_empty() || id.len() > 100 {
        return Err(expired);
    }
    let json = storage::passkeys::take_ceremony(
        d.pool,
        &crypto::token_digest(id),
        &tenant.id,
        purpose,
        storage::now(),
    )
    .await?
    .ok_or(expired)?;
    serde_json::from_str(&json).map_err(unexpected)
}

/// The options for `navigator.credentials.*` with the ceremony's id beside them.
fn with_ceremony(options: impl serde::Serialize, ceremony: String) -> Result<Value, PasskeyError> {
    let mut v = serde_json::to_value(options).map_err(unexpected)?;
    v["ceremony"] = json!(ceremony);
    Ok(v)
}

/// Starts registering a passkey for `user` (signed in): the options for
/// `navigator.credentials.create`, asking for a discoverable credential so that it can sign
/// in without an e-mail, excluding the user's existing ones.
pub async fn start_registration(
    d: Deps<'_>,
    rp: &RelyingParty,
    tenant: &Tenant,
    user: &User,
) -> Result<Value, PasskeyError> {
    let existing = storage::passkeys::list_passkeys(d.pool, &tenant.id, &user.id).await?;
    if existing.len() >= MAX_PER_USER {
        return Err(PasskeyError::Invalid(
            "this account has as many passkeys as it may have: remove one first",
        ));
    }
    let exclude: Vec<CredentialID> = existing
        .iter()
        .filter_map(|r| serde_json::from_str::<Passkey>(&r.passkey).ok())
        .map(|p| p.cred_id().clone())
        .collect();
    let handle =
        storage::passkeys::ensure_handle(d.pool, &tenant.id, &user.id, &Uuid::new_v4().to_string())
            .await?;
    let handle = Uuid::parse_str(&handle).map_err(unexpected)?;
    let display = user.profile.name.as_deref().unwrap_or(&user.email);
    let (mut options, state) = rp
        .webauthn
        .start_passkey_registration(handle, &user.email, display, Some(exclude))
        .map_err(unexpected)?;
    // A discoverable (resident) credential: the sign-in page asks for no e-mail first.
    if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
        sel.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
        sel.require_resident_key = true;
    }
    let ceremony = save_ceremony(d, tenant, &format!("{REGISTER}:{}", user.id), &state).await?;
    with_ceremony(options, ceremony)
}

/// What the browser sends to finish a registration: the ceremony it answers, the name the
/// user gave the passkey, and the authenticator's answer (the JSON the page's script builds
/// from `navigator.credentials.create`).
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub ceremony: &'a str,
    pub name: &'a str,
    pub response: &'a str,
}

/// Finishes a registration started for `user`.
pub async fn finish_registration(
    d: Deps<'_>,
    rp: &RelyingParty,
    tenant: &Tenant,
    user: &User,
    answer: Answer<'_>,
    ctx: &Context,
) -> Result<Registered, PasskeyError> {
    let Answer {
        ceremony,
        name,
        response,
    } = answer;
    let name = name.trim();
    if name.chars().count() > MAX_NAME {
        return Err(PasskeyError::Invalid(
            "the passkey's name must be 60 characters at most",
        ));
    }
    let state: PasskeyRegistration =
        take_ceremony(d, tenant, &format!("{REGISTER}:{}", user.id), ceremony).await?;
    let credential: RegisterPublicKeyCredential = parse_response(response)?;
    let passkey = rp
        .webauthn
        .finish_passkey_registration(&credential, &state)
        .map_err(|_| PasskeyError::NotVerified)?;
    let now = storage::now();
    let raw = serde_json::to_value(&passkey).map_err(unexpected)?;
    let flag = |k: &str| raw["cred"][k].as_bool().unwrap_or(false);
    let row = PasskeyRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        user_id: user.id.clone(),
        credential_id: crypto::b64url(passkey.cred_id().as_slice()),
        name: if name.is_empty() {
            "Passkey".to_string()
        } else {
            name.to_string()
        },
        passkey: raw.to_string(),
        counter: raw["cred"]["counter"].as_i64().unwrap_or(0),
        backup_eligible: flag("backup_eligible"),
        backup_state: flag("backup_state"),
        created_at: now,
        last_used_at: None,
    };
    match storage::passkeys::insert_passkey(d.pool, &row).await {
        Ok(()) => {}
        // WebAuthn §7.1 step 22: a credential id registered before is refused.
        Err(e) if storage::is_unique_violation(&e) => {
            return Err(PasskeyError::Invalid("this passkey is already registered"))
        }
        Err(e) => return Err(e.into()),
    }
    audit::record(
        d.audit,
        AuditEvent::new("passkey.registered", Some(tenant))
            .actor(Some(&user.id))
            .detail("passkey", row.id.as_str()),
        ctx,
    );
    // Registration of a passkey requires user verification (webauthn-rs's policy).
    Ok(Registered {
        passkey: PasskeyView::from(&row),
        amr: amr(row.backup_eligible, true),
    })
}

fn parse_response<T: serde::de::DeserializeOwned>(response: &str) -> Result<T, PasskeyError> {
    if response.len() > MAX_RESPONSE {
        return Err(PasskeyError::Invalid("the passkey response is too long"));
    }
    serde_json::from_str(response)
        .map_err(|_| PasskeyError::Invalid("the passkey response is not a WebAuthn credential"))
}

/// Starts a passkey sign-in: options for `navigator.credentials.get` without any
/// allowed credential, so the browser offers the user's discoverable passkeys for this site.
pub async fn start_sign_in(
    d: Deps<'_>,
    rp: &RelyingParty,
    tenant: &Tenant,
) -> Result<Value, PasskeyError> {
    let (mut options, state) = rp
        .webauthn
        .start_discoverable_authentication()
        .map_err(unexpected)?;
    // A modal prompt after the user's click; the script asks for conditional mediation
    // (autofill) itself where the browser offers it.
    options.mediation = None;
    let ceremony = save_ceremony(d, tenant, SIGN_IN, &state).await?;
    with_ceremony(options, ceremony)
}

/// Finishes a passkey sign-in: the credential must be registered to the user its handle
/// names, in this tenant; its counter must move forward.
pub async fn finish_sign_in(
    d: Deps<'_>,
    rp: &RelyingParty,
    tenant: &Tenant,
    ceremony: &str,
    response: &str,
    ctx: &Context,
) -> Result<SignedIn, PasskeyError> {
    let state: DiscoverableAuthentication = take_ceremony(d, tenant, SIGN_IN, ceremony).await?;
    let credential: PublicKeyCredential = parse_response(response)?;
    let (handle, cred_id) = rp
        .webauthn
        .identify_discoverable_authentication(&credential)
        .map_err(|_| PasskeyError::NotVerified)?;
    let user_id =
        storage::passkeys::find_user_by_handle(d.pool, &tenant.id, &handle.to_string()).await?;
    let row = storage::passkeys::find_passkey(d.pool, &tenant.id, &crypto::b64url(cred_id))
        .await?
        .filter(|r| Some(&r.user_id) == user_id.as_ref())
        .ok_or(PasskeyError::NotVerified)?;
    let passkey: Passkey = serde_json::from_str(&row.passkey).map_err(unexpected)?;
    let result = match rp.webauthn.finish_discoverable_authentication(
        &credential,
        state,
        &[DiscoverableKey::from(&passkey)],
    ) {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return Err(cloned(d, tenant, &row, ctx));
        }
        Err(_) => return Err(PasskeyError::NotVerified),
    };
    record_use(d, tenant, row, &result, ctx).await
}

/// Stores what a verified use changed (counter, flags, credential), refusing a counter that
/// did not move forward: the ceremony's view of the counter is the one of its start, so the
/// database decides.
async fn record_use(
    d: Deps<'_>,
    tenant: &Tenant,
    row: PasskeyRow,
    result: &AuthenticationResult,
    ctx: &Context,
) -> Result<SignedIn, PasskeyError> {
    let mut passkey: Passkey = serde_json::from_str(&row.passkey).map_err(unexpected)?;
    passkey.update_credential(result);
    let used = PasskeyRow {
        passkey: serde_json::to_string(&passkey).map_err(unexpected)?,
        counter: i64::from(result.counter()),
        backup_eligible: result.backup_eligible(),
        backup_state: result.backup_state(),
        ..row.clone()
    };
    if !storage::passkeys::record_use(d.pool, &used, storage::now()).await? {
        return Err(cloned(d, tenant, &row, ctx));
    }
    Ok(SignedIn {
        user_id: row.user_id,
        amr: amr(result.backup_eligible(), result.user_verified()),
    })
}

/// Starts a passkey as the second factor of `user_id`, who gave their password: options for
/// `navigator.credentials.get` allowing only that user's passkeys.
pub async fn start_second_factor(
    d: Deps<'_>,
    rp: &RelyingParty,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Value, PasskeyError> {
    let creds: Vec<Passkey> = storage::passkeys::list_passkeys(d.pool, &tenant.id, user_id)
        .await?
        .iter()
        .filter_map(|r| serde_json::from_str(&r.passkey).ok())
        .collect();
    if creds.is_empty() {
        return Err(PasskeyError::Invalid("this account has no passkey"));
    }
    let (options, state) = rp
        .webauthn
        .start_passkey_authentication(&creds)
        .map_err(unexpected)?;
    let ceremony = save_ceremony(d, tenant, &format!("{SECOND_FACTOR}:{user_id}"), &state).await?;
    with_ceremony(options, ceremony)
}

/// Finishes a passkey as the second factor of `user_id`: the credential must be one of
/// theirs (the ceremony allowed no other), its counter must move forward.
pub async fn finish_second_factor(
    d: Deps<'_>,
    rp: &RelyingParty,
    tenant: &Tenant,
    user_id: &str,
    ceremony: &str,
    response: &str,
    ctx: &Context,
) -> Result<SignedIn, PasskeyError> {
    let state: PasskeyAuthentication =
        take_ceremony(d, tenant, &format!("{SECOND_FACTOR}:{user_id}"), ceremony).await?;
    let credential: PublicKeyCredential = parse_response(response)?;
    let row = storage::passkeys::find_passkey(d.pool, &tenant.id, &credential.id)
        .await?
        .filter(|r| r.user_id == user_id)
        .ok_or(PasskeyError::NotVerified)?;
    let result = match rp
        .webauthn
        .finish_passkey_authentication(&credential, &state)
    {
        Ok(r) => r,
        Err(WebauthnError::CredentialPossibleCompromise) => {
            return Err(cloned(d, tenant, &row, ctx));
        }
        Err(_) => return Err(PasskeyError::NotVerified),
    };
    if crypto::b64url(result.cred_id().as_slice()) != row.credential_id {
        return Err(PasskeyError::NotVerified);
    }
    record_use(d, tenant, row, &result, ctx).await
}

fn cloned(d: Deps<'_>, tenant: &Tenant, row: &PasskeyRow, ctx: &Context) -> PasskeyError {
    audit::record(
        d.audit,
        AuditEvent::new("passkey.cloned", Some(tenant))
            .actor(Some(&row.user_id))
            .detail("passkey", row.id.as_str()),
        ctx,
    );
    PasskeyError::Cloned
}

pub async fn list(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
) -> Result<Vec<PasskeyView>, PasskeyError> {
    Ok(
        storage::passkeys::list_passkeys(d.pool, &tenant.id, user_id)
            .await?
            .iter()
            .map(PasskeyView::from)
            .collect(),
    )
}

/// Removes one of the user's passkeys; false when they have none of that id.
pub async fn remove(
    d: Deps<'_>,
    tenant: &Tenant,
    user_id: &str,
    id: &str,
    ctx: &Context,
) -> Result<bool, PasskeyError> {
    let removed = storage::passkeys::delete_passkey(d.pool, &tenant.id, user_id, id).await?;
    if removed {
        audit::record(
            d.audit,
            AuditEvent::new("passkey.removed", Some(tenant))
                .actor(Some(user_id))
                .detail("passkey", id),
            ctx,
        );
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_public_urls_host() {
        assert!(RelyingParty::new("http://localhost:8080", "Acme").is_ok());
        assert!(RelyingParty::new("https://id.example.com", "Acme").is_ok());
        assert!(RelyingParty::new("not a url", "Acme").is_err());
        assert!(available("http://localhost:8080") && !available("http://127.0.0.1:8080"));
        assert!(matches!(
            RelyingParty::new("http://127.0.0.1:8080", "Acme"),
            Err(PasskeyError::Unavailable)
        ));
    }
}
