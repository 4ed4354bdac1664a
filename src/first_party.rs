//! The first-party JSON API's sign-in (`/api/v1/auth/*`): e-mail and password in, tokens
//! out, for the tenant's built-in first-party client; refresh with rotation and reuse
//! detection; sign-out everywhere. The same token machinery as the OAuth endpoints.

use crate::accounts::{self, AccountError, PasswordHasher, User};
use crate::audit::{self, AuditEvent, AuditSink, Context};
use crate::clients;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::mfa::{self, MfaError};
use crate::passkeys;
use crate::provider::Provider;
use crate::storage::{self, Pool};
use crate::tokens::{self, Grant, TokenError, TokenResponse};

/// RFC 9068 §4: whether an access token is a credential for the first-party API — issued
/// to the tenant's first-party client, for the API's audience (the tenant's
/// `access_token_audience`, else that client). A token a relying party received for itself
/// is not.
pub fn issued_for_api(tenant: &crate::tenants::Tenant, at: &tokens::AccessToken) -> bool {
    let client_id = clients::first_party_client_id(tenant);
    let audience = tenant
        .settings
        .access_token_audience
        .as_deref()
        .unwrap_or(&client_id);
    at.client_id == client_id && at.has_audience(audience)
}

/// Scopes of first-party tokens.
const SCOPES: [&str; 3] = ["openid", "profile", "email"];

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The password was right; the second factor is due (answer the challenge).
    #[error("MFA required")]
    MfaRequired(String),
    #[error(transparent)]
    Mfa(#[from] MfaError),
    #[error(transparent)]
    Passkey(#[from] crate::passkeys::PasskeyError),
}

/// What the first-party sign-in uses: what accounts, second factors, clients and tokens
/// need.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub config: &'a Config,
    pub hasher: &'a PasswordHasher,
    pub master_key: &'a MasterKey,
    pub audit: &'a AuditSink,
    pub clients: clients::Deps<'a>,
    /// Key of the DPoP server nonces' MACs.
    pub mac_key: &'a [u8],
}

impl<'a> Deps<'a> {
    fn tokens(self) -> tokens::Deps<'a> {
        tokens::Deps {
            pool: self.pool,
            config: self.config,
            audit: self.audit,
            mac_key: self.mac_key,
        }
    }

    fn mfa(self) -> mfa::Deps<'a> {
        mfa::Deps {
            pool: self.pool,
            master_key: self.master_key,
        }
    }
}

pub use crate::mfa::MFA_FRESHNESS;

pub async fn login(
    d: Deps<'_>,
    provider: &Provider,
    email: &str,
    password: &str,
    proof: Option<&ProofOfPossession<'_>>,
    ctx: &Context,
) -> Result<(User, TokenResponse), LoginError> {
    let tenant = &provider.tenant;
    let user = match accounts::authenticate(d.pool, d.hasher, tenant, email, password).await {
        Ok(u) => u,
        Err(e) => {
            let event = match e {
                AccountError::InvalidCredentials => Some("signin.failure"),
                AccountError::AccountLocked { .. } => Some("signin.locked"),
                _ => None,
            };
            if let Some(event) = event {
                audit::record(
                    d.audit,
                    AuditEvent::new(event, Some(tenant)).detail("channel", "api"),
                    ctx,
                );
            }
            return Err(e.into());
        }
    };
    challenge_if_enrolled(d, provider, &user, ctx).await?;
    let tokens = issue(d, provider, &user, &["pwd"], proof, ctx).await?;
    audit::record(
        d.audit,
        AuditEvent::new("signin.success", Some(tenant))
            .actor(Some(&user.id))
            .detail("channel", "api"),
        ctx,
    );
    Ok((user, tokens))
}

