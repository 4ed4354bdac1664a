//! Test harness: starts the real server on a random port over a fresh database (a temp-dir
//! SQLite file, or a new PostgreSQL database when `PORTCULLIS_TEST_DATABASE=postgres`),
//! seeds data through the same domain functions the CLI uses, and speaks HTTP to it with a
//! cookie-keeping client that does not follow redirects.

use std::net::TcpListener;
use std::sync::Arc;

use portcullis::accounts::{self, Email, NewUser, Password};
use portcullis::clients::{self, GrantType, NewClient, RedirectUri};
use portcullis::config::{Argon2Params, Config};
use portcullis::crypto::{self, MasterKey};
use portcullis::keys::Alg;
use portcullis::startup::{self, Application};
use portcullis::state::AppState;
use portcullis::tenants::{Tenant, TenantSlug};
use regex::Regex;
use reqwest::cookie::Jar;
use serde_json::Value;

pub const PASSWORD: &str = "Correct-Horse-42";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// The Redis of the tests (CI runs one on 127.0.0.1:6379); tests use their own key prefix.
pub fn redis_url() -> String {
    std::env::var("PORTCULLIS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

pub fn backend() -> String {
    std::env::var("PORTCULLIS_TEST_DATABASE").unwrap_or_else(|_| "sqlite".into())
}

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub tenant: Tenant,
    pub http: reqwest::Client,
    _dir: Option<TempDir>,
}

pub struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn database_url() -> (String, Option<TempDir>) {
    match backend().as_str() {
        "postgres" => {
            let base = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let name = format!("pc_test_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::PgPool::connect(&base)
                .await
                .expect("PostgreSQL is reachable");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
            (format!("{prefix}/{name}"), None)
        }
        _ => {
            let dir =
                std::env::temp_dir().join(format!("portcullis-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            (
                format!("sqlite://{}/test.db", dir.display()),
                Some(TempDir(dir)),
            )
        }
    }
}

pub fn test_config(port: u16, database_url: String) -> Config {
    let mut c = Config {
        bind: format!("127.0.0.1:{port}"),
        public_url: format!("http://127.0.0.1:{port}"),
        database_url,
        database_max_connections: 5,
        master_key: Some(MasterKey::generate().to_base64().into()),
        // Cheap hashing keeps the suite fast; the defaults are covered by unit tests.
        argon2: Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        log_level: "warn".into(),
        workers: 2,
        ..Config::default()
    };
    c.validate().unwrap();
    c
}

pub fn http_client(jar: Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        // A request that hangs fails its test instead of stalling the suite.
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn(adjust, false).await.0
}

/// An app whose database was seeded by `serve --demo` before anything else.
pub async fn spawn_demo_app() -> (TestApp, portcullis::demo::DemoCredentials) {
    let (app, creds) = spawn(|_| {}, true).await;
    (app, creds.expect("demo seeded on an empty database"))
}

async fn spawn(
    adjust: impl FnOnce(&mut Config),
    demo: bool,
) -> (TestApp, Option<portcullis::demo::DemoCredentials>) {
    let (url, dir) = database_url().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = test_config(port, url);
    adjust(&mut config);
    let state = startup::open_state(config).await.expect("state");
    let creds = if demo {
        portcullis::demo::seed(&state).await.unwrap()
    } else {
        None
    };
    let app = Application::with_listener(state.clone(), listener, true).expect("app");
    tokio::spawn(app.run_until_stopped());
    let tenant = portcullis::provisioning::create_tenant(
        &state.pool,
        &state.master_key,
        &TenantSlug::parse("acme").unwrap(),
        Some("Acme"),
    )
    .await
    .unwrap();
    let jar = Arc::new(Jar::default());
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        http: http_client(jar),
        state,
        tenant,
        _dir: dir,
    };
    (app, creds)
}

#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

pub struct ClientOptions {
    pub public: bool,
    pub grants: Vec<GrantType>,
    pub scopes: Option<Vec<&'static str>>,
    pub skip_consent: bool,
    pub alg: Alg,
    pub backchannel: Option<String>,
    pub post_logout: Vec<String>,
    /// Instead of [`REDIRECT_URI`] (a relying party that really receives the redirect).
    pub redirect_uri: Option<String>,
    /// Browser origins CORS allows for this client.
    pub origins: Vec<String>,
    /// The client's own MFA policy (none: the tenant's applies).
    pub mfa_policy: Option<portcullis::tenants::MfaPolicy>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            public: false,
            grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: None,
            skip_consent: false,
            alg: Alg::Rs256,
            backchannel: None,
            post_logout: vec![],
            redirect_uri: None,
            origins: vec![],
            mfa_policy: None,
        }
    }
}

impl TestApp {
    /// A handle on a server started elsewhere (another process) over `state`'s database.
    pub fn at(address: String, state: AppState, tenant: Tenant, http: reqwest::Client) -> Self {
        Self {
            address,
            state,
            tenant,
            http,
            _dir: None,
        }
    }

