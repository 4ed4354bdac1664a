//! Clients (relying parties): registration rules, redirect URIs (exact match, RFC 9700
//! §4.1.3), secrets (server-generated, 256 bits, stored as SHA-256) and client
//! authentication at the token, revocation, introspection and PAR endpoints: secrets
//! (RFC 6749 §2.3) or `private_key_jwt` assertions ([`assertion`], keys in [`jwks`]).

pub mod assertion;
pub mod jwks;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::crypto;
use crate::keys::Alg;
use crate::outbound::Outbound;
use crate::storage::{self, clients::ClientRow, json_list, parse_list, Pool};
use crate::tenants::{MfaPolicy, Tenant};

pub use crate::config::MAX_ACCESS_TOKEN_TTL;

/// Scopes a client may request when registration names none.
pub const DEFAULT_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// An absolute redirect URI without fragment. Compared with registered values by exact
/// string equality (RFC 9700 §4.1.3: no pattern or prefix matching).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    pub fn parse(s: &str) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::Invalid(format!("redirect URI {s:?} {why}"));
        let url = url::Url::parse(s).map_err(|_| bad("is not an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(bad("must not contain a fragment (RFC 6749 §3.1.2)"));
        }
        if matches!(url.scheme(), "javascript" | "data" | "file" | "vbscript") {
            return Err(bad("uses a forbidden scheme"));
        }
        if matches!(url.scheme(), "http" | "https") && url.host_str().is_none_or(str::is_empty) {
            return Err(bad("has no host"));
        }
        if s.len() > 2000 {
            return Err(bad("is too long"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            "client_credentials" => Some(GrantType::ClientCredentials),
            _ => None,
        }
    }
}

/// How a client authenticates at the token, introspection, revocation and PAR endpoints
/// (RFC 7591 §2 `token_endpoint_auth_method`). A client with a secret may send it either
/// way (basic or post); a client with keys only by assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    None,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub confidential: bool,
    secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub skip_consent: bool,
    pub require_pkce: bool,
    pub signing_alg: Alg,
    pub access_token_ttl: Option<i64>,
    /// The client's own second-factor policy; the stricter of it and the tenant's applies.
    pub mfa_policy: Option<MfaPolicy>,
    /// Scopes whose request needs the second factor (step-up).
    pub privileged_scopes: Vec<String>,
    pub auth_method: AuthMethod,
    /// Registered public keys (inline `jwks`), parsed once.
    pub jwks: Option<jwks::KeyList>,
    pub jwks_uri: Option<String>,
    /// The one JWS algorithm its assertions may use, when registered.
    pub auth_signing_alg: Option<String>,
    /// Authorization requests must come through PAR (RFC 9126 §6).
    pub require_par: bool,
    /// Token requests must carry a DPoP proof (RFC 9449 §5.2 `dpop_bound_access_tokens`).
    pub dpop_bound: bool,
    /// The security profile the client follows, if any.
    pub profile: Option<Profile>,
}

/// A security profile a client can be held to (`profile` in its registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// FAPI 2.0 Security Profile (Final): PAR, PKCE S256, private_key_jwt, DPoP, ES256/PS256.
    Fapi2,
}

/// What the FAPI 2.0 Security Profile lets a client sign with: it lists PS256, ES256 and
/// EdDSA (§5.4.1); Portcullis holds `fapi2` clients to the first two.
pub const FAPI2_ALGS: [&str; 2] = ["ES256", "PS256"];

/// Longest authorization code lifetime FAPI 2.0 allows (§5.3.2.1: 60 seconds).
pub const FAPI2_CODE_TTL: i64 = 60;

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Fapi2 => "fapi2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fapi2" => Some(Profile::Fapi2),
            _ => None,
        }
    }

    /// The ID token algorithm of a client of this profile that names none.
    pub fn default_signing_alg(profile: Option<Profile>) -> Alg {
        match profile {
            Some(Profile::Fapi2) => Alg::Ps256,
            None => Alg::Rs256,
        }
    }
}

