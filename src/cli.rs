//! The command line: `serve`, `migrate`, and administration commands that call the same
//! domain functions as the HTTP API. `--json` prints one JSON object. Exit codes: 0
//! success, 2 usage error (clap), 1 anything else with a one-line message on stderr.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use crate::accounts::{self, Email, NewUser, Password};
use crate::audit::{self, AuditEvent};
use crate::clients::{self, GrantType, NewClient, RedirectUri};
use crate::config::{Config, Overrides};
use crate::keys::Alg;
use crate::rbac;
use crate::startup::{self, Application};
use crate::state::AppState;
use crate::telemetry;
use crate::tenants::{self, TenantSlug};

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "A multi-tenant OAuth 2.0 / OpenID Connect identity provider"
)]
pub struct Cli {
    /// Path of the configuration file (default: ./portcullis.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…); overrides the configuration.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Production mode: a master key is required.
    #[arg(long, global = true)]
    pub production: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve HTTP.
    Serve {
        /// On an empty database, create a demo tenant, user and client, and serve /demo.
        #[arg(long)]
        demo: bool,
    },
    /// Apply database migrations.
    Migrate,
    /// Print the OpenAPI document of the JSON APIs.
    Openapi,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Manage banned client addresses (also: the platform API /api/v1/admin/bans).
    #[command(subcommand)]
    Ban(BanCommand),
    /// Manage platform administrators (the console at /admin: tenants and bans).
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a platform administrator; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: a password is never an argument).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the platform administrators.
    List,
    /// Set a platform administrator's password (from standard input); ends their sessions.
    Password {
        #[arg(long)]
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a platform administrator and end their sessions.
    Remove {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum BanCommand {
    /// List the live bans.
    List,
    /// Ban an address (IPv6: its /64) or a CIDR range.
    Add {
        ip: String,
        #[arg(long)]
        reason: Option<String>,
        /// Lift the ban automatically after this many seconds (default: permanent).
        #[arg(long)]
        expires_in_secs: Option<i64>,
    },
    /// Lift a ban, and the address's rate-limit lockout.
    Remove { ip: String },
}

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Create an API key; the key is printed only here.
    Create {
        /// The tenant whose key it is.
        #[arg(
            long,
            required_unless_present = "platform",
            conflicts_with = "platform"
        )]
        tenant: Option<String>,
        /// A platform key (tenant management: tenants:read, tenants:create).
        #[arg(long)]
        platform: bool,
        #[arg(long)]
        name: String,
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Days until it expires (at most 365; default 90).
        #[arg(long)]
        expires_in_days: Option<i64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant with its signing keys.
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ClientCreate {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    name: String,
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required).
    #[arg(long)]
    public: bool,
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Skip the consent page (first-party clients).
    #[arg(long)]
    skip_consent: bool,
    /// Signing algorithm of this client's tokens: RS256 (the default; PS256 with
    /// `--profile fapi2`), PS256, ES256 or EdDSA.
    #[arg(long)]
    signing_alg: Option<String>,
    /// Access token lifetime for this client, in seconds.
    #[arg(long)]
    access_token_ttl: Option<i64>,
    /// Second factor for this client's sign-ins: off, optional or required (the stricter of
    /// this and the tenant's policy applies).
    #[arg(long)]
    mfa_policy: Option<String>,
    /// private_key_jwt: the URL where the client publishes its public keys (JWK Set);
    /// the client gets no secret.
    #[arg(long, conflicts_with_all = ["jwks", "public"])]
    jwks_uri: Option<String>,
    /// private_key_jwt: a file holding the client's public keys (JWK Set); the client gets
    /// no secret.
    #[arg(long, conflicts_with = "public")]
    jwks: Option<std::path::PathBuf>,
    /// The one JWS algorithm the client's assertions may use (ES256, PS256, RS256, EdDSA).
    #[arg(long)]
    token_endpoint_auth_signing_alg: Option<String>,
    /// Authorization requests of this client must be pushed first (PAR, RFC 9126).
    #[arg(long)]
    require_par: bool,
    /// Token requests of this client must carry a DPoP proof (RFC 9449).
    #[arg(long)]
    dpop_bound: bool,
    /// Hold the client to a security profile: fapi2 (FAPI 2.0 Security Profile).
    #[arg(long)]
    profile: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Register a client; prints its id and (for confidential clients) its secret.
    Create(Box<ClientCreate>),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(
            long,
            conflicts_with = "password_stdin",
            required_unless_present = "password_stdin"
        )]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Create a role.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        #[arg(long = "inherits")]
        inherits: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Rotate a tenant's signing keys: next → active, active → retired, new next.
    Rotate {
        #[arg(long)]
        tenant: String,
    },
}