/// Tokens for a user who signed in at an upstream identity provider (`GET
/// /api/v1/auth/sso/login`). When the connection applies the tenant's MFA policy, an
/// enrolled user gets the same `MFA_REQUIRED` challenge as after a password.
pub async fn login_federated(
    d: Deps<'_>,
    provider: &Provider,
    user: &User,
    amr: &[&str],
    apply_mfa: bool,
    ctx: &Context,
) -> Result<TokenResponse, LoginError> {
    if apply_mfa {
        challenge_if_enrolled(d, provider, user, ctx).await?;
    }
    Ok(issue(d, provider, user, amr, None, ctx).await?)
}

/// `MFA_REQUIRED` with a new challenge when the user has a second factor enrolled.
async fn challenge_if_enrolled(
    d: Deps<'_>,
    provider: &Provider,
    user: &User,
    ctx: &Context,
) -> Result<(), LoginError> {
    let tenant = &provider.tenant;
    if mfa::is_enabled(d.pool, tenant, &user.id).await? {
        let challenge = mfa::create_challenge(d.pool, tenant, &user.id).await?;
        audit::record(
            d.audit,
            AuditEvent::new("mfa.challenged", Some(tenant)).actor(Some(&user.id)),
            ctx,
        );
        return Err(LoginError::MfaRequired(challenge));
    }
    Ok(())
}