impl From<ClientRow> for Client {
    fn from(r: ClientRow) -> Self {
        Self {
            grant_types: parse_list(&r.grant_types)
                .iter()
                .filter_map(|g| GrantType::parse(g))
                .collect(),
            id: r.client_id,
            tenant_id: r.tenant_id,
            name: r.name,
            confidential: r.confidential,
            secret_hash: r.secret_hash,
            redirect_uris: parse_list(&r.redirect_uris),
            post_logout_redirect_uris: parse_list(&r.post_logout_redirect_uris),
            scopes: parse_list(&r.scopes),
            allowed_origins: parse_list(&r.allowed_origins),
            backchannel_logout_uri: r.backchannel_logout_uri,
            skip_consent: r.skip_consent,
            require_pkce: r.require_pkce || !r.confidential,
            signing_alg: Alg::parse(&r.signing_alg).unwrap_or(Alg::Rs256),
            access_token_ttl: r.access_token_ttl,
            mfa_policy: r.mfa_policy.as_deref().and_then(MfaPolicy::parse),
            privileged_scopes: parse_list(&r.privileged_scopes),
            auth_method: AuthMethod::parse(&r.token_endpoint_auth_method).unwrap_or(
                if r.confidential {
                    AuthMethod::ClientSecretBasic
                } else {
                    AuthMethod::None
                },
            ),
            jwks: r
                .jwks
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok())
                .and_then(|doc| jwks::parse_jwks(&doc).ok())
                .map(std::sync::Arc::new),
            jwks_uri: r.jwks_uri,
            auth_signing_alg: r.token_endpoint_auth_signing_alg,
            require_par: r.require_par,
            dpop_bound: r.dpop_bound_access_tokens,
            profile: r.profile.as_deref().and_then(Profile::parse),
        }
    }
}

impl Client {
    /// Authorization requests must be pushed (PAR): registered so, or by the FAPI profile.
    pub fn requires_par(&self) -> bool {
        self.require_par || self.profile == Some(Profile::Fapi2)
    }

    /// Token requests must carry a DPoP proof: registered so, or by the FAPI profile.
    pub fn requires_dpop(&self) -> bool {
        self.dpop_bound || self.profile == Some(Profile::Fapi2)
    }

    /// The JWS algorithms the client's profile allows for what it signs, if it restricts them.
    pub fn profile_algs(&self) -> Option<&'static [&'static str]> {
        match self.profile {
            Some(Profile::Fapi2) => Some(&FAPI2_ALGS),
            None => None,
        }
    }

    /// Whether any of `scope` is declared privileged (its request needs the second factor).
    pub fn is_privileged_request(&self, scope: &[String]) -> bool {
        scope.iter().any(|s| self.privileged_scopes.contains(s))
    }

    pub fn allows_grant(&self, g: GrantType) -> bool {
        self.grant_types.contains(&g)
    }

    /// Exact string comparison against the registered redirect URIs.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    pub fn allows_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub skip_consent: bool,
    pub signing_alg: Alg,
    pub access_token_ttl: Option<i64>,
    pub mfa_policy: Option<MfaPolicy>,
    pub privileged_scopes: Vec<String>,
    /// Public keys for `private_key_jwt` (a JWK Set), instead of a secret.
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its keys for `private_key_jwt`, instead of a secret.
    pub jwks_uri: Option<String>,
    pub auth_signing_alg: Option<String>,
    pub require_par: bool,
    pub dpop_bound: bool,
    pub profile: Option<Profile>,
}

/// A client's registration as an administrator gives it (admin API JSON, console form):
/// words and lists, made into a [`NewClient`] by [`ClientInput::parse`], so that every
/// surface applies the same rules and says the same things.
#[derive(Debug, Clone, Default)]
pub struct ClientInput {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    /// None: authorization_code and refresh_token.
    pub grant_types: Option<Vec<String>>,
    /// Empty: the default scopes.
    pub scopes: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub skip_consent: bool,
    /// None: the profile's default (RS256, PS256 for fapi2).
    pub signing_alg: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub mfa_policy: Option<String>,
    pub privileged_scopes: Vec<String>,
    pub jwks: Option<serde_json::Value>,
    pub jwks_uri: Option<String>,
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub require_par: bool,
    pub dpop_bound: bool,
    pub profile: Option<String>,
}