/// Runs a parsed command; the error's message is printed as one line.
/// A password given on standard input (`--password-stdin`), without its line ending.
fn password_from_stdin() -> std::io::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_path: cli.config.clone(),
        database_url: cli.database_url.clone(),
        production: cli.production,
    };
    let mut config = Config::load(&overrides)?;
    telemetry::init(&config.log_level, config.log_format);
    if !matches!(cli.command, Command::Serve { .. } | Command::Ban(_)) {
        // Only a serving instance counts requests (and `ban remove` clears a lockout); the
        // other commands need no Redis.
        config.redis_url = None;
    }
    let json_out = cli.json;
    match cli.command {
        Command::Serve { demo } => serve(config, demo, json_out).await,
        Command::Openapi => {
            println!("{}", crate::http::openapi::document());
            Ok(())
        }
        Command::Migrate => {
            let state = startup::open_state(config).await?;
            print(
                json_out,
                json!({ "migrated": true, "database": state.pool.backend() }),
            );
            Ok(())
        }
        command => {
            let state = startup::open_state(config).await?;
            let out = admin(&state, command).await;
            state.pool.close().await;
            print(json_out, out?);
            Ok(())
        }
    }
}

async fn serve(config: Config, demo: bool, json_out: bool) -> anyhow::Result<()> {
    let state = startup::open_state(config).await?;
    if demo {
        match crate::demo::seed(&state).await? {
            Some(creds) => {
                if json_out {
                    print(true, serde_json::to_value(&creds)?);
                } else {
                    println!("Demo ready. Open {} and sign in with:", creds.demo_url);
                    println!("  email:    {}", creds.email);
                    println!("  password: {}", creds.password);
                    println!(
                        "Issuer {} — demo client_id {} / client_secret {}",
                        creds.issuer, creds.client_id, creds.client_secret
                    );
                }
            }
            None => {
                let url = format!("{}/demo", state.config.public_url);
                if crate::demo::client(&state).await?.is_some() {
                    println!("Demo data already exists (credentials were printed when it was created). Open {url}");
                } else {
                    println!("The database is not empty, so no demo data was created; {url} needs `serve --demo` on an empty database.");
                }
            }
        }
    }
    let app = Application::with_state(state.clone(), demo)?;
    tracing::info!(bind = %app.state.config.bind, public_url = %app.state.config.public_url, "portcullis listening");
    app.run_until_stopped().await?;
    // In-flight requests are done; write the audit events and key usage they queued.
    tracing::info!("stopped accepting requests; flushing queued writes");
    state.audit.flush().await;
    crate::api_keys::flush_usage(state.api_keys()).await;
    Ok(())
}

async fn tenant_by_slug(state: &AppState, slug: &str) -> anyhow::Result<tenants::Tenant> {
    tenants::find_tenant(&state.pool, slug)
        .await
        .map_err(|_| anyhow::anyhow!("tenant {slug:?} does not exist"))
}

