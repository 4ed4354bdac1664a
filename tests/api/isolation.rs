//! Two tenants; every credential of one is tried at the other. Nothing succeeds and nothing
//! leaks, even for an admin of the other tenant.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn credentials_of_one_tenant_get_nothing_from_another() {
    let app = spawn_app().await; // tenant "acme"
    let globex = app.create_tenant("globex").await;
    let g = |path: &str| format!("{}/t/globex{path}", app.address);

    // Globex: an admin, an API key, a client with a code, tokens and a browser session.
    portcullis::accounts::create_user(
        &app.state.pool,
        &app.state.hasher,
        &globex,
        portcullis::accounts::NewUser {
            email: portcullis::accounts::Email::parse("boss@globex.test").unwrap(),
            password: Some(portcullis::accounts::Password::parse(PASSWORD).unwrap()),
            profile: Default::default(),
            email_verified: true,
            roles: vec!["admin".into()],
            attributes: Default::default(),
        },
    )
    .await
    .unwrap();
    let login: Value = app
        .http
        .post(g("/api/v1/auth/login"))
        .json(&json!({"email": "boss@globex.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g_admin = login["data"]["token"].as_str().unwrap().to_string();
    let g_refresh = login["data"]["refresh_token"].as_str().unwrap().to_string();
    let (_, g_key) = portcullis::api_keys::create(
        app.state.api_keys(),
        Some(&globex),
        portcullis::api_keys::NewApiKey {
            name: "k",
            scopes: vec!["*".into()],
            expires_in_days: Some(30),
            created_by: None,
        },
    )
    .await
    .unwrap();
    let g_client = app
        .create_client_in(&globex, ClientOptions::default())
        .await;
    let g_user = app.create_user_in(&globex, "ana@globex.test").await;
    // A code and a session at globex, in a browser of its own.
    let browser = app.new_browser();
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid%20offline_access&code_challenge={challenge}&code_challenge_method=S256",
        g("/authorize"),
        g_client.id
    );
    let q = query_of(&drive_forms(&browser, &url, "ana@globex.test", PASSWORD, REDIRECT_URI).await);
    let g_code = param(&q, "code").unwrap();

    // Acme: an admin and a client.
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let a_admin = app.login("admin@acme.test").await;
    let a_client = app.create_client(ClientOptions::default()).await;

    // Admin endpoints with globex's admin token and API key.
    for cred in [&g_admin, &g_key] {
        for path in [
            "/api/v1/admin/users",
            "/api/v1/admin/clients",
            "/api/v1/admin/audit",
            "/api/v1/rbac/roles",
            "/api/v1/auth/me",
            "/api/v1/apikeys",
        ] {
            let req = app.http.get(app.url(path));
            let req = if cred.starts_with("ak_") {
                req.header("x-api-key", cred.as_str())
            } else {
                req.bearer_auth(cred)
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{path}");
            let body: Value = r.json().await.unwrap();
            assert!(
                matches!(body["error"]["code"].as_str(), Some("UNAUTHORIZED")),
                "{path}: {body}"
            );
        }
    }
    let r = app
        .http
        .post(app.url("/api/v1/apikeys/verify"))
        .json(&json!({"key": g_key}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"],
        json!({"valid": false})
    );

    // Globex's refresh token and code at acme.
    let r = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": g_refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .token(
            &a_client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &g_refresh),
            ],
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = app
        .token(
            &a_client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &g_code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Globex's client at acme.
    let r = app
        .token(
            &g_client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &g_code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    // Globex's access token at acme's userinfo and introspection.
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(&g_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        app.introspect(&a_client, &g_admin).await,
        json!({"active": false})
    );
    assert_eq!(
        app.introspect(&a_client, &g_refresh).await,
        json!({"active": false})
    );

    // The browser signed in at globex is not signed in at acme, even with the cookie renamed.
    let challenge_a = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let acme_authorize = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&prompt=none&code_challenge={challenge_a}&code_challenge_method=S256",
        app.url("/authorize"),
        a_client.id
    );
    let r = browser.get(&acme_authorize).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("login_required"));

    // An acme admin cannot see globex's users or clients by id.
    let r = app
        .http
        .get(app.url(&format!("/api/v1/admin/users/{g_user}")))
        .bearer_auth(&a_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .http
        .get(app.url(&format!("/api/v1/admin/clients/{}", g_client.id)))
        .bearer_auth(&a_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .http
        .post(app.url("/api/v1/rbac/assign"))
        .bearer_auth(&a_admin)
        .json(&json!({"user_id": g_user, "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // Nothing of globex appears in acme's lists or audit log.
    for path in [
        "/api/v1/admin/users",
        "/api/v1/admin/clients",
        "/api/v1/admin/audit?limit=500",
        "/api/v1/apikeys",
    ] {
        let body = app
            .http
            .get(app.url(path))
            .bearer_auth(&a_admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !body.contains("globex") && !body.contains(&globex.id) && !body.contains(&g_user),
            "{path} leaks globex"
        );
    }
}