impl ClientInput {
    pub fn parse(self) -> Result<NewClient, ClientError> {
        let invalid = |m: String| ClientError::Invalid(m);
        let mut new = NewClient::new(&self.name);
        new.public = self.public;
        new.redirect_uris = self
            .redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u))
            .collect::<Result<_, _>>()?;
        new.post_logout_redirect_uris = self
            .post_logout_redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u))
            .collect::<Result<_, _>>()?;
        if let Some(grants) = self.grant_types {
            new.grant_types = grants
                .iter()
                .map(|g| {
                    GrantType::parse(g).ok_or_else(|| invalid(format!("unknown grant type {g:?}")))
                })
                .collect::<Result<_, _>>()?;
        }
        if !self.scopes.is_empty() {
            new.scopes = self.scopes;
        }
        new.allowed_origins = self.allowed_origins;
        new.backchannel_logout_uri = self.backchannel_logout_uri;
        new.skip_consent = self.skip_consent;
        if let Some(profile) = self.profile {
            new.profile = Some(
                Profile::parse(&profile).ok_or_else(|| invalid("profile must be fapi2".into()))?,
            );
        }
        new.signing_alg = match self.signing_alg {
            Some(alg) => Alg::parse(&alg).ok_or_else(|| {
                invalid("signing_alg must be RS256, PS256, ES256 or EdDSA".into())
            })?,
            None => Profile::default_signing_alg(new.profile),
        };
        new.access_token_ttl = self.access_token_ttl;
        new.privileged_scopes = self.privileged_scopes;
        new.jwks = self.jwks;
        new.jwks_uri = self.jwks_uri;
        new.auth_signing_alg = self.token_endpoint_auth_signing_alg;
        new.require_par = self.require_par;
        new.dpop_bound = self.dpop_bound;
        if let Some(policy) = self.mfa_policy {
            new.mfa_policy =
                Some(MfaPolicy::parse(&policy).ok_or_else(|| {
                    invalid("mfa_policy must be off, optional or required".into())
                })?);
        }
        Ok(new)
    }

    /// The registration of `client` as it would be given again (an edit form's values).
    pub fn of(client: &Client) -> Self {
        Self {
            name: client.name.clone(),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
            public: !client.confidential,
            grant_types: Some(
                client
                    .grant_types
                    .iter()
                    .map(|g| g.as_str().to_string())
                    .collect(),
            ),
            scopes: client.scopes.clone(),
            allowed_origins: client.allowed_origins.clone(),
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            skip_consent: client.skip_consent,
            signing_alg: Some(client.signing_alg.as_str().to_string()),
            access_token_ttl: client.access_token_ttl,
            mfa_policy: client.mfa_policy.map(|p| p.as_str().to_string()),
            privileged_scopes: client.privileged_scopes.clone(),
            jwks: None,
            jwks_uri: client.jwks_uri.clone(),
            token_endpoint_auth_signing_alg: client.auth_signing_alg.clone(),
            require_par: client.require_par,
            dpop_bound: client.dpop_bound,
            profile: client.profile.map(|p| p.as_str().to_string()),
        }
    }
}

