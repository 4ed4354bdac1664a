//! The admin API: clients, users, keys, settings, audit; tenants with platform keys.

use serde_json::{json, Value};

use crate::helpers::*;

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    url: &str,
    auth: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, url);
    req = if auth.starts_with("ak_") {
        req.header("x-api-key", auth)
    } else {
        req.bearer_auth(auth)
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_admin_manages_clients_users_keys_and_settings_and_every_write_is_audited() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let (get, post, delete, patch) = (
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    );

    let (s, c) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/clients"),
        &admin,
        Some(json!({"name": "Portal", "redirect_uris": ["https://portal.acme.test/cb"]})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let client_id = c["data"]["client_id"].as_str().unwrap().to_string();
    assert!(c["data"]["client_secret"]
        .as_str()
        .unwrap()
        .starts_with("cs_"));
    let (s, list) = call(
        &app,
        get.clone(),
        &app.url("/api/v1/admin/clients"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "the built-in first-party client is not listed"
    );
    assert!(list["data"][0].get("client_secret").is_none());
    let (s, body) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/clients"),
        &admin,
        Some(json!({"name": "Bad", "redirect_uris": ["https://x/cb#f"]})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );

    let (s, u) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/users"),
        &admin,
        Some(json!({"email": "new@acme.test", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 201, "{u}");
    let user_id = u["data"]["id"].as_str().unwrap().to_string();
    assert!(u["data"].get("password_hash").is_none());
    let (s, body) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/users"),
        &admin,
        Some(json!({"email": "weak@acme.test", "password": "weak"})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at least 12 characters"));
    let (s, body) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/users"),
        &admin,
        Some(json!({"email": "new@acme.test", "password": PASSWORD})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].clone()), (409, json!("CONFLICT")));
    let (s, page) = call(
        &app,
        get.clone(),
        &app.url("/api/v1/admin/users?limit=1"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = call(
        &app,
        get.clone(),
        &app.url(&format!("/api/v1/admin/users?limit=1&cursor={cursor}")),
        &admin,
        None,
    )
    .await;
    assert_ne!(page["data"][0]["id"], page2["data"][0]["id"]);

    let (s, settings) = call(
        &app,
        patch.clone(),
        &app.url("/api/v1/admin/settings"),
        &admin,
        Some(
            json!({"custom_claims": {"ispb": "12345678"}, "branding": {"accent_color": "#aa0000"}}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{settings}");
    assert_eq!(settings["data"]["custom_claims"]["ispb"], "12345678");
    // Custom claims reach new tokens (seed 000: ispb).
    let token = app.login("admin@acme.test").await;
    assert_eq!(jwt_claims(&token)["ispb"], "12345678");
    let (s, body) = call(
        &app,
        patch,
        &app.url("/api/v1/admin/settings"),
        &admin,
        Some(json!({"refresh_token_reuse_interval": -5})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );

    let (s, rotated) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/keys/rotate"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        rotated["data"]["next_kids"].as_array().unwrap().len(),
        portcullis::keys::Alg::ALL.len()
    );
    let (s, keys) = call(
        &app,
        get.clone(),
        &app.url("/api/v1/admin/keys"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        keys["data"]["keys"].as_array().unwrap().len(),
        3 * portcullis::keys::Alg::ALL.len(),
        "active, next and retired of each algorithm"
    );

    let (s, _) = call(
        &app,
        delete.clone(),
        &app.url(&format!("/api/v1/admin/users/{user_id}")),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &app,
        get.clone(),
        &app.url(&format!("/api/v1/admin/users/{user_id}")),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &app,
        delete.clone(),
        &app.url(&format!("/api/v1/admin/clients/{client_id}")),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);

    // The audit log has every write, filterable and paginated, with the correlation id.
    let (s, audit) = call(
        &app,
        get.clone(),
        &app.url("/api/v1/admin/audit?limit=100"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let events: Vec<String> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "client.created",
        "user.created",
        "settings.updated",
        "keys.rotated",
        "user.deleted",
        "client.deleted",
        "signin.success",
    ] {
        assert!(
            events.contains(&expected.to_string()),
            "{expected} missing in {events:?}"
        );
    }
    assert!(audit["data"][0]["correlation_id"].is_string());
    let (_, only) = call(
        &app,
        get.clone(),
        &app.url("/api/v1/admin/audit?event=user.created"),
        &admin,
        None,
    )
    .await;
    assert!(only["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] == "user.created"));
    let (_, first) = call(
        &app,
        get.clone(),
        &app.url("/api/v1/admin/audit?limit=2"),
        &admin,
        None,
    )
    .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = call(
        &app,
        get.clone(),
        &app.url(&format!("/api/v1/admin/audit?limit=2&cursor={cursor}")),
        &admin,
        None,
    )
    .await;
    assert_ne!(first["data"][0]["id"], second["data"][0]["id"]);
    let serialized = audit.to_string();
    assert!(
        !serialized.contains(PASSWORD) && !serialized.contains("cs_"),
        "no secret in the audit log"
    );
}

#[tokio::test]
async fn the_correlation_id_of_an_error_is_the_one_in_the_audit_event() {
    let app = spawn_app().await;
    app.create_user("ana@acme.test").await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let r = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("x-request-id", "req-abc-123")
        .json(&json!({"email": "ana@acme.test", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-abc-123");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["correlation_id"], "req-abc-123");
    let admin = app.login("admin@acme.test").await;
    let (_, audit) = call(
        &app,
        reqwest::Method::GET,
        &app.url("/api/v1/admin/audit?event=signin.failure"),
        &admin,
        None,
    )
    .await;
    assert_eq!(audit["data"][0]["correlation_id"], "req-abc-123");
}

#[tokio::test]
async fn platform_keys_manage_tenants_and_tenant_keys_cannot() {
    let app = spawn_app().await;
    let (_, platform) = portcullis::api_keys::create(
        app.state.api_keys(),
        None,
        portcullis::api_keys::NewApiKey {
            name: "ops",
            scopes: vec!["tenants:create".into(), "tenants:read".into()],
            expires_in_days: Some(30),
            created_by: None,
        },
    )
    .await
    .unwrap();
    let url = format!("{}/api/v1/admin/tenants", app.address);
    let (s, t) = call(
        &app,
        reqwest::Method::POST,
        &url,
        &platform,
        Some(json!({"slug": "initech", "name": "Initech"})),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["data"]["issuer"], format!("{}/t/initech", app.address));
    let (s, list) = call(&app, reqwest::Method::GET, &url, &platform, None).await;
    assert_eq!(s, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (s, body) = call(
        &app,
        reqwest::Method::POST,
        &url,
        &platform,
        Some(json!({"slug": "initech"})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].clone()), (409, json!("CONFLICT")));
    let (_, tenant_key) = portcullis::api_keys::create(
        app.state.api_keys(),
        Some(&app.tenant),
        portcullis::api_keys::NewApiKey {
            name: "k",
            scopes: vec!["*".into()],
            expires_in_days: Some(30),
            created_by: None,
        },
    )
    .await
    .unwrap();
    let (s, _) = call(
        &app,
        reqwest::Method::POST,
        &url,
        &tenant_key,
        Some(json!({"slug": "evil"})),
    )
    .await;
    assert_eq!(s, 401);
    // And a platform key holds no permission inside a tenant.
    let (s, body) = call(
        &app,
        reqwest::Method::GET,
        &app.url("/api/v1/admin/users"),
        &platform,
        None,
    )
    .await;
    assert_eq!(s, 401, "{body}");
}

#[tokio::test]
async fn an_admin_updates_a_client_and_rotates_its_secret_through_the_api() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let (post, put, get) = (
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::GET,
    );
    let (s, c) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/clients"),
        &admin,
        Some(json!({"name": "Worker", "grant_types": ["client_credentials"], "scopes": ["api"]})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["data"]["client_id"].as_str().unwrap().to_string();
    let old = TestClient {
        id: id.clone(),
        secret: c["data"]["client_secret"].as_str().map(str::to_string),
    };
    let url = app.url(&format!("/api/v1/admin/clients/{id}"));
    // The whole registration is replaced; the id and the secret stay.
    let (s, body) = call(
        &app,
        put.clone(),
        &url,
        &admin,
        Some(json!({"name": "Worker 2", "grant_types": ["client_credentials"], "scopes": ["api", "reports"],
            "access_token_ttl": 120, "mfa_policy": "required", "skip_consent": true})),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["name"], "Worker 2");
    assert_eq!(body["data"]["access_token_ttl"], 120);
    assert_eq!(body["data"]["mfa_policy"], "required");
    assert_eq!(body["data"]["skip_consent"], true);
    assert_eq!(body["data"]["scopes"], json!(["api", "reports"]));
    let r = app
        .token(
            &old,
            &[("grant_type", "client_credentials"), ("scope", "reports")],
        )
        .await;
    assert_eq!(
        r.status(),
        200,
        "the secret still works, with the new scope"
    );
    // A client's type cannot change, and the rules of a new client apply.
    let (s, body) = call(
        &app,
        put.clone(),
        &url,
        &admin,
        Some(json!({"name": "Worker", "public": true, "redirect_uris": [REDIRECT_URI]})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        body["error"]["message"],
        "a client cannot change between public and confidential (register a new client)"
    );
    let (s, body) = call(
        &app,
        put.clone(),
        &url,
        &admin,
        Some(json!({"name": "", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        body["error"]["message"],
        "client name must be 1-200 characters"
    );
    let (s, _) = call(
        &app,
        put.clone(),
        &app.url("/api/v1/admin/clients/nope"),
        &admin,
        Some(json!({"name": "X", "grant_types": ["client_credentials"]})),
    )
    .await;
    assert_eq!(s, 404);
    // Rotation: the new secret once; the old one stops working at once.
    let (s, body) = call(
        &app,
        post.clone(),
        &format!("{url}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let new = TestClient {
        id: id.clone(),
        secret: body["data"]["client_secret"].as_str().map(str::to_string),
    };
    assert_ne!(new.secret, old.secret);
    assert_eq!(
        app.token(&old, &[("grant_type", "client_credentials")])
            .await
            .status(),
        401
    );
    assert_eq!(
        app.token(&new, &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );
    let (_, shown) = call(&app, get, &url, &admin, None).await;
    assert!(shown["data"].get("client_secret").is_none());
    // A public client has no secret to rotate.
    let (_, public) = call(
        &app,
        post.clone(),
        &app.url("/api/v1/admin/clients"),
        &admin,
        Some(json!({"name": "SPA", "public": true, "redirect_uris": [REDIRECT_URI]})),
    )
    .await;
    let spa = public["data"]["client_id"].as_str().unwrap();
    let (s, _) = call(
        &app,
        post,
        &app.url(&format!("/api/v1/admin/clients/{spa}/rotate-secret")),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 404);
    // Both audited.
    let token = crate::federation::admin_token(&app).await;
    for event in ["client.updated", "client.secret_rotated"] {
        let events = crate::federation::audit_events(&app, &token, event).await;
        assert_eq!(events.len(), 1, "{event}");
    }
}
