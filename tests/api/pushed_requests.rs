//! Pushed authorization requests (RFC 9126): `{issuer}/par`, single-use `request_uri`s
//! bound to their client and valid 60 s, and the per-client and per-tenant requirement.

use portcullis::storage::dispatch;
use serde_json::Value;

use crate::helpers::{
    drive_forms, param, query_of, spawn_app, ClientOptions, TestApp, TestClient, PASSWORD,
    REDIRECT_URI,
};
use crate::private_key_jwt::{key_client_for_code, ClientKey, ASSERTION_TYPE};

const EMAIL: &str = "ana@example.com";

type Form<'a> = Vec<(&'a str, &'a str)>;

fn pkce() -> (String, String) {
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

fn request_params<'a>(client_id: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid profile"),
        ("state", "par-state"),
        ("nonce", "par-nonce"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// POST /par with client_secret_basic.
async fn push(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/par"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 201 {
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    (status, r.json().await.unwrap())
}

fn authorize_by_reference(app: &TestApp, client_id: &str, request_uri: &str) -> String {
    format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string([("client_id", client_id), ("request_uri", request_uri)])
            .unwrap()
    )
}

async fn expect_invalid_request_uri(app: &TestApp, url: &str) {
    let r = app.new_browser().get(url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none(), "never redirected");
    let html = r.text().await.unwrap();
    assert!(html.contains("invalid_request_uri"), "{html}");
}

#[tokio::test]
async fn a_pushed_request_signs_in_once_and_its_code_redeems() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let client = app.create_client(ClientOptions::default()).await;
    let (verifier, challenge) = pkce();
    let (status, body) = push(&app, &client, &request_params(&client.id, &challenge)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["expires_in"], 60);
    let request_uri = body["request_uri"].as_str().unwrap().to_string();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    // Only client_id and request_uri travel through the browser; other parameters there
    // are ignored (RFC 9126 §4): the pushed state comes back.
    let url = format!(
        "{}&state=tampered",
        authorize_by_reference(&app, &client.id, &request_uri)
    );
    let browser = app.new_browser();
    let q = query_of(&drive_forms(&browser, &url, EMAIL, PASSWORD, REDIRECT_URI).await);
    assert_eq!(param(&q, "state").as_deref(), Some("par-state"));
    assert_eq!(param(&q, "iss"), Some(app.issuer()));
    let code = param(&q, "code").unwrap();
    let r = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let id_token = crate::helpers::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id_token["nonce"], "par-nonce");
    // The request_uri was used up.
    expect_invalid_request_uri(
        &app,
        &authorize_by_reference(&app, &client.id, &request_uri),
    )
    .await;
}