impl NewClient {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            public: false,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            allowed_origins: vec![],
            backchannel_logout_uri: None,
            skip_consent: false,
            signing_alg: Alg::Rs256,
            access_token_ttl: None,
            mfa_policy: None,
            privileged_scopes: vec![],
            jwks: None,
            jwks_uri: None,
            auth_signing_alg: None,
            require_par: false,
            dpop_bound: false,
            profile: None,
        }
    }

    /// The authentication method this registration implies: keys → `private_key_jwt`,
    /// public → `none`, otherwise a server-generated secret.
    pub fn auth_method(&self) -> AuthMethod {
        if self.public {
            AuthMethod::None
        } else if self.jwks.is_some() || self.jwks_uri.is_some() {
            AuthMethod::PrivateKeyJwt
        } else {
            AuthMethod::ClientSecretBasic
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(String),
    #[error("client authentication failed")]
    InvalidClient,
    /// A `private_key_jwt` assertion that fails a check, in words for the client.
    #[error("{0}")]
    BadAssertion(&'static str),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ClientError {
    fn from(e: sqlx::Error) -> Self {
        ClientError::Unexpected(e.into())
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing more.
fn parse_origin(o: &str) -> Result<String, ClientError> {
    let url = url::Url::parse(o)
        .map_err(|_| ClientError::Invalid(format!("allowed origin {o:?} is not a URL")))?;
    let origin = url.origin().ascii_serialization();
    if origin == "null" || origin != o.trim_end_matches('/') {
        return Err(ClientError::Invalid(format!(
            "allowed origin {o:?} must be scheme://host[:port]"
        )));
    }
    Ok(origin)
}

fn is_scope_token(s: &str) -> bool {
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Validates a registration and builds its row, with the secret of a confidential client.
fn new_client_row(
    tenant: &Tenant,
    new: &NewClient,
) -> Result<(ClientRow, Option<String>), ClientError> {
    if new.name.trim().is_empty() || new.name.len() > 200 {
        return Err(ClientError::Invalid(
            "client name must be 1-200 characters".into(),
        ));
    }
    if new.public && new.grant_types.contains(&GrantType::ClientCredentials) {
        return Err(ClientError::Invalid(
            "public clients cannot use client_credentials".into(),
        ));
    }
    if new.grant_types.is_empty() {
        return Err(ClientError::Invalid(
            "at least one grant type is required".into(),
        ));
    }
    if new.grant_types.contains(&GrantType::AuthorizationCode) && new.redirect_uris.is_empty() {
        return Err(ClientError::Invalid(
            "authorization_code clients need at least one redirect URI".into(),
        ));
    }
    if let Some(ttl) = new.access_token_ttl {
        if !(1..=MAX_ACCESS_TOKEN_TTL).contains(&ttl) {
            return Err(ClientError::Invalid(format!(
                "access_token_ttl must be 1-{MAX_ACCESS_TOKEN_TTL} seconds"
            )));
        }
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        // Back-Channel Logout §2.2: https; plain http only to a loopback address.
        if crate::outbound::https_or_loopback(uri).is_none_or(|u| u.fragment().is_some()) {
            return Err(ClientError::Invalid(
                "backchannel_logout_uri must be an https URL (http only for loopback) without fragment".into(),
            ));
        }
    }
    if let Some(bad) = new
        .privileged_scopes
        .iter()
        .find(|s| !new.scopes.contains(s))
    {
        return Err(ClientError::Invalid(format!(
            "privileged scope {bad:?} is not one of the client's scopes"
        )));
    }
    if let Some(bad) = new.scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(ClientError::Invalid(format!("invalid scope {bad:?}")));
    }
    let origins = new
        .allowed_origins
        .iter()
        .map(|o| parse_origin(o))
        .collect::<Result<Vec<_>, _>>()?;
    if new.jwks.is_some() && new.jwks_uri.is_some() {
        return Err(ClientError::Invalid(
            "register jwks or jwks_uri, not both (RFC 7591 §2)".into(),
        ));
    }
    if new.public && (new.jwks.is_some() || new.jwks_uri.is_some()) {
        return Err(ClientError::Invalid(
            "public clients cannot register keys for private_key_jwt".into(),
        ));
    }
    let jwks = match &new.jwks {
        Some(doc) => {
            let keys = jwks::parse_jwks(doc).map_err(ClientError::Invalid)?;
            if !jwks::has_usable_key(&keys) {
                return Err(ClientError::Invalid(
                    "jwks holds no signing key for ES256, PS256, RS256 (2048 bits or more) or EdDSA"
                        .into(),
                ));
            }
            Some(doc.to_string())
        }
        None => None,
    };
    if let Some(uri) = &new.jwks_uri {
        if crate::outbound::https_or_loopback(uri).is_none_or(|u| u.fragment().is_some()) {
            return Err(ClientError::Invalid(
                "jwks_uri must be an https URL (http only for loopback) without fragment".into(),
            ));
        }
    }
    if let Some(alg) = &new.auth_signing_alg {
        if !crate::keys::FOREIGN_ALGS.contains(&alg.as_str()) {
            return Err(ClientError::Invalid(format!(
                "token_endpoint_auth_signing_alg must be one of {}",
                crate::keys::FOREIGN_ALGS.join(", ")
            )));
        }
    }
    let auth_method = new.auth_method();
    let fapi2 = new.profile == Some(Profile::Fapi2);
    if fapi2 {
        check_fapi2(new, auth_method)?;
    }
    let secret = (auth_method == AuthMethod::ClientSecretBasic)
        .then(|| format!("cs_{}", crypto::random_token(32)));
    let now = storage::now();
    let strings = |v: &[RedirectUri]| v.iter().map(|u| u.as_str().to_string()).collect::<Vec<_>>();
    let row = ClientRow {
        client_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.id.clone(),
        name: new.name.trim().to_string(),
        secret_hash: secret.as_deref().map(crypto::token_digest),
        confidential: !new.public,
        redirect_uris: json_list(&strings(&new.redirect_uris)),
        post_logout_redirect_uris: json_list(&strings(&new.post_logout_redirect_uris)),
        grant_types: json_list(
            &new.grant_types
                .iter()
                .map(|g| g.as_str().to_string())
                .collect::<Vec<_>>(),
        ),
        scopes: json_list(&new.scopes),
        allowed_origins: json_list(&origins),
        backchannel_logout_uri: new.backchannel_logout_uri.clone(),
        skip_consent: new.skip_consent,
        require_pkce: true,
        signing_alg: new.signing_alg.as_str().to_string(),
        access_token_ttl: new.access_token_ttl,
        created_at: now,
        updated_at: now,
        registration_token_hash: None,
        mfa_policy: new.mfa_policy.map(|p| p.as_str().to_string()),
        privileged_scopes: json_list(&new.privileged_scopes),
        token_endpoint_auth_method: auth_method.as_str().to_string(),
        jwks,
        jwks_uri: new.jwks_uri.clone(),
        token_endpoint_auth_signing_alg: new.auth_signing_alg.clone(),
        require_par: new.require_par || fapi2,
        dpop_bound_access_tokens: new.dpop_bound || fapi2,
        profile: new.profile.map(|p| p.as_str().to_string()),
    };
    Ok((row, secret))
}

/// FAPI 2.0 Security Profile §5.3.2.1, §5.4: a confidential client authenticating with
/// `private_key_jwt` (mTLS is not offered), signing with ES256 or PS256 and receiving ID
/// tokens signed so. PAR and DPoP are then required of it.
fn check_fapi2(new: &NewClient, auth_method: AuthMethod) -> Result<(), ClientError> {
    if auth_method != AuthMethod::PrivateKeyJwt {
        return Err(ClientError::Invalid(
            "profile fapi2 needs private_key_jwt: register jwks or jwks_uri (mTLS is not offered)"
                .into(),
        ));
    }
    if !FAPI2_ALGS.contains(&new.signing_alg.as_str()) {
        return Err(ClientError::Invalid(
            "profile fapi2 needs signing_alg ES256 or PS256".into(),
        ));
    }
    if new
        .auth_signing_alg
        .as_deref()
        .is_some_and(|a| !FAPI2_ALGS.contains(&a))
    {
        return Err(ClientError::Invalid(
            "profile fapi2 needs token_endpoint_auth_signing_alg ES256 or PS256".into(),
        ));
    }
    Ok(())
}

/// What client functions use: the database, the two caches in front of it, and the
/// outbound client with its cache of fetched `jwks_uri` documents.
#[derive(Clone, Copy)]
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub cache: &'a ClientCache,
    pub origins: &'a OriginCache,
    pub outbound: &'a Outbound,
    pub jwks: &'a jwks::JwksCache,
}

/// Registers a client. Confidential clients get a server-generated secret, returned here
/// once and stored only as its digest.
pub async fn create_client(
    d: Deps<'_>,
    tenant: &Tenant,
    new: NewClient,
) -> Result<(Client, Option<String>), ClientError> {
    let (row, secret) = new_client_row(tenant, &new)?;
    storage::clients::insert_client(d.pool, &row).await?;
    Ok((Client::from(row), secret))
}

/// A dynamically registered client (RFC 7591): its secret and its registration access
/// token (RFC 7592), both shown only here.
pub struct Registered {
    pub client: Client,
    pub secret: Option<String>,
    pub registration_token: String,
    pub issued_at: i64,
}

pub async fn register_client(
    d: Deps<'_>,
    tenant: &Tenant,
    new: NewClient,
) -> Result<Registered, ClientError> {
    let (mut row, secret) = new_client_row(tenant, &new)?;
    let token = format!("rat_{}", crypto::random_token(32));
    row.registration_token_hash = Some(crypto::token_digest(&token));
    storage::clients::insert_client(d.pool, &row).await?;
    Ok(Registered {
        issued_at: row.created_at,
        client: Client::from(row),
        secret,
        registration_token: token,
    })
}

/// The dynamically registered client a registration access token belongs to.
pub async fn authenticate_registration(
    d: Deps<'_>,
    tenant: &Tenant,
    client_id: &str,
    token: &str,
) -> Result<Client, ClientError> {
    let row = storage::clients::find_client(d.pool, &tenant.id, client_id)
        .await?
        .ok_or(ClientError::InvalidClient)?;
    match &row.registration_token_hash {
        Some(stored)
            if crypto::constant_time_eq(
                stored.as_bytes(),
                crypto::token_digest(token).as_bytes(),
            ) =>
        {
            Ok(Client::from(row))
        }
        _ => Err(ClientError::InvalidClient),
    }
}

/// Replaces a registered client's metadata (RFC 7592 §2.2); id, secret and type stay, and
/// what only an administrator sets (consent, lifetimes, MFA policy) is kept.
pub async fn update_registration(
    d: Deps<'_>,
    tenant: &Tenant,
    client: &Client,
    mut new: NewClient,
) -> Result<Client, ClientError> {
    new.skip_consent = client.skip_consent;
    new.access_token_ttl = client.access_token_ttl;
    new.mfa_policy = client.mfa_policy;
    new.privileged_scopes = client.privileged_scopes.clone();
    new.public = !client.confidential;
    replace_client(d, tenant, client, new).await
}

/// An administrator's change of a client (admin API, console): every field of the
/// registration, under the rules of a new one; the id, the secret and the client's type
/// (public or confidential, secret or keys) stay.
pub async fn update_client(
    d: Deps<'_>,
    tenant: &Tenant,
    id: &str,
    new: NewClient,
) -> Result<Option<Client>, ClientError> {
    let Some(client) = find_client(d, tenant, id)
        .await?
        .filter(|c| c.id != first_party_client_id(tenant))
    else {
        return Ok(None);
    };
    if new.public == client.confidential {
        return Err(ClientError::Invalid(
            "a client cannot change between public and confidential (register a new client)".into(),
        ));
    }
    let mut new = new;
    if new.jwks.is_none() && new.jwks_uri.is_none() && client.jwks.is_some() {
        // Keys left out of an edit stay as registered.
        new.jwks = storage::clients::find_client(d.pool, &tenant.id, &client.id)
            .await?
            .and_then(|r| r.jwks)
            .and_then(|j| serde_json::from_str(&j).ok());
    }
    replace_client(d, tenant, &client, new).await.map(Some)
}

async fn replace_client(
    d: Deps<'_>,
    tenant: &Tenant,
    client: &Client,
    new: NewClient,
) -> Result<Client, ClientError> {
    if new.auth_method() != client.auth_method
        && !(new.auth_method() == AuthMethod::ClientSecretBasic
            && client.auth_method == AuthMethod::ClientSecretPost)
    {
        return Err(ClientError::Invalid(
            "token_endpoint_auth_method cannot change (register a new client)".into(),
        ));
    }
    let (mut row, _) = new_client_row(tenant, &new)?;
    row.client_id = client.id.clone();
    storage::clients::update_client(d.pool, &row).await?;
    d.cache.invalidate(&tenant.id, &client.id);
    find_client(d, tenant, &client.id)
        .await?
        .ok_or(ClientError::InvalidClient)
}

/// Replaces a confidential client's secret: the new one is returned here once, stored
/// only as its digest, and the old one stops working at once. None when the client is
/// unknown or has no secret (public, or `private_key_jwt`).
pub async fn rotate_secret(
    d: Deps<'_>,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<String>, ClientError> {
    let Some(client) = find_client(d, tenant, id).await? else {
        return Ok(None);
    };
    if !matches!(
        client.auth_method,
        AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
    ) {
        return Ok(None);
    }
    let secret = format!("cs_{}", crypto::random_token(32));
    let changed = storage::clients::update_client_secret(
        d.pool,
        &tenant.id,
        &client.id,
        &crypto::token_digest(&secret),
        storage::now(),
    )
    .await?;
    d.cache.invalidate(&tenant.id, &client.id);
    Ok(changed.then_some(secret))
}

/// The id of a tenant's built-in first-party client, which the JSON API (`/api/v1/auth/*`)
/// issues tokens for. It has no secret and no redirect URI, so it cannot be used at the
/// OAuth endpoints.
pub fn first_party_client_id(tenant: &Tenant) -> String {
    format!("{}.first-party", tenant.id)
}

/// The tenant's first-party client, created on first use.
pub async fn first_party_client(d: Deps<'_>, tenant: &Tenant) -> Result<Client, ClientError> {
    let id = first_party_client_id(tenant);
    if let Some(c) = find_client(d, tenant, &id).await? {
        return Ok(c);
    }
    let now = storage::now();
    let row = ClientRow {
        client_id: id.clone(),
        tenant_id: tenant.id.clone(),
        name: "First-party API".into(),
        secret_hash: None,
        confidential: true,
        redirect_uris: "[]".into(),
        post_logout_redirect_uris: "[]".into(),
        grant_types: json_list(&[GrantType::RefreshToken.as_str().to_string()]),
        scopes: json_list(
            &DEFAULT_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ),
        allowed_origins: "[]".into(),
        backchannel_logout_uri: None,
        skip_consent: true,
        require_pkce: true,
        signing_alg: Alg::Rs256.as_str().to_string(),
        access_token_ttl: None,
        created_at: now,
        updated_at: now,
        registration_token_hash: None,
        mfa_policy: None,
        privileged_scopes: "[]".into(),
        token_endpoint_auth_method: AuthMethod::None.as_str().to_string(),
        jwks: None,
        jwks_uri: None,
        token_endpoint_auth_signing_alg: None,
        require_par: false,
        dpop_bound_access_tokens: false,
        profile: None,
    };
    match storage::clients::insert_client(d.pool, &row).await {
        Ok(()) => Ok(Client::from(row)),
        // Another request created it meanwhile.
        Err(e) if storage::is_unique_violation(&e) => find_client(d, tenant, &id)
            .await?
            .ok_or_else(|| ClientError::Unexpected(anyhow::anyhow!("first-party client vanished"))),
        Err(e) => Err(e.into()),
    }
}

/// Registered clients as an instance has recently read them, so the token endpoint does
/// not query the database per request. Entries live `cache_ttl_secs`, so a change made
/// elsewhere is served within seconds. Only clients that exist are cached, and the map is
/// bounded.
pub struct ClientCache {
    ttl: Duration,
    entries: RwLock<HashMap<(String, String), (Client, Instant)>>,
}

const CLIENT_CACHE_MAX: usize = 10_000;

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, tenant_id: &str, client_id: &str) -> Option<Client> {
        let entries = self.entries.read().ok()?;
        let (client, at) = entries.get(&(tenant_id.to_string(), client_id.to_string()))?;
        (at.elapsed() < self.ttl).then(|| client.clone())
    }

    fn put(&self, client: &Client) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= CLIENT_CACHE_MAX {
                entries.clear();
            }
            entries.insert(
                (client.tenant_id.clone(), client.id.clone()),
                (client.clone(), Instant::now()),
            );
        }
    }

    /// Forgets a client this instance changed.
    pub fn invalidate(&self, tenant_id: &str, client_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&(tenant_id.to_string(), client_id.to_string()));
        }
    }
}

