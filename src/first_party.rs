//! The first-party JSON API's sign-in (`/api/v1/auth/*`): e-mail and password in, tokens
//! out, for the tenant's built-in first-party client; refresh with rotation and reuse
//! detection; sign-out everywhere. The same token machinery as the OAuth endpoints.

use crate::accounts::{self, AccountError, User};
use crate::audit::{self, AuditEvent, Context};
use crate::clients;
use crate::mfa::{self, MfaError};
use crate::provider::Provider;
use crate::state::AppState;
use crate::storage;
use crate::tokens::{self, Grant, TokenError, TokenResponse};

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
}

/// How long an MFA proof counts as recent for privileged operations, in seconds.
pub const MFA_FRESHNESS: i64 = 300;

pub async fn login(
    state: &AppState,
    provider: &Provider,
    email: &str,
    password: &str,
    ctx: &Context,
) -> Result<(User, TokenResponse), LoginError> {
    let tenant = &provider.tenant;
    let user = match accounts::authenticate(state, tenant, email, password).await {
        Ok(u) => u,
        Err(e) => {
            let event = match e {
                AccountError::InvalidCredentials => Some("signin.failure"),
                AccountError::AccountLocked { .. } => Some("signin.locked"),
                _ => None,
            };
            if let Some(event) = event {
                audit::record(
                    state,
                    AuditEvent::new(event, Some(tenant)).detail("channel", "api"),
                    ctx,
                );
            }
            return Err(e.into());
        }
    };
    challenge_if_enrolled(state, provider, &user, ctx).await?;
    let tokens = issue(state, provider, &user, &["pwd"], ctx).await?;
    audit::record(
        state,
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
    state: &AppState,
    provider: &Provider,
    user: &User,
    amr: &[&str],
    apply_mfa: bool,
    ctx: &Context,
) -> Result<TokenResponse, LoginError> {
    if apply_mfa {
        challenge_if_enrolled(state, provider, user, ctx).await?;
    }
    Ok(issue(state, provider, user, amr, ctx).await?)
}

/// `MFA_REQUIRED` with a new challenge when the user has a second factor enrolled.
async fn challenge_if_enrolled(
    state: &AppState,
    provider: &Provider,
    user: &User,
    ctx: &Context,
) -> Result<(), LoginError> {
    let tenant = &provider.tenant;
    if mfa::is_enabled(state, tenant, &user.id).await? {
        let challenge = mfa::create_challenge(state, tenant, &user.id).await?;
        audit::record(
            state,
            AuditEvent::new("mfa.challenged", Some(tenant)).actor(Some(&user.id)),
            ctx,
        );
        return Err(LoginError::MfaRequired(challenge));
    }
    Ok(())
}

async fn issue(
    state: &AppState,
    provider: &Provider,
    user: &User,
    amr: &[&str],
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    let client = clients::first_party_client(state, &provider.tenant)
        .await
        .map_err(|e| TokenError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    let grant = Grant {
        user: Some(user.clone()),
        scope: SCOPES.iter().map(|s| s.to_string()).collect(),
        sid: None,
        auth_time: Some(storage::now()),
        amr: amr.iter().map(|s| s.to_string()).collect(),
        acr: if amr.contains(&"otp") { "2" } else { "1" }.into(),
        nonce: None,
        claims: None,
    };
    tokens::issue_for_user(state, provider, &client, &grant, ctx).await
}

/// Answers an MFA challenge (`POST /auth/mfa/verify`): tokens with `amr` pwd+otp and
/// `mfa_verified`.
pub async fn verify_mfa(
    state: &AppState,
    provider: &Provider,
    challenge_id: &str,
    code: &str,
    ctx: &Context,
) -> Result<TokenResponse, LoginError> {
    let tenant = &provider.tenant;
    let (user_id, _) = match mfa::answer_challenge(state, tenant, challenge_id, code).await {
        Ok(v) => v,
        Err(e) => {
            audit::record(state, AuditEvent::new("mfa.failure", Some(tenant)), ctx);
            return Err(e.into());
        }
    };
    let user = accounts::find_user(state, tenant, &user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(LoginError::Account(AccountError::InvalidCredentials))?;
    let tokens = issue(state, provider, &user, &["pwd", "otp"], ctx).await?;
    audit::record(
        state,
        AuditEvent::new("signin.success", Some(tenant))
            .actor(Some(&user.id))
            .detail("channel", "api")
            .detail("mfa", true),
        ctx,
    );
    Ok(tokens)
}

pub async fn refresh(
    state: &AppState,
    provider: &Provider,
    refresh_token: &str,
    ctx: &Context,
) -> Result<TokenResponse, TokenError> {
    let client = clients::first_party_client(state, &provider.tenant)
        .await
        .map_err(|e| TokenError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    tokens::refresh(state, provider, &client, refresh_token, None, ctx).await
}

/// Ends every session of the user: all refresh tokens revoked, their access tokens and the
/// presented one deny-listed.
pub async fn logout(
    state: &AppState,
    provider: &Provider,
    user_id: &str,
    access_jti: &str,
    access_exp: i64,
    ctx: &Context,
) -> Result<(), sqlx::Error> {
    let tenant = &provider.tenant;
    let now = storage::now();
    storage::tokens::revoke_user_refresh_tokens(&state.pool, &tenant.id, user_id, now).await?;
    storage::tokens::insert_revoked_access_token(&state.pool, &tenant.id, access_jti, access_exp)
        .await?;
    audit::record(
        state,
        AuditEvent::new("signout", Some(tenant))
            .actor(Some(user_id))
            .detail("channel", "api"),
        ctx,
    );
    Ok(())
}
