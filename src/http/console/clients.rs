//! The console's clients: the list, "New client", the edit form (read-only without
//! `clients:update`), "Rotate secret" (the new secret shown once) and deletion, each after a
//! confirmation page. The rules are the admin API's: [`ClientInput::parse`],
//! [`clients::create_client`], [`clients::update_client`], [`clients::rotate_secret`],
//! [`clients::delete_client`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::visit::{console_form, console_session, Console, Secret, Shell};
use crate::authorization::Params;
use crate::clients::{self, Client, ClientError, ClientInput};
use crate::error::PageError;
use crate::http::api::common::path_id;
use crate::http::extractors::{PageForm, TenantProvider};
use crate::http::pages::common::{locale, see_other};
use crate::state::AppState;

/// A client as its row in the list shows it.
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub grants: String,
}

#[derive(Template)]
#[template(path = "pages/console/clients.html")]
struct ClientsPage<'a> {
    c: Shell<'a>,
    clients: Vec<ClientRow>,
    can_create: bool,
    new_href: String,
    base: String,
    notice: Option<&'static str>,
}

/// The values of the client form, as typed or as registered.
pub struct FormValues {
    pub name: String,
    pub public: bool,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub allowed_origins: String,
    pub scopes: String,
    pub authorization_code: bool,
    pub refresh_token: bool,
    pub client_credentials: bool,
    pub mfa_policy: String,
    pub access_token_ttl: String,
    pub skip_consent: bool,
    pub signing_alg: String,
}

impl From<&ClientInput> for FormValues {
    fn from(i: &ClientInput) -> Self {
        let grants = i.grant_types.clone().unwrap_or_else(|| {
            vec![
                "authorization_code".to_string(),
                "refresh_token".to_string(),
            ]
        });
        let has = |g: &str| grants.iter().any(|x| x == g);
        Self {
            name: i.name.clone(),
            public: i.public,
            redirect_uris: i.redirect_uris.join("\n"),
            post_logout_redirect_uris: i.post_logout_redirect_uris.join("\n"),
            allowed_origins: i.allowed_origins.join("\n"),
            scopes: i.scopes.join(" "),
            authorization_code: has("authorization_code"),
            refresh_token: has("refresh_token"),
            client_credentials: has("client_credentials"),
            mfa_policy: i.mfa_policy.clone().unwrap_or_default(),
            access_token_ttl: i
                .access_token_ttl
                .map(|t| t.to_string())
                .unwrap_or_default(),
            skip_consent: i.skip_consent,
            signing_alg: i.signing_alg.clone().unwrap_or_else(|| "RS256".to_string()),
        }
    }
}

pub const SIGNING_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