/// The browser origins a tenant's clients allow (CORS), as an instance has recently read
/// them; refreshed after `cache_ttl_secs`.
pub struct OriginCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, Origins>>,
}

/// A tenant's allowed origins and when they were read.
type Origins = (std::sync::Arc<Vec<String>>, Instant);

impl OriginCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }
}

/// Whether any client of `tenant` allows the browser origin `origin` (exact match of the
/// serialised origin).
pub async fn tenant_allows_origin(
    d: Deps<'_>,
    tenant: &Tenant,
    origin: &str,
) -> Result<bool, ClientError> {
    let cached = d.origins.entries.read().ok().and_then(|e| {
        e.get(&tenant.id)
            .filter(|(_, at)| at.elapsed() < d.origins.ttl)
            .map(|(o, _)| o.clone())
    });
    let origins = match cached {
        Some(o) => o,
        None => {
            let mut all: Vec<String> = storage::clients::list_allowed_origins(d.pool, &tenant.id)
                .await?
                .iter()
                .flat_map(|l| parse_list(l))
                .collect();
            all.sort();
            all.dedup();
            let all = std::sync::Arc::new(all);
            if let Ok(mut e) = d.origins.entries.write() {
                if e.len() >= CLIENT_CACHE_MAX {
                    e.clear();
                }
                e.insert(tenant.id.clone(), (all.clone(), Instant::now()));
            }
            all
        }
    };
    Ok(origins.iter().any(|o| o == origin))
}

