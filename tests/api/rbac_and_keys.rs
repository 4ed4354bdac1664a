//! RBAC and API keys through the JSON API (seeds 002, 003, 004).

use serde_json::{json, Value};

use crate::helpers::*;

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path));
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
async fn roles_with_inheritance_are_created_assigned_and_show_up_in_tokens() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let user = app.create_user("ana@acme.test").await;
    let admin = app.login("admin@acme.test").await;
    let post = reqwest::Method::POST;
    let (s, viewer) = call(
        &app,
        post.clone(),
        "/api/v1/rbac/roles",
        &admin,
        Some(json!({"name": "viewer", "permissions": ["reports:read", "transactions:read"]})),
    )
    .await;
    assert_eq!(s, 201, "{viewer}");
    let (s, _) = call(&app, post.clone(), "/api/v1/rbac/roles", &admin, Some(json!({"name": "operator", "permissions": ["transactions:create"], "inherits": ["viewer"]}))).await;
    assert_eq!(s, 201);
    let (s, body) = call(
        &app,
        post.clone(),
        "/api/v1/rbac/roles",
        &admin,
        Some(json!({"name": "bad", "permissions": ["Not A Permission"]})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );
    let (s, body) = call(
        &app,
        post.clone(),
        "/api/v1/rbac/roles",
        &admin,
        Some(json!({"name": "viewer", "permissions": ["x:y"]})),
    )
    .await;
    assert_eq!((s, body["error"]["code"].clone()), (409, json!("CONFLICT")));
    let (s, _) = call(
        &app,
        post.clone(),
        "/api/v1/rbac/assign",
        &admin,
        Some(json!({"user_id": user, "role": "operator"})),
    )
    .await;
    assert_eq!(s, 200);
    let token = app.login("ana@acme.test").await;
    let claims = jwt_claims(&token);
    assert_eq!(claims["roles"], json!(["operator", "viewer"]));
    assert_eq!(
        claims["permissions"],
        json!(["reports:read", "transactions:create", "transactions:read"])
    );
    let (s, roles) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/rbac/roles",
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "operator" && r["inherits"] == json!(["viewer"])));
    let (s, perms) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/rbac/permissions",
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(perms["data"]
        .as_array()
        .unwrap()
        .contains(&json!("transactions:create")));
}

#[tokio::test]
async fn missing_permissions_are_refused_with_required_and_held_permissions() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/roles",
        &admin,
        Some(json!({"name": "reader", "permissions": ["users:read"]})),
    )
    .await;
    app.create_user_with_roles("alice@acme.test", &["reader"])
        .await;
    let alice = app.login("alice@acme.test").await;
    let (s, body) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/roles",
        &alice,
        Some(json!({"name": "x", "permissions": ["a:b"]})),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(body["error"]["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(
        body["error"]["message"],
        "Missing required permission: roles:create"
    );
    assert_eq!(
        body["error"]["required_permissions"],
        json!(["roles:create"])
    );
    assert_eq!(body["error"]["held_permissions"], json!(["users:read"]));
}

