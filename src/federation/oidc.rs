//! OpenID Connect upstreams (Google and any other provider), as a relying party with the
//! openidconnect crate: discovery, authorization code with PKCE (S256), state and nonce,
//! the ID token verified against the upstream's JWKS (issuer, audience, expiry, nonce,
//! signature). Every outbound call has the server's timeout and a size limit.

use std::future::Future;
use std::pin::Pin;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::connections::{
    transport_error, Check, Connection, ConnectionConfig, Deps, FederationError, NewFlow,
    UpstreamIdentity, MAX_DOCUMENT,
};
use crate::provider::Provider;
use crate::storage::federation::FlowRow;

/// An upstream call failed (transport, status, size).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(String);

/// The server's outbound client with a response size limit, for the openidconnect crate.
pub struct Bounded<'a>(pub &'a reqwest::Client);

impl<'c> AsyncHttpClient<'c> for Bounded<'_> {
    type Error = FetchError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, FetchError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request: reqwest::Request = request
                .try_into()
                .map_err(|e: reqwest::Error| FetchError(e.to_string()))?;
            let url = request.url().clone();
            let mut response = self
                .0
                .execute(request)
                .await
                .map_err(|e| FetchError(format!("{url}: {}", transport_error(&e))))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = read_bounded(&mut response)
                .await
                .map_err(|e| FetchError(format!("{url}: {e}")))?;
            builder.body(body).map_err(|e| FetchError(e.to_string()))
        })
    }
}

/// Reads a response body of at most [`MAX_DOCUMENT`] bytes.
pub async fn read_bounded(response: &mut reqwest::Response) -> Result<Vec<u8>, String> {
    crate::outbound::read_bounded(response, MAX_DOCUMENT).await
}

/// Fetches the upstream's discovery document and JWKS (bypassing the cache).
pub async fn discover(
    d: Deps<'_>,
    config: &ConnectionConfig,
) -> Result<CoreProviderMetadata, String> {
    let issuer = config.issuer.as_deref().ok_or("no issuer configured")?;
    let url = IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?;
    let http = d.outbound.client().map_err(|e| e.to_string())?;
    let meta = CoreProviderMetadata::discover_async(url, &Bounded(http))
        .await
        .map_err(|e| discovery_error(&e))?;
    d.discovery.put(issuer, meta.clone());
    Ok(meta)
}

fn discovery_error<E: std::error::Error>(e: &openidconnect::DiscoveryError<E>) -> String {
    use std::error::Error;
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn metadata(d: Deps<'_>, config: &ConnectionConfig) -> Result<CoreProviderMetadata, String> {
    match config.issuer.as_deref().and_then(|i| d.discovery.get(i)) {
        Some(m) => Ok(m),
        None => discover(d, config).await,
    }
}

/// What the callback needs and only the server may know: sealed into the flow row
/// (AAD = the flow's id digest).
#[derive(Serialize, Deserialize)]
struct FlowSecrets {
    verifier: String,
    nonce: String,
}

/// `{issuer}/federation/oidc/callback`, the redirect URI registered at every upstream.
pub fn callback_url(p: &Provider) -> String {
    p.endpoint("/federation/oidc/callback")
}

fn unavailable(e: String) -> FederationError {
    FederationError::failed(
        "upstream_unavailable",
        format!("The identity provider is unavailable ({e})."),
    )
}

/// Portcullis as the upstream's relying party.
type RpClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

fn rp_client(
    p: &Provider,
    conn: &Connection,
    meta: CoreProviderMetadata,
    secret: Option<String>,
) -> Result<RpClient, FederationError> {
    Ok(CoreClient::from_provider_metadata(
        meta,
        ClientId::new(conn.config.client_id.clone().unwrap_or_default()),
        secret.map(ClientSecret::new),
    )
    .set_redirect_uri(
        RedirectUrl::new(callback_url(p)).map_err(|e| FederationError::Unexpected(e.into()))?,
    ))
}

/// The redirect to the upstream's authorization endpoint for a new flow, and the flow's
/// secrets (PKCE verifier, nonce) sealed for its row.
pub(super) async fn authorization_url(
    d: Deps<'_>,
    p: &Provider,
    conn: &Connection,
    flow: &NewFlow,
) -> Result<(url::Url, Vec<u8>), FederationError> {
    let meta = metadata(d, &conn.config).await.map_err(unavailable)?;
    let client = rp_client(p, conn, meta, None)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let handle = flow.handle.clone();
    let mut auth = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        move || CsrfToken::new(handle.clone()),
        Nonce::new_random,
    );
    // `openid` is the library's own; the rest as configured.
    let scopes: Vec<String> = conn
        .config
        .effective_scopes()
        .into_iter()
        .filter(|s| s != "openid")
        .collect();
    for s in scopes {
        auth = auth.add_scope(Scope::new(s));
    }
    let (url, _, nonce) = auth.set_pkce_challenge(challenge).url();
    let secrets = FlowSecrets {
        verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
    };
    let json = serde_json::to_vec(&secrets).map_err(anyhow::Error::from)?;
    let sealed = d
        .master_key
        .seal(&json, flow.row.id_hash.as_bytes())
        .map_err(|e| FederationError::Unexpected(e.into()))?;
    Ok((url, sealed))
}

type Claims = CoreIdTokenClaims;