pub async fn find_client(
    d: Deps<'_>,
    tenant: &Tenant,
    client_id: &str,
) -> Result<Option<Client>, ClientError> {
    if client_id.is_empty() || client_id.len() > 200 {
        return Ok(None);
    }
    if let Some(c) = d.cache.get(&tenant.id, client_id) {
        return Ok(Some(c));
    }
    let found = storage::clients::find_client(d.pool, &tenant.id, client_id)
        .await?
        .map(Client::from);
    if let Some(c) = &found {
        d.cache.put(c);
    }
    Ok(found)
}

/// How a client presented itself (RFC 6749 §2.3.1).
#[derive(Debug, Clone)]
pub enum ClientCredentials {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    /// A public client identifying itself by `client_id` only.
    None {
        id: String,
    },
    /// A `private_key_jwt` assertion (RFC 7523 §2.2); `id` is the client its `sub` names.
    Assertion {
        id: String,
        assertion: String,
    },
}

impl ClientCredentials {
    pub fn client_id(&self) -> &str {
        match self {
            ClientCredentials::Basic { id, .. }
            | ClientCredentials::Post { id, .. }
            | ClientCredentials::None { id }
            | ClientCredentials::Assertion { id, .. } => id,
        }
    }
}

/// Authenticates a client by the method it registered: a secret (constant-time digest
/// comparison, basic or post), an assertion signed with its keys and addressed to one of
/// `audiences`, or for public clients the id alone. Unknown clients fail like a wrong secret.
pub async fn authenticate_client(
    d: Deps<'_>,
    tenant: &Tenant,
    creds: &ClientCredentials,
    audiences: &[&str],
) -> Result<Client, ClientError> {
    let client = find_client(d, tenant, creds.client_id()).await?;
    let presented = match creds {
        ClientCredentials::Basic { secret, .. } | ClientCredentials::Post { secret, .. } => {
            Some(crypto::token_digest(secret))
        }
        ClientCredentials::None { .. } | ClientCredentials::Assertion { .. } => None,
    };
    let Some(client) = client else {
        return Err(ClientError::InvalidClient);
    };
    match (client.auth_method, creds) {
        (AuthMethod::PrivateKeyJwt, ClientCredentials::Assertion { assertion, .. }) => {
            let registration = assertion::Registration {
                client_id: &client.id,
                keys: client.jwks.as_ref(),
                jwks_uri: client.jwks_uri.as_deref(),
                signing_alg: client.auth_signing_alg.as_deref(),
                profile_algs: client.profile_algs(),
                issuer_audience_only: client.profile == Some(Profile::Fapi2),
            };
            let source = assertion::KeySource {
                cache: d.jwks,
                outbound: d.outbound,
            };
            assertion::verify(
                d.pool,
                source,
                &tenant.id,
                registration,
                assertion,
                audiences,
            )
            .await
            .map_err(|e| match e {
                assertion::AssertionError::Bad(why) => ClientError::BadAssertion(why),
                assertion::AssertionError::Storage(e) => ClientError::from(e),
            })?;
            return Ok(client);
        }
        (_, ClientCredentials::Assertion { .. }) | (AuthMethod::PrivateKeyJwt, _) => {
            return Err(ClientError::InvalidClient)
        }
        _ => {}
    }
    match (client.confidential, &client.secret_hash, presented) {
        (true, Some(stored), Some(given))
            if crypto::constant_time_eq(stored.as_bytes(), given.as_bytes()) =>
        {
            Ok(client)
        }
        (false, _, None) => Ok(client),
        _ => Err(ClientError::InvalidClient),
    }
}