#[tokio::test]
async fn a_request_uri_is_bound_to_its_client_and_expires() {
    let app = spawn_app().await;
    let client = app.create_client(ClientOptions::default()).await;
    let other = app.create_client(ClientOptions::default()).await;
    let (_, challenge) = pkce();
    let (_, body) = push(&app, &client, &request_params(&client.id, &challenge)).await;
    let request_uri = body["request_uri"].as_str().unwrap().to_string();
    // Another client cannot use it, nor a client of another tenant.
    expect_invalid_request_uri(&app, &authorize_by_reference(&app, &other.id, &request_uri)).await;
    let globex = app.create_tenant("globex").await;
    let foreign = app
        .create_client_in(&globex, ClientOptions::default())
        .await;
    let r = app
        .new_browser()
        .get(format!(
            "{}/t/globex/authorize?{}",
            app.address,
            serde_urlencoded::to_string([
                ("client_id", &foreign.id),
                ("request_uri", &request_uri)
            ])
            .unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_request_uri"));
    // Those attempts did not burn it: the right client still reaches the sign-in page.
    let r = app
        .new_browser()
        .get(authorize_by_reference(&app, &client.id, &request_uri))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.headers());
    assert!(r.headers()["location"].to_str().unwrap().contains("/login"));
    // A second pushed request, to see one expire.
    let (_, body) = push(&app, &client, &request_params(&client.id, &challenge)).await;
    let request_uri = body["request_uri"].as_str().unwrap().to_string();
    // A made-up reference.
    expect_invalid_request_uri(
        &app,
        &authorize_by_reference(
            &app,
            &client.id,
            "urn:ietf:params:oauth:request_uri:made-up",
        ),
    )
    .await;
    // Past its 60 s.
    dispatch!(&app.state.pool, p => {
        sqlx::query("UPDATE pushed_requests SET expires_at = $1")
            .bind(portcullis::storage::now() - 1)
            .execute(p)
            .await
            .unwrap();
    });
    expect_invalid_request_uri(
        &app,
        &authorize_by_reference(&app, &client.id, &request_uri),
    )
    .await;
}

#[tokio::test]
async fn a_bad_pushed_request_is_answered_to_the_client_with_its_error() {
    let app = spawn_app().await;
    let client = app.create_client(ClientOptions::default()).await;
    let (_, challenge) = pkce();
    let base = request_params(&client.id, &challenge);
    let with = |k: &'static str, v: &'static str| {
        let mut f: Vec<(&str, &str)> = base.iter().filter(|(n, _)| *n != k).cloned().collect();
        f.push((k, v));
        f
    };
    let cases: Vec<(Form, &str, &str)> = vec![
        (
            with("redirect_uri", "https://evil.example/cb"),
            "invalid_request",
            "The redirect_uri is not registered for this application.",
        ),
        (
            with("request_uri", "urn:ietf:params:oauth:request_uri:x"),
            "invalid_request",
            "request_uri cannot be pushed (RFC 9126 §2.1)",
        ),
        (
            with("client_id", "someone-else"),
            "invalid_request",
            "client_id does not match the credentials",
        ),
        (
            with("scope", "openid admin"),
            "invalid_scope",
            "scope admin is not allowed for this client",
        ),
        (
            with("code_challenge_method", "plain"),
            "invalid_request",
            "code_challenge_method must be S256 (plain is not supported)",
        ),
        (
            base.iter()
                .filter(|(n, _)| *n != "client_id")
                .cloned()
                .collect(),
            "invalid_request",
            "client_id is required",
        ),
        (
            with("response_type", "token"),
            "unsupported_response_type",
            "only response_type=code is supported",
        ),
    ];
    for (form, error, description) in cases {
        let (status, body) = push(&app, &client, &form).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], error, "{body}");
        assert_eq!(body["error_description"], description);
    }
    // Without client authentication.
    let r = app
        .http
        .post(app.url("/par"))
        .form(&base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // Nothing was stored by the refused requests.
    let stored: i64 = dispatch!(&app.state.pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM pushed_requests").fetch_one(p).await.unwrap());
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn par_can_be_required_per_client_and_per_tenant() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let client = app.create_client(ClientOptions::default()).await;
    let (_, challenge) = pkce();
    let direct = format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string(request_params(&client.id, &challenge)).unwrap()
    );
    // Not required: a direct request reaches the sign-in page.
    let r = app.new_browser().get(&direct).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().contains("/login"));
    let mut settings = app.tenant.settings.clone();
    settings.require_pushed_authorization_requests = true;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &settings)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
    let r = app.new_browser().get(&direct).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
    assert_eq!(
        param(&q, "error_description").as_deref(),
        Some("authorization requests of this client must be pushed first (PAR, RFC 9126)")
    );
    assert_eq!(param(&q, "state").as_deref(), Some("par-state"));
    let doc: Value = app
        .get(&app.url("/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        app.url("/par")
    );
    // The pushed way still works.
    let (_, body) = push(&app, &client, &request_params(&client.id, &challenge)).await;
    let url = authorize_by_reference(&app, &client.id, body["request_uri"].as_str().unwrap());
    let q = query_of(&drive_forms(&app.new_browser(), &url, EMAIL, PASSWORD, REDIRECT_URI).await);
    assert!(param(&q, "code").is_some(), "{q:?}");
}

#[tokio::test]
async fn a_client_requiring_par_and_authenticating_with_a_key_pushes_its_requests() {
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let key = ClientKey::es256("k1");
    let id = key_client_for_code(&app, &key, true).await;
    let (_, challenge) = pkce();
    let direct = format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string(request_params(&id, &challenge)).unwrap()
    );
    let r = app.new_browser().get(&direct).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
    // PAR with a private_key_jwt assertion addressed to the issuer (RFC 9126 §2).
    let assertion = key.assertion(&id, &app.issuer());
    let mut form = request_params(&id, &challenge);
    form.push(("client_assertion_type", ASSERTION_TYPE));
    form.push(("client_assertion", &assertion));
    let r = app
        .http
        .post(app.url("/par"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let url = authorize_by_reference(&app, &id, body["request_uri"].as_str().unwrap());
    let q = query_of(&drive_forms(&app.new_browser(), &url, EMAIL, PASSWORD, REDIRECT_URI).await);
    assert!(param(&q, "code").is_some(), "{q:?}");
}