#[derive(Template)]
#[template(path = "pages/console/client_form.html")]
struct ClientFormPage<'a> {
    c: Shell<'a>,
    /// None: a new client.
    client_id: Option<String>,
    action: String,
    v: FormValues,
    editable: bool,
    /// Links of the actions the user may take on this client: (href, label).
    actions: Vec<(String, &'static str)>,
    algs: [&'static str; 4],
    error: Option<String>,
    notice: Option<&'static str>,
    back: String,
}

/// The form's values over `base` (the client as registered, or defaults): lines of URIs,
/// scopes separated by spaces, one checkbox per grant type. A lifetime that is not a number
/// is given as 0 so that the domain's rule says what is allowed.
fn apply_form(form: &Params, mut base: ClientInput) -> ClientInput {
    let lines = |k: &str| -> Vec<String> {
        form.get(k)
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    base.name = form.get("name").unwrap_or("").to_string();
    base.redirect_uris = lines("redirect_uris");
    base.post_logout_redirect_uris = lines("post_logout_redirect_uris");
    base.allowed_origins = lines("allowed_origins");
    base.scopes = form
        .get("scopes")
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    base.grant_types = Some(
        ["authorization_code", "refresh_token", "client_credentials"]
            .iter()
            .filter(|g| form.get(&format!("grant_{g}")).is_some())
            .map(|g| g.to_string())
            .collect(),
    );
    base.mfa_policy = form.get("mfa_policy").map(str::to_string);
    base.access_token_ttl = form
        .get("access_token_ttl")
        .map(|t| t.trim().parse().unwrap_or(0));
    base.skip_consent = form.get("skip_consent").is_some();
    base.signing_alg = form.get("signing_alg").map(str::to_string);
    base
}

fn list_row(c: &Client) -> ClientRow {
    ClientRow {
        id: c.id.clone(),
        name: c.name.clone(),
        public: !c.confidential,
        grants: c
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

async fn list_page(
    c: &Console<'_>,
    status: StatusCode,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let list = clients::list_clients(c.state.clients(), &c.p.tenant)
        .await
        .map_err(|e| client_error(c, e))?;
    c.page(
        status,
        ClientsPage {
            c: c.shell("/clients"),
            clients: list.iter().map(list_row).collect(),
            can_create: c.can("clients:create"),
            new_href: c.url("/clients/new"),
            base: c.url("/clients"),
            notice,
        },
    )
}

/// A domain refusal in the console: only [`ClientError::Invalid`] is the user's to fix, and
/// the form shows it; anything else is unexpected here.
fn client_error(c: &Console<'_>, e: ClientError) -> PageError {
    match e {
        ClientError::Invalid(m) => PageError::bad_request(c.loc, m),
        ClientError::InvalidClient | ClientError::BadAssertion(_) => {
            PageError::unexpected(c.loc, &"client authentication in the console")
        }
        ClientError::Unexpected(e) => PageError::unexpected(c.loc, &e),
    }
}

/// The registered client `id` (never the tenant's built-in first-party client).
async fn find(c: &Console<'_>, id: &str) -> Result<Client, PageError> {
    clients::find_client(c.state.clients(), &c.p.tenant, id)
        .await
        .map_err(|e| client_error(c, e))?
        .filter(|x| x.id != clients::first_party_client_id(&c.p.tenant))
        .ok_or_else(|| c.not_found())
}

fn form_page(
    c: &Console<'_>,
    status: StatusCode,
    client: Option<&Client>,
    v: FormValues,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let ct = c.texts();
    let (client_id, action, editable, actions) = match client {
        Some(x) => {
            let mut actions = Vec::new();
            let secret = matches!(
                x.auth_method,
                clients::AuthMethod::ClientSecretBasic | clients::AuthMethod::ClientSecretPost
            );
            if secret && c.can("clients:update") {
                actions.push((
                    c.url(&format!("/clients/{}/rotate-secret", x.id)),
                    ct.rotate_secret,
                ));
            }
            if c.can("clients:delete") {
                actions.push((c.url(&format!("/clients/{}/delete", x.id)), ct.delete));
            }
            (
                Some(x.id.clone()),
                c.url(&format!("/clients/{}", x.id)),
                c.can("clients:update"),
                actions,
            )
        }
        None => (None, c.url("/clients"), true, Vec::new()),
    };
    c.page(
        status,
        ClientFormPage {
            c: c.shell("/clients"),
            client_id,
            action,
            v,
            editable,
            actions,
            algs: SIGNING_ALGS,
            error,
            notice,
            back: c.url("/clients"),
        },
    )
}

/// `GET {issuer}/admin/clients` (clients:read)
pub async fn clients_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("clients:read")?;
    list_page(&c, StatusCode::OK, None).await
}

/// `GET {issuer}/admin/clients/new` (clients:create)
pub async fn client_new_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("clients:create")?;
    let v = FormValues::from(&ClientInput::default());
    form_page(&c, StatusCode::OK, None, v, None, None)
}

/// `POST {issuer}/admin/clients` (clients:create) — the secret is shown once, here.
pub async fn clients_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("clients:create")?;
    let input = apply_form(
        &form,
        ClientInput {
            public: form.get("type") == Some("public"),
            ..ClientInput::default()
        },
    );
    let values = FormValues::from(&input);
    let created = match input.parse() {
        Ok(new) => clients::create_client(state.clients(), &p.tenant, new).await,
        Err(e) => Err(e),
    };
    let (client, secret) = match created {
        Ok(x) => x,
        Err(ClientError::Invalid(why)) => {
            return form_page(
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                values,
                Some(why),
                None,
            )
        }
        Err(e) => return Err(client_error(&c, e)),
    };
    c.audit("client.created", ("client_id", &client.id));
    match secret {
        Some(secret) => c.secret(
            "/clients",
            StatusCode::CREATED,
            client_secret(&c, &client.id, &secret, Some(c.texts().client_created)),
        ),
        None => Ok(see_other(&c.url(&format!("/clients/{}", client.id)))),
    }
}

/// `GET {issuer}/admin/clients/{id}` (clients:read; editable with clients:update)
pub async fn client_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("clients:read")?;
    let client = find(&c, path_id(&req)).await?;
    let v = FormValues::from(&ClientInput::of(&client));
    form_page(&c, StatusCode::OK, Some(&client), v, None, None)
}

