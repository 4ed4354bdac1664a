//! The demo set-up of `serve --demo`: on an empty database, tenant `demo` with one user and
//! a confidential client whose redirect URI is the built-in demo relying party (`/demo`).
//! The client's credentials are kept sealed with the master key so the demo page can use
//! them; they are printed once at creation.

use serde::{Deserialize, Serialize};

use crate::accounts::{self, Email, NewUser, Password};
use crate::clients::{self, NewClient, RedirectUri};
use crate::crypto;
use crate::state::AppState;
use crate::storage;
use crate::tenants::TenantSlug;

pub const TENANT: &str = "demo";
const SETTING: &str = "demo_client";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoClient {
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoCredentials {
    pub tenant: String,
    pub issuer: String,
    pub demo_url: String,
    pub email: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Creates the demo data if the database has no tenant yet. Returns the credentials when
/// it created them.
pub async fn seed(state: &AppState) -> anyhow::Result<Option<DemoCredentials>> {
    if !storage::tenants::list_tenants(&state.pool)
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let slug = TenantSlug::parse(TENANT)?;
    let tenant = crate::provisioning::create_tenant(
        &state.pool,
        &state.master_key,
        &slug,
        Some("Portcullis demo"),
    )
    .await?;
    let password = format!("Pc-{}-7a", crypto::random_token(12));
    let email = "demo@example.com";
    accounts::create_user(
        &state.pool,
        &state.hasher,
        &tenant,
        NewUser {
            email: Email::parse(email)?,
            password: Some(Password::parse(&password)?),
            profile: crate::accounts::Profile {
                name: Some("Demo User".into()),
                given_name: Some("Demo".into()),
                family_name: Some("User".into()),
                ..Default::default()
            },
            email_verified: true,
            roles: vec![],
            attributes: Default::default(),
        },
    )
    .await?;
    let base = &state.config.public_url;
    let mut new = NewClient::new("Demo app");
    new.redirect_uris = vec![RedirectUri::parse(&format!("{base}/demo/callback"))?];
    new.post_logout_redirect_uris = vec![RedirectUri::parse(&format!("{base}/demo"))?];
    let (client, secret) = clients::create_client(state.clients(), &tenant, new).await?;
    let secret = secret.unwrap_or_default();
    let stored = DemoClient {
        client_id: client.id.clone(),
        client_secret: secret.clone(),
    };
    let sealed = state
        .master_key
        .seal(&serde_json::to_vec(&stored)?, SETTING.as_bytes())?;
    storage::settings::upsert_setting(&state.pool, SETTING, &sealed).await?;
    Ok(Some(DemoCredentials {
        tenant: TENANT.into(),
        issuer: crate::provider::issuer_for(base, TENANT),
        demo_url: format!("{base}/demo"),
        email: email.into(),
        password,
        client_id: client.id,
        client_secret: secret,
    }))
}

/// The demo client's credentials, if the demo was set up.
pub async fn client(state: &AppState) -> anyhow::Result<Option<DemoClient>> {
    let Some(sealed) = storage::settings::find_setting(&state.pool, SETTING).await? else {
        return Ok(None);
    };
    let plain = state.master_key.open(&sealed, SETTING.as_bytes())?;
    Ok(Some(serde_json::from_slice(&plain)?))
}
