//! Dynamic client registration (RFC 7591) and management (RFC 7592).

use serde_json::{json, Value};

use crate::helpers::*;

async fn enable(app: &TestApp, token_required: bool) {
    let mut s = app.tenant.settings.clone();
    s.registration_enabled = true;
    s.registration_token_required = token_required;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &s)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
}

#[tokio::test]
async fn a_client_registers_itself_signs_users_in_and_manages_its_registration() {
    let app = spawn_app().await;
    let r = app
        .http
        .post(app.url("/register"))
        .json(&json!({"redirect_uris": [REDIRECT_URI]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "off by default");
    enable(&app, false).await;
    let d: Value = app
        .get(&app.url("/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["registration_endpoint"], app.url("/register"));

    let r = app
        .http
        .post(app.url("/register"))
        .json(&json!({"redirect_uris": [REDIRECT_URI], "client_name": "Self-registered", "grant_types": ["authorization_code", "refresh_token"], "scope": "openid email offline_access"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let reg: Value = r.json().await.unwrap();
    let client = TestClient {
        id: reg["client_id"].as_str().unwrap().into(),
        secret: reg["client_secret"].as_str().map(str::to_string),
    };
    assert!(client.secret.is_some());
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    let rat = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let uri = reg["registration_client_uri"].as_str().unwrap().to_string();

    app.create_user("ana@example.com").await;
    let browser = app.new_browser();
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid%20email&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id
    );
    let q = app
        .authorize_through_forms(&browser, &url, "ana@example.com")
        .await;
    let r = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &param(&q, "code").unwrap()),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);

    let r = app.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["client_name"],
        "Self-registered"
    );
    let r = app
        .http
        .get(&uri)
        .bearer_auth("rat_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let r = app.http.put(&uri).bearer_auth(&rat).json(&json!({"client_id": client.id, "redirect_uris": [REDIRECT_URI], "client_name": "Renamed"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["client_name"], "Renamed");
    let r = app
        .http
        .delete(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.http
            .get(&uri)
            .bearer_auth(&rat)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = app
        .token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", "rt_x")],
        )
        .await;
    assert_eq!(r.status(), 401, "a deleted client no longer authenticates");
}

#[tokio::test]
async fn bad_metadata_gets_rfc7591_errors() {
    let app = spawn_app().await;
    enable(&app, false).await;
    for (body, error) in [
        (
            json!({"redirect_uris": ["https://x.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
    ] {
        let r = app
            .http
            .post(app.url("/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], error, "{body}");
    }
}

#[tokio::test]
async fn an_initial_access_token_can_be_required() {
    let app = spawn_app().await;
    enable(&app, true).await;
    let body = json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"});
    let r = app
        .http
        .post(app.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (_, weak) = portcullis::api_keys::create(
        app.state.api_keys(),
        Some(&app.tenant),
        portcullis::api_keys::NewApiKey {
            name: "w",
            scopes: vec!["users:read".into()],
            expires_in_days: Some(1),
            created_by: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        app.http
            .post(app.url("/register"))
            .bearer_auth(&weak)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let (_, key) = portcullis::api_keys::create(
        app.state.api_keys(),
        Some(&app.tenant),
        portcullis::api_keys::NewApiKey {
            name: "iat",
            scopes: vec!["clients:create".into()],
            expires_in_days: Some(1),
            created_by: None,
        },
    )
    .await
    .unwrap();
    let r = app
        .http
        .post(app.url("/register"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let reg: Value = r.json().await.unwrap();
    assert!(
        reg.get("client_secret").is_none(),
        "a public client has no secret"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_metadata_is_invalid_client_metadata() {
    let app = spawn_app().await;
    enable(&app, false).await;
    for (content_type, body, names) in [
        ("text/plain", "{\"redirect_uris\":[]}", "Content-Type"),
        (
            "application/json",
            "{\"redirect_uris\": ",
            "invalid JSON body",
        ),
        (
            "application/json",
            "{\"redirect_uris\": {}}",
            "invalid JSON body",
        ),
    ] {
        let r = app
            .http
            .post(app.url("/register"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid_client_metadata", "{body}");
        assert!(
            e["error_description"].as_str().unwrap().contains(names),
            "{e}"
        );
    }
}
