//! The first-party JSON API's sign-in (`/api/v1/auth/*`): e-mail and password in, tokens
//! out, for the tenant's built-in first-party client; refresh with rotation and reuse
//! detection; sign-out everywhere. The same token machinery as the OAuth endpoints.

use crate::accounts::{self, AccountError, User};
use crate::audit::{self, AuditEvent, Context};
use crate::clients;
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
}

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
    let client = clients::first_party_client(state, tenant)
        .await
        .map_err(|e| TokenError::Unexpected(anyhow::anyhow!(e.to_string())))?;
    let grant = Grant {
        user: Some(user.clone()),
        scope: SCOPES.iter().map(|s| s.to_string()).collect(),
        sid: None,
        auth_time: Some(storage::now()),
        amr: vec!["pwd".into()],
        acr: "1".into(),
        nonce: None,
        claims: None,
    };
    let tokens = tokens::issue_for_user(state, provider, &client, &grant, ctx).await?;
    audit::record(
        state,
        AuditEvent::new("signin.success", Some(tenant))
            .actor(Some(&user.id))
            .detail("channel", "api"),
        ctx,
    );
    Ok((user, tokens))
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