async fn issue(
    d: Deps<'_>,
    provider: &Provider,
    user: &User,
    amr: &[&str],
    proof: Option<&ProofOfPossession<'_>>,
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    let client = clients::first_party_client(d.clients, &provider.tenant)
        .await
        .map_err(|e| TokenError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    let dpop_jkt = proof_key(d, provider, &client, proof).await?;
    let grant = Grant {
        user: Some(user.clone()),
        scope: SCOPES.iter().map(|s| s.to_string()).collect(),
        sid: None,
        auth_time: Some(storage::now()),
        amr: amr.iter().map(|s| s.to_string()).collect(),
        acr: crate::sessions::acr_for(amr).into(),
        nonce: None,
        claims: None,
        dpop_jkt,
    };
    tokens::issue_for_user(d.tokens(), provider, &client, &grant, ctx).await
}

fn relying_party(
    d: Deps<'_>,
    provider: &Provider,
) -> Result<passkeys::RelyingParty, passkeys::PasskeyError> {
    passkeys::RelyingParty::new(&d.config.public_url, &provider.tenant.name)
}

fn passkey_deps(d: Deps<'_>) -> passkeys::Deps<'_> {
    passkeys::Deps {
        pool: d.pool,
        audit: d.audit,
    }
}

/// `POST /auth/passkey/options`: starts a passkey sign-in (a discoverable credential of this
/// site; no e-mail first).
pub async fn passkey_options(
    d: Deps<'_>,
    provider: &Provider,
) -> Result<serde_json::Value, passkeys::PasskeyError> {
    let rp = relying_party(d, provider)?;
    passkeys::start_sign_in(passkey_deps(d), &rp, &provider.tenant).await
}

/// `POST /auth/passkey/verify`: tokens for the user whose passkey answered the ceremony, with
/// `amr` `hwk`/`swk` (+ `user`) and the phishing-resistant `acr`. A passkey with user
/// verification is the second factor itself: no MFA challenge follows.
pub async fn login_passkey(
    d: Deps<'_>,
    provider: &Provider,
    ceremony: &str,
    credential: &str,
    proof: Option<&ProofOfPossession<'_>>,
    ctx: &Context,
) -> Result<(User, TokenResponse), LoginError> {
    let tenant = &provider.tenant;
    let rp = relying_party(d, provider)?;
    let failed = |e: passkeys::PasskeyError| {
        if !matches!(e, passkeys::PasskeyError::Unexpected(_)) {
            audit::record(
                d.audit,
                AuditEvent::new("signin.failure", Some(tenant))
                    .detail("channel", "api")
                    .detail("method", "passkey"),
                ctx,
            );
        }
        LoginError::Passkey(e)
    };
    let signed = passkeys::finish_sign_in(passkey_deps(d), &rp, tenant, ceremony, credential, ctx)
        .await
        .map_err(failed)?;
    let user = accounts::find_user(d.pool, tenant, &signed.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| failed(passkeys::PasskeyError::NotVerified))?;
    let tokens = issue(d, provider, &user, &signed.amr, proof, ctx).await?;
    audit::record(
        d.audit,
        AuditEvent::new("signin.success", Some(tenant))
            .actor(Some(&user.id))
            .detail("channel", "api")
            .detail("method", "passkey"),
        ctx,
    );
    Ok((user, tokens))
}

/// Answers an MFA challenge (`POST /auth/mfa/verify`): tokens with `amr` pwd+otp and
/// `mfa_verified`.
pub async fn verify_mfa(
    d: Deps<'_>,
    provider: &Provider,
    challenge_id: &str,
    code: &str,
    proof: Option<&ProofOfPossession<'_>>,
    ctx: &Context,
) -> Result<TokenResponse, LoginError> {
    let tenant = &provider.tenant;
    let (user_id, _) = match mfa::answer_challenge(d.mfa(), tenant, challenge_id, code).await {
        Ok(v) => v,
        Err(e) => {
            audit::record(d.audit, AuditEvent::new("mfa.failure", Some(tenant)), ctx);
            return Err(e.into());
        }
    };
    let user = accounts::find_user(d.pool, tenant, &user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(LoginError::Account(AccountError::InvalidCredentials))?;
    let tokens = issue(d, provider, &user, &["pwd", "otp"], proof, ctx).await?;
    audit::record(
        d.audit,
        AuditEvent::new("signin.success", Some(tenant))
            .actor(Some(&user.id))
            .detail("channel", "api")
            .detail("mfa", true),
        ctx,
    );
    Ok(tokens)
}

pub async fn refresh(
    d: Deps<'_>,
    provider: &Provider,
    refresh_token: &str,
    proof: Option<&ProofOfPossession<'_>>,
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    let client = clients::first_party_client(d.clients, &provider.tenant)
        .await
        .map_err(|e| TokenError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    let jkt = proof_key(d, provider, &client, proof).await?;
    tokens::refresh(
        d.tokens(),
        provider,
        &client,
        refresh_token,
        None,
        jkt.as_deref(),
        ctx,
    )
    .await
}

/// A DPoP proof sent to a first-party endpoint that issues tokens, and the URL it was sent
/// to: the tokens are bound to its key (RFC 9449).
#[derive(Debug, Clone, Copy)]
pub struct ProofOfPossession<'a> {
    pub proof: &'a str,
    pub uri: &'a str,
}

async fn proof_key(
    d: Deps<'_>,
    provider: &Provider,
    client: &clients::Client,
    proof: Option<&ProofOfPossession<'_>>,
) -> Result<Option<String>, TokenError> {
    match proof {
        Some(p) => {
            tokens::proof_of_possession(d.tokens(), provider, client, Some(p.proof), p.uri).await
        }
        None => Ok(None),
    }
}

/// Ends every session of the user: all refresh tokens revoked, their access tokens and the
/// presented one deny-listed.
pub async fn logout(
    d: Deps<'_>,
    provider: &Provider,
    user_id: &str,
    access_jti: &str,
    access_exp: i64,
    ctx: &Context,
) -> Result<(), sqlx::Error> {
    let tenant = &provider.tenant;
    let now = storage::now();
    storage::tokens::revoke_user_refresh_tokens(d.pool, &tenant.id, user_id, now).await?;
    storage::tokens::insert_revoked_access_token(d.pool, &tenant.id, access_jti, access_exp)
        .await?;
    audit::record(
        d.audit,
        AuditEvent::new("signout", Some(tenant))
            .actor(Some(user_id))
            .detail("channel", "api"),
        ctx,
    );
    Ok(())
}