async fn admin(state: &AppState, command: Command) -> anyhow::Result<Value> {
    let ctx = audit::Context::cli();
    match command {
        Command::Tenant(TenantCommand::Create { slug, name }) => {
            let slug = TenantSlug::parse(&slug)?;
            let t = crate::provisioning::create_tenant(
                &state.pool,
                &state.master_key,
                &slug,
                name.as_deref(),
            )
            .await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("tenant.created", Some(&t)),
                &ctx,
            )
            .await;
            Ok(json!({
                "id": t.id,
                "slug": t.slug,
                "name": t.name,
                "issuer": crate::provider::issuer_for(&state.config.public_url, &t.slug),
            }))
        }
        Command::Client(ClientCommand::Create(c)) => {
            let tenant = tenant_by_slug(state, &c.tenant).await?;
            let mut new = NewClient::new(&c.name);
            new.public = c.public;
            new.redirect_uris = c
                .redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u))
                .collect::<Result<_, _>>()?;
            new.post_logout_redirect_uris = c
                .post_logout_redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u))
                .collect::<Result<_, _>>()?;
            if !c.grant_types.is_empty() {
                new.grant_types = c
                    .grant_types
                    .iter()
                    .map(|g| GrantType::parse(g).ok_or_else(|| anyhow::anyhow!("unknown grant type {g:?} (authorization_code, refresh_token, client_credentials)")))
                    .collect::<Result<_, _>>()?;
            }
            if !c.scopes.is_empty() {
                new.scopes = c.scopes.clone();
            }
            new.allowed_origins = c.allowed_origins.clone();
            new.backchannel_logout_uri = c.backchannel_logout_uri.clone();
            new.skip_consent = c.skip_consent;
            new.profile = match &c.profile {
                Some(p) => Some(
                    crate::clients::Profile::parse(p)
                        .ok_or_else(|| anyhow::anyhow!("profile must be fapi2"))?,
                ),
                None => None,
            };
            new.signing_alg = match &c.signing_alg {
                Some(a) => Alg::parse(a).ok_or_else(|| {
                    anyhow::anyhow!("signing alg must be RS256, PS256, ES256 or EdDSA")
                })?,
                None => crate::clients::Profile::default_signing_alg(new.profile),
            };
            new.access_token_ttl = c.access_token_ttl;
            new.jwks_uri = c.jwks_uri.clone();
            new.jwks = match &c.jwks {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                    Some(serde_json::from_str(&text).map_err(|e| {
                        anyhow::anyhow!("{} is not a JSON JWK Set: {e}", path.display())
                    })?)
                }
                None => None,
            };
            new.auth_signing_alg = c.token_endpoint_auth_signing_alg.clone();
            new.require_par = c.require_par;
            new.dpop_bound = c.dpop_bound;
            new.mfa_policy = match &c.mfa_policy {
                Some(p) => Some(crate::tenants::MfaPolicy::parse(p).ok_or_else(|| {
                    anyhow::anyhow!("mfa policy must be off, optional or required")
                })?),
                None => None,
            };
            let (client, secret) = clients::create_client(state.clients(), &tenant, new).await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("client.created", Some(&tenant)).client(&client.id),
                &ctx,
            )
            .await;
            let mut out = json!({ "client_id": client.id });
            if let Some(s) = secret {
                out["client_secret"] = json!(s);
            }
            Ok(out)
        }
        Command::User(UserCommand::Create {
            tenant,
            email,
            password,
            password_stdin,
            name,
            roles,
        }) => {
            let tenant = tenant_by_slug(state, &tenant).await?;
            let password = match (password, password_stdin) {
                (Some(p), _) => p,
                (None, _) => password_from_stdin()?,
            };
            let user = accounts::create_user(
                &state.pool,
                &state.hasher,
                &tenant,
                NewUser {
                    email: Email::parse(&email)?,
                    password: Some(Password::parse(&password)?),
                    profile: accounts::Profile {
                        name,
                        ..Default::default()
                    },
                    email_verified: false,
                    roles,
                    attributes: Default::default(),
                },
            )
            .await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("user.created", Some(&tenant)).actor(Some(&user.id)),
                &ctx,
            )
            .await;
            Ok(json!({ "id": user.id, "email": user.email }))
        }
        Command::Role(RoleCommand::Create {
            tenant,
            name,
            permissions,
            inherits,
        }) => {
            let tenant = tenant_by_slug(state, &tenant).await?;
            let new = rbac::NewRole {
                name,
                permissions: permissions.clone(),
                inherits: inherits.clone(),
                ..rbac::NewRole::default()
            };
            let role = rbac::create_role(&state.pool, &tenant, new).await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("role.created", Some(&tenant)).detail("role", role.name.as_str()),
                &ctx,
            )
            .await;
            Ok(
                json!({ "id": role.id, "name": role.name, "permissions": permissions, "inherits": inherits }),
            )
        }
        Command::Keys(KeysCommand::Rotate { tenant }) => {
            let tenant = tenant_by_slug(state, &tenant).await?;
            let kids = state.rotate_keys(&tenant).await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("keys.rotated", Some(&tenant)),
                &ctx,
            )
            .await;
            Ok(json!({ "tenant": tenant.slug, "next_kids": kids }))
        }
        Command::Ban(BanCommand::List) => {
            let bans = crate::protection::list_bans(&state.pool).await?;
            Ok(json!({ "bans": bans }))
        }
        Command::Ban(BanCommand::Add {
            ip,
            reason,
            expires_in_secs,
        }) => {
            let ban = state
                .protection
                .ban(
                    &state.pool,
                    &state.audit,
                    crate::protection::BanRequest {
                        target: &ip,
                        reason: reason.as_deref(),
                        expires_in_secs,
                    },
                    "cli",
                    &ctx,
                )
                .await?;
            state.audit.flush().await;
            Ok(json!(ban))
        }
        Command::Admin(AdminCommand::Create { email, .. }) => {
            let admin = crate::platform_admins::create(
                &state.pool,
                &state.hasher,
                &email,
                &password_from_stdin()?,
            )
            .await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("platform_admin.created", None)
                    .actor(Some("cli"))
                    .detail("admin_id", admin.id.as_str()),
                &ctx,
            )
            .await;
            Ok(json!({ "id": admin.id, "email": admin.email }))
        }
        Command::Admin(AdminCommand::List) => {
            let admins = crate::platform_admins::list(&state.pool).await?;
            Ok(json!({ "admins": admins.iter().map(|a| json!({
                "id": a.id,
                "email": a.email,
                "created_at": a.created_at,
                "last_sign_in_at": a.last_sign_in_at,
            })).collect::<Vec<_>>() }))
        }
        Command::Admin(AdminCommand::Password { email, .. }) => {
            crate::platform_admins::set_password(
                &state.pool,
                &state.hasher,
                &email,
                &password_from_stdin()?,
            )
            .await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("platform_admin.password_set", None)
                    .actor(Some("cli"))
                    .detail("email", email.as_str()),
                &ctx,
            )
            .await;
            Ok(json!({ "email": email.trim().to_lowercase(), "sessions_ended": true }))
        }
        Command::Admin(AdminCommand::Remove { email }) => {
            crate::platform_admins::remove(&state.pool, &email).await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("platform_admin.removed", None)
                    .actor(Some("cli"))
                    .detail("email", email.as_str()),
                &ctx,
            )
            .await;
            Ok(json!({ "removed": email.trim().to_lowercase() }))
        }
        Command::Ban(BanCommand::Remove { ip }) => {
            state
                .protection
                .unban(&state.pool, &state.audit, &ip, "cli", &ctx)
                .await?;
            state.audit.flush().await;
            Ok(json!({ "removed": ip }))
        }
        Command::Apikey(ApikeyCommand::Create {
            tenant,
            platform: _,
            name,
            scopes,
            expires_in_days,
        }) => {
            let tenant = match tenant {
                Some(slug) => Some(tenant_by_slug(state, &slug).await?),
                None => None,
            };
            let (k, key) = crate::api_keys::create(
                state.api_keys(),
                tenant.as_ref(),
                crate::api_keys::NewApiKey {
                    name: &name,
                    scopes,
                    expires_in_days,
                    created_by: Some("cli"),
                },
            )
            .await?;
            audit::record_now(
                &state.audit,
                AuditEvent::new("apikey.created", tenant.as_ref()).detail("key_id", k.id.as_str()),
                &ctx,
            )
            .await;
            Ok(json!({
                "id": k.id,
                "key": key,
                "prefix": k.prefix,
                "scopes": k.scopes,
                "expires_at": crate::storage::format_instant(k.expires_at),
            }))
        }
        Command::Serve { .. } | Command::Migrate | Command::Openapi => {
            Err(anyhow::anyhow!("not an administration command"))
        }
    }
}

fn print(json_out: bool, v: Value) {
    if json_out {
        println!("{v}");
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => println!("{k}: {s}"),
                    other => println!("{k}: {other}"),
                }
            }
        }
        other => println!("{other}"),
    }
}