/// `POST {issuer}/admin/clients/{id}` (clients:update) — saves the form.
pub async fn client_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("clients:update")?;
    let client = find(&c, path_id(&req)).await?;
    let input = apply_form(&form, ClientInput::of(&client));
    let values = FormValues::from(&input);
    let updated = match input.parse() {
        Ok(new) => clients::update_client(state.clients(), &p.tenant, &client.id, new).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(Some(saved)) => {
            c.audit("client.updated", ("client_id", &saved.id));
            let v = FormValues::from(&ClientInput::of(&saved));
            form_page(
                &c,
                StatusCode::OK,
                Some(&saved),
                v,
                None,
                Some(c.texts().saved),
            )
        }
        Ok(None) => Err(c.not_found()),
        Err(ClientError::Invalid(why)) => form_page(
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&client),
            values,
            Some(why),
            None,
        ),
        Err(e) => Err(client_error(&c, e)),
    }
}

/// `GET {issuer}/admin/clients/{id}/rotate-secret` (clients:update) — asks first.
pub async fn rotate_secret_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("clients:update")?;
    let client = find(&c, path_id(&req)).await?;
    let ct = c.texts();
    c.confirm(
        "/clients",
        &client.name,
        ct.confirm_rotate_secret,
        c.url(&format!("/clients/{}/rotate-secret", client.id)),
        ct.rotate_secret,
        c.url(&format!("/clients/{}", client.id)),
    )
}

/// `POST {issuer}/admin/clients/{id}/rotate-secret` (clients:update) — the new secret,
/// shown once.
pub async fn rotate_secret_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("clients:update")?;
    let client = find(&c, path_id(&req)).await?;
    let secret = clients::rotate_secret(state.clients(), &p.tenant, &client.id)
        .await
        .map_err(|e| client_error(&c, e))?
        .ok_or_else(|| c.not_found())?;
    c.audit("client.secret_rotated", ("client_id", &client.id));
    c.secret(
        "/clients",
        StatusCode::OK,
        client_secret(&c, &client.id, &secret, None),
    )
}

fn client_secret<'a>(
    c: &Console<'_>,
    client_id: &'a str,
    secret: &'a str,
    notice: Option<&'static str>,
) -> Secret<'a> {
    let ct = c.texts();
    Secret {
        label: ct.client_secret,
        id_label: ct.client_id,
        id: client_id,
        once: ct.secret_once,
        value: secret,
        notice,
        back: c.url(&format!("/clients/{client_id}")),
    }
}

/// `GET {issuer}/admin/clients/{id}/delete` (clients:delete) — asks first.
pub async fn delete_get(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_session(&state, &req, &p, locale(&req, None)));
    c.require("clients:delete")?;
    let client = find(&c, path_id(&req)).await?;
    let ct = c.texts();
    c.confirm(
        "/clients",
        &client.name,
        ct.confirm_delete_client,
        c.url(&format!("/clients/{}/delete", client.id)),
        ct.delete,
        c.url(&format!("/clients/{}", client.id)),
    )
}

/// `POST {issuer}/admin/clients/{id}/delete` (clients:delete)
pub async fn delete_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    TenantProvider(p): TenantProvider,
    PageForm(form): PageForm,
) -> Result<HttpResponse, PageError> {
    let c = visit!(console_form(&state, &req, &p, &form, locale(&req, None)));
    c.require("clients:delete")?;
    let client = find(&c, path_id(&req)).await?;
    if !clients::delete_client(state.clients(), &p.tenant, &client.id)
        .await
        .map_err(|e| client_error(&c, e))?
    {
        return Err(c.not_found());
    }
    c.audit("client.deleted", ("client_id", &client.id));
    list_page(&c, StatusCode::OK, Some(c.texts().client_deleted)).await
}