/// Redeems the upstream's code (with the flow's PKCE verifier) and verifies its ID token.
pub async fn finish(
    d: Deps<'_>,
    p: &Provider,
    conn: &Connection,
    flow: &FlowRow,
    code: &str,
) -> Result<UpstreamIdentity, FederationError> {
    let secrets = flow
        .secrets
        .as_deref()
        .and_then(|s| d.master_key.open(s, flow.id_hash.as_bytes()).ok())
        .and_then(|b| serde_json::from_slice::<FlowSecrets>(&b).ok())
        .ok_or_else(|| {
            FederationError::Unexpected(anyhow::anyhow!("federation flow secrets do not open"))
        })?;
    let meta = metadata(d, &conn.config).await.map_err(unavailable)?;
    let secret = super::connections::client_secret(d.master_key, conn)?;
    let client = rp_client(p, conn, meta, Some(secret))?;
    let exchange = client
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .map_err(|e| unavailable(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(secrets.verifier.clone()));
    let http = d.outbound.client().map_err(FederationError::Unexpected)?;
    let tokens = exchange.request_async(&Bounded(http)).await.map_err(|e| {
        FederationError::failed(
            "code_exchange_failed",
            format!(
                "The identity provider refused the sign-in ({}).",
                token_error(&e)
            ),
        )
    })?;
    let id_token = tokens.id_token().ok_or_else(|| {
        FederationError::failed("no_id_token", "The identity provider sent no ID token.")
    })?;
    let nonce = Nonce::new(secrets.nonce.clone());
    let claims: Claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        Err(first) => {
            // The upstream may have rotated its keys since discovery: fetch once more.
            let meta = discover(d, &conn.config).await.map_err(unavailable)?;
            let retry = rp_client(p, conn, meta, None)?;
            let verifier = retry.id_token_verifier();
            let claims = id_token.claims(&verifier, &nonce).map_err(|_| {
                FederationError::failed(
                    "id_token_invalid",
                    format!("The identity provider's ID token is not valid ({first})."),
                )
            })?;
            claims.clone()
        }
    };
    // Claims beyond the standard ones (groups, or whatever the mapping names) come from
    // the payload of the token just verified.
    let extra = id_token
        .to_string()
        .split('.')
        .nth(1)
        .and_then(crate::crypto::b64url_decode)
        .and_then(|b| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&b).ok())
        .unwrap_or_default();
    Ok(identity(conn, &claims, &extra))
}

fn token_error<E: std::error::Error, T: openidconnect::ErrorResponse>(
    e: &openidconnect::RequestTokenError<E, T>,
) -> String {
    match e {
        openidconnect::RequestTokenError::ServerResponse(r) => r.to_string(),
        other => other.to_string(),
    }
}

fn identity(
    conn: &Connection,
    c: &Claims,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> UpstreamIdentity {
    let text = |name: &str| extra.get(name).and_then(|v| v.as_str()).map(str::to_string);
    let email = match conn.mapping.email.as_deref() {
        Some(attr) if attr != "email" => text(attr),
        _ => c.email().map(|e| e.as_str().to_string()),
    };
    let name = match conn.mapping.name.as_deref() {
        Some(attr) if attr != "name" => text(attr),
        _ => c
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string()),
    };
    let groups = conn
        .mapping
        .roles
        .as_deref()
        .and_then(|attr| extra.get(attr))
        .map(|v| match v {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => Vec::new(),
        })
        .unwrap_or_default();
    UpstreamIdentity {
        issuer: c.issuer().as_str().to_string(),
        subject: c.subject().as_str().to_string(),
        email,
        email_verified: c.email_verified().unwrap_or(false),
        profile: crate::accounts::Profile {
            name,
            given_name: c
                .given_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            family_name: c
                .family_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            preferred_username: c.preferred_username().map(|u| u.as_str().to_string()),
            picture: c
                .picture()
                .and_then(|u| u.get(None))
                .map(|u| u.as_str().to_string()),
            locale: c.locale().map(|l| l.as_str().to_string()),
            zoneinfo: c.zoneinfo().map(|z| z.as_str().to_string()),
        },
        groups,
        amr: c
            .auth_method_refs()
            .map(|a| a.iter().map(|m| m.as_str().to_string()).collect())
            .unwrap_or_default(),
        saml_session: None,
    }
}

/// "Test connection": discovery, JWKS, endpoints.
pub async fn test(d: Deps<'_>, conn: &Connection) -> Vec<Check> {
    let mut checks = Vec::new();
    match discover(d, &conn.config).await {
        Ok(meta) => {
            checks.push(Check {
                name: "discovery",
                ok: true,
                detail: format!("issuer {}", meta.issuer().as_str()),
            });
            let keys = meta.jwks().keys().len();
            checks.push(Check {
                name: "jwks",
                ok: keys > 0,
                detail: format!("{keys} signing keys"),
            });
            let token = meta.token_endpoint().map(|u| u.to_string());
            checks.push(Check {
                name: "endpoints",
                ok: token.is_some(),
                detail: format!(
                    "authorization {}, token {}",
                    meta.authorization_endpoint().as_str(),
                    token.unwrap_or_else(|| "missing".into())
                ),
            });
        }
        Err(e) => checks.push(Check {
            name: "discovery",
            ok: false,
            detail: e,
        }),
    }
    checks.push(Check {
        name: "client_secret",
        ok: conn.has_secret,
        detail: if conn.has_secret { "set" } else { "missing" }.into(),
    });
    checks
}