    pub fn issuer(&self) -> String {
        format!("{}/t/{}", self.address, self.tenant.slug)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer(), path)
    }

    /// A second browser: its own cookie jar.
    /// `GET /userinfo` with an access token: the claims (the request must succeed).
    pub async fn userinfo(&self, access_token: &str) -> Value {
        let r = self
            .http
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub fn new_browser(&self) -> reqwest::Client {
        http_client(Arc::new(Jar::default()))
    }

    /// An API key with `scopes`, of `tenant` (or a platform key for `None`).
    pub async fn api_key(&self, tenant: Option<&Tenant>, scopes: &[&str]) -> String {
        portcullis::api_keys::create(
            self.state.api_keys(),
            tenant,
            portcullis::api_keys::NewApiKey {
                name: "test key",
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                expires_in_days: Some(1),
                created_by: None,
            },
        )
        .await
        .unwrap()
        .1
    }

    pub async fn create_tenant(&self, slug: &str) -> Tenant {
        portcullis::provisioning::create_tenant(
            &self.state.pool,
            &self.state.master_key,
            &TenantSlug::parse(slug).unwrap(),
            None,
        )
        .await
        .unwrap()
    }

    pub async fn create_client(&self, opts: ClientOptions) -> TestClient {
        self.create_client_in(&self.tenant, opts).await
    }

    pub async fn create_client_in(&self, tenant: &Tenant, opts: ClientOptions) -> TestClient {
        let mut new = NewClient::new("Test app");
        new.public = opts.public;
        new.redirect_uris =
            vec![RedirectUri::parse(opts.redirect_uri.as_deref().unwrap_or(REDIRECT_URI)).unwrap()];
        new.grant_types = opts.grants;
        if let Some(s) = opts.scopes {
            new.scopes = s.into_iter().map(str::to_string).collect();
        }
        new.skip_consent = opts.skip_consent;
        new.allowed_origins = opts.origins;
        new.signing_alg = opts.alg;
        new.mfa_policy = opts.mfa_policy;
        new.backchannel_logout_uri = opts.backchannel;
        new.post_logout_redirect_uris = opts
            .post_logout
            .iter()
            .map(|u| RedirectUri::parse(u).unwrap())
            .collect();
        let (c, secret) = clients::create_client(self.state.clients(), tenant, new)
            .await
            .unwrap();
        TestClient { id: c.id, secret }
    }

    pub async fn create_user(&self, email: &str) -> String {
        self.create_user_in(&self.tenant, email).await
    }

    pub async fn create_user_with_roles(&self, email: &str, roles: &[&str]) -> String {
        accounts::create_user(
            &self.state.pool,
            &self.state.hasher,
            &self.tenant,
            NewUser {
                email: Email::parse(email).unwrap(),
                password: Some(Password::parse(PASSWORD).unwrap()),
                profile: Default::default(),
                email_verified: true,
                roles: roles.iter().map(|r| r.to_string()).collect(),
                attributes: Default::default(),
            },
        )
        .await
        .unwrap()
        .id
    }

    /// A first-party access token from `/api/v1/auth/login`.
    pub async fn login(&self, email: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        body["data"]["token"].as_str().unwrap().to_string()
    }

    pub async fn create_user_in(&self, tenant: &Tenant, email: &str) -> String {
        accounts::create_user(
            &self.state.pool,
            &self.state.hasher,
            tenant,
            NewUser {
                email: Email::parse(email).unwrap(),
                password: Some(Password::parse(PASSWORD).unwrap()),
                profile: portcullis::accounts::Profile {
                    name: Some("Ana Souza".into()),
                    ..Default::default()
                },
                email_verified: true,
                roles: vec![],
                attributes: Default::default(),
            },
        )
        .await
        .unwrap()
        .id
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(url).form(form).send().await.unwrap()
    }

    /// POST to the token endpoint with client_secret_basic (id and secret form-urlencoded
    /// first, RFC 6749 §2.3.1).
    pub async fn token(&self, client: &TestClient, form: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.http.post(self.url("/token")).form(form);
        match &client.secret {
            Some(secret) => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let basic = crypto::b64(format!("{}:{}", enc(&client.id), enc(secret)).as_bytes());
                req = req.header("authorization", format!("Basic {basic}"));
            }
            None => {
                let mut f: Vec<(&str, &str)> = form.to_vec();
                f.push(("client_id", &client.id));
                req = self.http.post(self.url("/token")).form(&f);
            }
        }
        req.send().await.unwrap()
    }

    pub async fn introspect(&self, client: &TestClient, token: &str) -> Value {
        let r = self
            .http
            .post(self.url("/introspect"))
            .basic_auth(&client.id, client.secret.as_deref())
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Drives a browser through authorize → sign-in → consent and returns the final
    /// redirect's query parameters (code, state, iss — or error).
    pub async fn authorize_through_forms(
        &self,
        browser: &reqwest::Client,
        authorize_url: &str,
        email: &str,
    ) -> Vec<(String, String)> {
        query_of(&drive_forms(browser, authorize_url, email, PASSWORD, REDIRECT_URI).await)
    }

    /// A complete code + PKCE flow with the given extra parameters; returns the code and the
    /// verifier.
    pub async fn code_for(
        &self,
        browser: &reqwest::Client,
        client: &TestClient,
        email: &str,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let verifier = crypto::random_token(32);
        let challenge = crypto::b64url(&crypto::sha256(verifier.as_bytes()));
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid profile email offline_access"),
            ("state", "st-1"),
            ("nonce", "n-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        let url = format!(
            "{}?{}",
            self.url("/authorize"),
            serde_urlencoded::to_string(&params).unwrap()
        );
        let q = self.authorize_through_forms(browser, &url, email).await;
        let code = param(&q, "code").unwrap_or_else(|| panic!("no code in {q:?}"));
        (code, verifier)
    }

    /// Code flow then token exchange: the token response JSON.
    pub async fn tokens_for(&self, client: &TestClient, email: &str) -> Value {
        let browser = self.new_browser();
        let (code, verifier) = self.code_for(&browser, client, email, &[]).await;
        let r = self
            .token(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", &verifier),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

/// Starts `authorize_url` in `browser`, follows it to the sign-in page and submits `email`
/// and `password` there: the answer of the password step.
pub async fn submit_sign_in(
    browser: &reqwest::Client,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    let r = browser.get(authorize_url).send().await.unwrap();
    let html = browser
        .get(r.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = parse_form(&html);
    let mut fields = form.hidden.clone();
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), password.into()));
    browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap()
}

/// Follows redirects and fills the sign-in and consent forms until the browser is sent to
/// a URL starting with `stop`; returns that URL.
pub async fn drive_forms(
    browser: &reqwest::Client,
    start: &str,
    email: &str,
    password: &str,
    stop: &str,
) -> String {
    let mut next = start.to_string();
    for _ in 0..8 {
        let resp = browser.get(&next).send().await.unwrap();
        let status = resp.status().as_u16();
        if status == 302 || status == 303 {
            let location = resp.headers()["location"].to_str().unwrap().to_string();
            if location.starts_with(stop) {
                return location;
            }
            next = location;
            continue;
        }
        assert_eq!(status, 200, "unexpected status at {next}");
        let html = resp.text().await.unwrap();
        let form = parse_form(&html);
        let mut fields = form.hidden.clone();
        if html.contains("name=\"password\"") {
            fields.push(("email".into(), email.into()));
            fields.push(("password".into(), password.into()));
            fields.push(("action".into(), "sign_in".into()));
        } else if html.contains("value=\"allow\"") {
            fields.push(("decision".into(), "allow".into()));
        } else {
            panic!("unexpected page: {html}");
        }
        let resp = browser
            .post(&form.action)
            .form(&fields)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(
            status == 302 || status == 303,
            "form post answered {status}: {}",
            resp.text().await.unwrap()
        );
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        if location.starts_with(stop) {
            return location;
        }
        next = location;
    }
    panic!("too many steps");
}

pub struct Form {
    pub action: String,
    pub hidden: Vec<(String, String)>,
}

/// The last form of a page as a browser without JavaScript shows it (the passkey forms are
/// hidden until their script runs): its action and hidden inputs.
pub fn parse_form(html: &str) -> Form {
    parse_last_form(html, |f| !f.contains("data-passkey"))
}

/// The last passkey form of a page (the one its script drives).
pub fn parse_passkey_form(html: &str) -> Form {
    parse_last_form(html, |f| f.contains("data-passkey"))
}

fn parse_last_form(html: &str, wanted: impl Fn(&str) -> bool) -> Form {
    let action = Regex::new(r#"<form method="post" action="([^"]+)""#).unwrap();
    let hidden = Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)">"#).unwrap();
    let forms: Vec<String> = html
        .split("<form ")
        .skip(1)
        .map(|f| format!("<form {}", f.split("</form>").next().unwrap_or(f)))
        .filter(|f| wanted(f))
        .collect();
    let last = forms.last().expect("a form");
    let action = action.captures(last).expect("form action")[1]
        .replace("&#x2f;", "/")
        .replace("&#47;", "/");
    let hidden = hidden
        .captures_iter(last)
        .map(|c| (unescape(&c[1]), unescape(&c[2])))
        .collect();
    Form {
        action: unescape(&action),
        hidden,
    }
}

pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&#x3d;", "=")
        .replace("&#61;", "=")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn query_of(url: &str) -> Vec<(String, String)> {
    let u = url::Url::parse(url).unwrap();
    u.query_pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn param(q: &[(String, String)], name: &str) -> Option<String> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// The claims of a JWT, unverified (tests verify signatures separately).
pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&crypto::b64url_decode(payload).unwrap()).unwrap()
}

/// Runs an independent client from `tests/peers` (off the async runtime, from the crate root)
/// and returns the JSON object it printed after `OK `; a failed run fails the test with the
/// peer's output. `install` says what installs the peer, for the message when it cannot start.
pub async fn run_peer(mut cmd: std::process::Command, install: &'static str) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap_or_else(|e| panic!("the peer does not start ({e}); {install}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OK "))
        .unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    serde_json::from_str(line).unwrap()
}

/// A free loopback port, for a peer that must be known (registered) before it starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