pub async fn list_clients(d: Deps<'_>, tenant: &Tenant) -> Result<Vec<Client>, ClientError> {
    Ok(storage::clients::list_clients(d.pool, &tenant.id)
        .await?
        .into_iter()
        .map(Client::from)
        .filter(|c| c.id != first_party_client_id(tenant))
        .collect())
}

/// Deletes a client; its refresh tokens stop working (they name a client that no longer
/// authenticates) and its cached entry is dropped on this instance.
pub async fn delete_client(
    d: Deps<'_>,
    tenant: &Tenant,
    client_id: &str,
) -> Result<bool, ClientError> {
    if client_id == first_party_client_id(tenant) {
        return Err(ClientError::Invalid(
            "the built-in first-party client cannot be deleted".into(),
        ));
    }
    let deleted = storage::clients::delete_client(d.pool, &tenant.id, client_id).await?;
    d.cache.invalidate(&tenant.id, client_id);
    Ok(deleted)
}

impl Client {
    /// The registration as the admin API shows it (never the secret or its digest).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "client_id": self.id,
            "name": self.name,
            "public": !self.confidential,
            "redirect_uris": self.redirect_uris,
            "post_logout_redirect_uris": self.post_logout_redirect_uris,
            "grant_types": self.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            "scopes": self.scopes,
            "allowed_origins": self.allowed_origins,
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "skip_consent": self.skip_consent,
            "signing_alg": self.signing_alg.as_str(),
            "access_token_ttl": self.access_token_ttl,
            "mfa_policy": self.mfa_policy.map(MfaPolicy::as_str),
            "privileged_scopes": self.privileged_scopes,
            "token_endpoint_auth_method": self.auth_method.as_str(),
            "jwks": self.jwks.as_ref().map(|k| jwks::to_json(k)),
            "jwks_uri": self.jwks_uri,
            "token_endpoint_auth_signing_alg": self.auth_signing_alg,
            "require_pushed_authorization_requests": self.require_par,
            "dpop_bound_access_tokens": self.dpop_bound,
            "profile": self.profile.map(Profile::as_str),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_with_fragments_are_refused() {
        assert!(RedirectUri::parse("https://app.example.com/cb#x").is_err());
    }

    #[test]
    fn relative_or_script_redirect_uris_are_refused() {
        assert!(RedirectUri::parse("/cb").is_err());
        assert!(RedirectUri::parse("javascript:alert(1)").is_err());
    }

    #[test]
    fn https_loopback_and_private_scheme_redirect_uris_are_accepted() {
        assert!(RedirectUri::parse("https://app.example.com/cb?x=1").is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:4000/cb").is_ok());
        assert!(RedirectUri::parse("com.example.app:/oauth2redirect").is_ok());
    }

    #[test]
    fn origins_must_be_bare_scheme_host_port() {
        assert_eq!(
            parse_origin("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert!(parse_origin("https://app.example.com/path").is_err());
    }
}
