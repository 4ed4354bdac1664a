//! The seed documents' curl examples against the real server, adapted only in base URL and
//! credentials.

use serde_json::{json, Value};

use crate::helpers::*;

async fn post_json(app: &TestApp, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn seed_000_login_refresh_revoke_and_error_shapes() {
    let app = spawn_app().await;
    app.create_user("operator@institution.com.br").await;
    // Login with "username".
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"username": "operator@institution.com.br", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"];
    assert!(d["token"].is_string() && d["refresh_token"].is_string());
    assert_eq!(d["expires_in"], 3600);
    assert_eq!(d["token_type"], "Bearer");
    let claims = jwt_claims(d["token"].as_str().unwrap());
    assert_eq!(claims["tenant_id"], app.tenant.id);
    assert!(claims["roles"].is_array() && claims["permissions"].is_array());

    // Wrong password: the documented 401 shape.
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"username": "operator@institution.com.br", "password": "nope"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "INVALID_CREDENTIALS");
    assert_eq!(body["error"]["message"], "Invalid username or password");
    assert!(body["error"]["correlation_id"].is_string());
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"username": "ghost@institution.com.br", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("INVALID_CREDENTIALS"))
    );

    // Refresh rotates; the old refresh token presented again is REFRESH_TOKEN_REUSE.
    let rt1 = d["refresh_token"].as_str().unwrap().to_string();
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": rt1}),
    )
    .await;
    assert_eq!(status, 200);
    let rt2 = body["data"]["refresh_token"].as_str().unwrap().to_string();
    let at2 = body["data"]["token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": rt1}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "REFRESH_TOKEN_REUSE");
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": rt2}),
    )
    .await;
    assert_eq!(status, 401, "the whole family is revoked: {body}");
    // The access token of the revoked family is refused everywhere with TOKEN_REVOKED.
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&at2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "TOKEN_REVOKED"
    );

    // Revoke an access token explicitly.
    let (_, body) = post_json(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"username": "operator@institution.com.br", "password": PASSWORD}),
    )
    .await;
    let at = body["data"]["token"].as_str().unwrap().to_string();
    let (status, _) = post_json(&app, "/api/v1/auth/revoke", Some(&at), json!({"token": at})).await;
    assert_eq!(status, 200);
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&at)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "TOKEN_REVOKED"
    );
}

#[tokio::test]
async fn seed_001_login_with_email_and_me() {
    let app = spawn_app().await;
    let id = app.create_user("user@firm.com").await;
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "user@firm.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    let at = body["data"]["token"].as_str().unwrap();
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["data"]["id"], id);
    assert_eq!(me["data"]["email"], "user@firm.com");
    assert_eq!(me["data"]["tenant_id"], app.tenant.id);
}

#[tokio::test]
async fn seed_004_logout_revokes_every_refresh_token_of_the_user() {
    let app = spawn_app().await;
    app.create_user("dev@example.com").await;
    let login = || {
        post_json(
            &app,
            "/api/v1/auth/login",
            None,
            json!({"email": "dev@example.com", "password": PASSWORD}),
        )
    };
    let (_, a) = login().await;
    let (_, b) = login().await;
    let at = a["data"]["token"].as_str().unwrap();
    let (status, _) = post_json(&app, "/api/v1/auth/logout", Some(at), json!({})).await;
    assert_eq!(status, 200);
    for rt in [&a, &b].map(|x| x["data"]["refresh_token"].as_str().unwrap().to_string()) {
        let (status, _) = post_json(
            &app,
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": rt}),
        )
        .await;
        assert_eq!(status, 401);
    }
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(b["data"]["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "TOKEN_REVOKED"
    );
}

#[tokio::test]
async fn the_json_api_validates_its_input() {
    let app = spawn_app().await;
    let (status, body) =
        post_json(&app, "/api/v1/auth/login", None, json!({"username": "x"})).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );
    let r = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "VALIDATION_FAILED");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON body"));

    // A body that does not say it is JSON is a client bug, named as such — never
    // INVALID_CREDENTIALS, even with a real user's right password in it.
    app.create_user("ctype@example.com").await;
    let good =
        json!({"email": "ctype@example.com", "password": crate::helpers::PASSWORD}).to_string();
    for (ctype, body, needle) in [
        (
            Some("text/plain"),
            good.clone(),
            r#"Content-Type must be application/json, not "text/plain""#,
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "email=ctype%40example.com&password=x".to_string(),
            r#"not "application/x-www-form-urlencoded""#,
        ),
        (None, good.clone(), "no Content-Type"),
        (
            Some("text/plain"),
            "not json at all".to_string(),
            "Content-Type must be application/json",
        ),
    ] {
        let mut req = app.http.post(app.url("/api/v1/auth/login")).body(body);
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 422, "{ctype:?}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "VALIDATION_FAILED", "{ctype:?}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{ctype:?}: {e}"
        );
    }
    // JSON with parameters and +json types are JSON.
    for ctype in [
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let r = app
            .http
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", ctype)
            .body(good.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ctype}");
    }
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "UNAUTHORIZED"
    );
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "UNAUTHORIZED"
    );
}

#[tokio::test]
async fn the_default_tenant_answers_the_json_api_at_the_root_as_in_the_seeds() {
    let app = spawn_app_with(|c| c.default_tenant = Some("acme".into())).await;
    app.create_user("operator@institution.com.br").await;
    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({"username": "operator@institution.com.br", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_expired_access_token_is_token_expired() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let provider = app
        .state
        .providers
        .get(&app.state.pool, "acme")
        .await
        .unwrap()
        .unwrap();
    let now = portcullis::storage::now();
    let expired = provider
        .keys
        .sign(
            portcullis::keys::Alg::Rs256,
            "at+jwt",
            &json!({"iss": app.issuer(), "sub": user, "client_id": portcullis::clients::first_party_client_id(&app.tenant), "jti": "j1", "iat": now - 100, "exp": now - 10}),
        )
        .unwrap();
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "TOKEN_EXPIRED"
    );
}

#[tokio::test]
async fn custom_claims_come_from_tenant_settings_and_user_attributes() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let r = app
        .http
        .patch(app.url("/api/v1/admin/settings"))
        .bearer_auth(&admin)
        .json(&json!({"custom_claims": {"ispb": "12345678", "department": "user.department"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .post(app.url("/api/v1/admin/users"))
        .bearer_auth(&admin)
        .json(&json!({"email": "op@acme.test", "password": PASSWORD, "attributes": {"department": "treasury"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let claims = jwt_claims(&app.login("op@acme.test").await);
    assert_eq!(claims["ispb"], "12345678");
    assert_eq!(claims["department"], "treasury");
    assert_eq!(claims["tenant_id"], app.tenant.id);
}