#[tokio::test]
async fn nobody_grants_more_than_they_hold() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let post = reqwest::Method::POST;
    call(
        &app,
        post.clone(),
        "/api/v1/rbac/roles",
        &admin,
        Some(json!({"name": "assigner", "permissions": ["users:roles:assign", "apikeys:create"]})),
    )
    .await;
    let bob = app
        .create_user_with_roles("bob@acme.test", &["assigner"])
        .await;
    let token = app.login("bob@acme.test").await;
    let (s, body) = call(
        &app,
        post.clone(),
        "/api/v1/rbac/assign",
        &token,
        Some(json!({"user_id": bob, "role": "admin"})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (403, json!("INSUFFICIENT_PERMISSIONS"))
    );
    let (s, body) = call(
        &app,
        post,
        "/api/v1/apikeys",
        &token,
        Some(json!({"name": "k", "scopes": ["*"]})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (403, json!("INSUFFICIENT_PERMISSIONS"))
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_used_by_header_or_bearer_rotated_with_grace_and_revoked() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let post = reqwest::Method::POST;
    // Seed 004 shape.
    let (s, created) = call(
        &app,
        post.clone(),
        "/api/v1/apikeys",
        &admin,
        Some(json!({"name": "my-service", "scopes": ["roles:read"], "expires_in_days": 365})),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let d = &created["data"];
    let key = d["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("ak_"));
    assert!(key.starts_with(d["prefix"].as_str().unwrap()));
    assert_eq!(d["scopes"], json!(["roles:read"]));
    assert!(d["expires_at"].as_str().unwrap().ends_with('Z'));
    let (s, body) = call(
        &app,
        post.clone(),
        "/api/v1/apikeys",
        &admin,
        Some(json!({"name": "x", "scopes": ["roles:read"], "expires_in_days": 366})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );

    // The key works as x-api-key and as a Bearer token, within its scopes only.
    assert_eq!(
        call(&app, reqwest::Method::GET, "/api/v1/rbac/roles", &key, None)
            .await
            .0,
        200
    );
    let r = app
        .http
        .get(app.url("/api/v1/rbac/roles"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, body) = call(
        &app,
        post.clone(),
        "/api/v1/rbac/roles",
        &key,
        Some(json!({"name": "x", "permissions": ["a:b"]})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (403, json!("INSUFFICIENT_PERMISSIONS"))
    );

    // Verify (no authentication).
    let r = app
        .http
        .post(app.url("/api/v1/apikeys/verify"))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"]["valid"], true);
    assert_eq!(v["data"]["tenant_id"], app.tenant.id);
    let r = app
        .http
        .post(app.url("/api/v1/apikeys/verify"))
        .json(&json!({"key": "ak_forged"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["valid"], false);

    // Usage statistics.
    let (_, list) = call(&app, reqwest::Method::GET, "/api/v1/apikeys", &admin, None).await;
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == d["id"])
        .unwrap()
        .clone();
    assert!(listed.get("key").is_none(), "the secret is never listed");
    assert!(listed["use_count"].as_i64().unwrap() >= 3);
    assert!(listed["last_used_at"].is_string());

    // Rotation: the old secret keeps working during the grace period.
    let id = d["id"].as_str().unwrap();
    let (s, rotated) = call(
        &app,
        post.clone(),
        &format!("/api/v1/apikeys/{id}/rotate"),
        &admin,
        Some(json!({"grace_period_hours": 1})),
    )
    .await;
    assert_eq!(s, 200);
    let new_key = rotated["data"]["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(
        call(&app, reqwest::Method::GET, "/api/v1/rbac/roles", &key, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &app,
            reqwest::Method::GET,
            "/api/v1/rbac/roles",
            &new_key,
            None
        )
        .await
        .0,
        200
    );
    let (s, _) = call(
        &app,
        post.clone(),
        &format!("/api/v1/apikeys/{id}/rotate"),
        &admin,
        Some(json!({"grace_period_hours": 0})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        call(
            &app,
            reqwest::Method::GET,
            "/api/v1/rbac/roles",
            &new_key,
            None
        )
        .await
        .0,
        401,
        "no grace: the old secret stops at once"
    );

    // Revocation.
    let (s, revoked) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/apikeys/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(revoked["data"]["revoked_at"].is_string());
    let (s, body) = call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/apikeys/nope",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (404, json!("NOT_FOUND"))
    );
}

#[tokio::test]
async fn an_api_key_of_another_tenant_fails_like_garbage() {
    let app = spawn_app().await;
    let other = app.create_tenant("globex").await;
    let (_, key) = portcullis::api_keys::create(
        app.state.api_keys(),
        Some(&other),
        portcullis::api_keys::NewApiKey {
            name: "k",
            scopes: vec!["*".into()],
            expires_in_days: Some(30),
            created_by: None,
        },
    )
    .await
    .unwrap();
    let (s, body) = call(&app, reqwest::Method::GET, "/api/v1/rbac/roles", &key, None).await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (401, json!("UNAUTHORIZED"))
    );
    let (s, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/rbac/roles",
        "ak_garbage",
        None,
    )
    .await;
    assert_eq!(s, 401);
    let r = app
        .http
        .post(app.url("/api/v1/apikeys/verify"))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["valid"], false);
    // An admin of the other tenant gets nothing here either.
    let r = app
        .http
        .get(format!("{}/t/globex/api/v1/rbac/roles", app.address))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the key works at its own tenant");
}

#[tokio::test]
async fn a_documented_role_template_can_be_imported() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let (s, templates) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/rbac/templates",
        &admin,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(templates["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "financial-institution"));
    let (s, out) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/roles/import",
        &admin,
        Some(json!({"template": "financial-institution"})),
    )
    .await;
    assert_eq!(s, 200, "{out}");
    assert_eq!(
        out["data"]["created"],
        json!([
            "viewer",
            "auditor",
            "operator",
            "treasury",
            "securities",
            "forex"
        ])
    );
    let (_, again) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/roles/import",
        &admin,
        Some(json!({"template": "financial-institution"})),
    )
    .await;
    assert_eq!(
        again["data"]["created"],
        json!([]),
        "importing twice creates nothing"
    );
    let user = app.create_user("op@acme.test").await;
    call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/assign",
        &admin,
        Some(json!({"user_id": user, "role": "operator"})),
    )
    .await;
    let claims = jwt_claims(&app.login("op@acme.test").await);
    assert_eq!(claims["roles"], json!(["operator", "viewer"]));
    assert!(claims["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("transactions:read")));
    let (s, body) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/roles/import",
        &admin,
        Some(json!({"template": "nope"})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );
}

#[tokio::test]
async fn app_roles_apply_only_to_tokens_of_their_client() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let c = app.create_client(ClientOptions::default()).await;
    let user = app.create_user("ana@example.com").await;
    let (s, role) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/roles",
        &admin,
        Some(json!({"name": "editor", "permissions": ["docs:edit"], "client_id": c.id})),
    )
    .await;
    assert_eq!(s, 201, "{role}");
    assert_eq!(role["data"]["client_id"], c.id);
    let (s, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/assign",
        &admin,
        Some(json!({"user_id": user, "role": "editor", "client_id": c.id})),
    )
    .await;
    assert_eq!(s, 200);
    let tokens = app.tokens_for(&c, "ana@example.com").await;
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(at["roles"], json!(["editor"]));
    assert_eq!(at["permissions"], json!(["docs:edit"]));
    let first_party = jwt_claims(&app.login("ana@example.com").await);
    assert_eq!(
        first_party["roles"],
        json!([]),
        "not the client's token: no app role"
    );
    let (s, body) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/rbac/roles",
        &admin,
        Some(json!({"name": "x", "permissions": ["a:b"], "client_id": "no-such-client"})),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );
}
