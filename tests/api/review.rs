//! Regressions for the findings of the security review of the core provider.

use serde_json::Value;

use crate::helpers::*;

async fn code_and_verifier(
    app: &TestApp,
    c: &TestClient,
    scope: &str,
) -> (reqwest::Client, String, String) {
    let browser = app.new_browser();
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope={scope}&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        c.id
    );
    let q = app
        .authorize_through_forms(&browser, &url, "ana@example.com")
        .await;
    (browser, param(&q, "code").unwrap(), verifier)
}

async fn redeem(app: &TestApp, c: &TestClient, code: &str, verifier: &str) -> reqwest::Response {
    app.token(
        c,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
        ],
    )
    .await
}

#[tokio::test]
async fn a_refresh_keeps_the_granted_scope_and_returns_a_new_id_token() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let first = app.tokens_for(&c, "ana@example.com").await;
    let rt = first["refresh_token"].as_str().unwrap();
    let r = app
        .token(
            &c,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", "openid email"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let narrowed: Value = r.json().await.unwrap();
    assert_eq!(narrowed["scope"], "openid email");
    assert!(narrowed["id_token"].is_string());
    // The new refresh token still carries the original grant (RFC 6749 §6).
    let r = app
        .token(
            &c,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", narrowed["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    let full: Value = r.json().await.unwrap();
    assert_eq!(full["scope"], "openid profile email offline_access");
    let r = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(full["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let intro = app
        .introspect(&c, full["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(intro["scope"], "openid profile email offline_access");
}

#[tokio::test]
async fn a_wrong_verifier_does_not_use_up_the_code() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let (_, code, verifier) = code_and_verifier(&app, &c, "openid").await;
    let r = redeem(&app, &c, &code, &"w".repeat(43)).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "PKCE verification failed"
    );
    assert_eq!(redeem(&app, &c, &code, &verifier).await.status(), 200);
}

#[tokio::test]
async fn signing_out_revokes_session_bound_refresh_tokens_and_pending_codes_but_not_offline_ones() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let (browser, code, verifier) = code_and_verifier(&app, &c, "openid").await;
    let online: Value = redeem(&app, &c, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let offline_code = {
        let v = portcullis::crypto::random_token(32);
        let ch = portcullis::crypto::b64url(&portcullis::crypto::sha256(v.as_bytes()));
        let url = format!(
            "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid%20offline_access&code_challenge={ch}&code_challenge_method=S256",
            app.url("/authorize"),
            c.id
        );
        let q = app
            .authorize_through_forms(&browser, &url, "ana@example.com")
            .await;
        (param(&q, "code").unwrap(), v)
    };
    let offline: Value = redeem(&app, &c, &offline_code.0, &offline_code.1)
        .await
        .json()
        .await
        .unwrap();
    let (pending_code, pending_verifier) = app.code_for(&browser, &c, "ana@example.com", &[]).await;
    let r = browser
        .get(format!(
            "{}?id_token_hint={}",
            app.url("/logout"),
            online["id_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refresh = |rt: &Value| {
        let rt = rt["refresh_token"].as_str().unwrap().to_string();
        let app = &app;
        let c = &c;
        async move {
            app.token(
                c,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(
        refresh(&online).await,
        400,
        "session-bound refresh token revoked at sign-out"
    );
    assert_eq!(
        app.introspect(&c, online["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    assert_eq!(
        refresh(&offline).await,
        200,
        "offline_access outlives the session"
    );
    let r = redeem(&app, &c, &pending_code, &pending_verifier).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "the sign-in session of this code has ended"
    );
}

#[tokio::test]
async fn a_relying_partys_access_token_is_not_a_credential_for_the_portcullis_api() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let tokens = app.tokens_for(&c, "ana@example.com").await;
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "UNAUTHORIZED"
    );
}

#[tokio::test]
async fn a_client_cannot_introspect_another_clients_tokens() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let other = app.create_client(ClientOptions::default()).await;
    let tokens = app.tokens_for(&c, "ana@example.com").await;
    for t in ["access_token", "refresh_token"] {
        let token = tokens[t].as_str().unwrap();
        assert_eq!(
            app.introspect(&other, token).await,
            serde_json::json!({"active": false}),
            "{t}"
        );
        assert_eq!(app.introspect(&c, token).await["active"], true, "{t}");
    }
}

#[tokio::test]
async fn claims_asked_for_one_by_one_need_consent_to_their_scope() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    app.code_for(&browser, &c, "ana@example.com", &[]).await;
    // Consent so far covers openid profile email offline_access; a fresh client asks only
    // for openid but requests the email claim by name: the consent page must list email.
    let c2 = app.create_client(ClientOptions::default()).await;
    let claims =
        url::form_urlencoded::byte_serialize(br#"{"userinfo":{"email":null}}"#).collect::<String>();
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&claims={claims}&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        c2.id
    );
    let r = browser.get(&url).send().await.unwrap();
    let consent = r.headers()["location"].to_str().unwrap().to_string();
    assert!(consent.contains("/consent?request="));
    let html = browser
        .get(&consent)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("See your email address"), "{html}");
}

#[tokio::test]
async fn the_userinfo_member_of_the_claims_parameter_is_honoured() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let claims =
        url::form_urlencoded::byte_serialize(br#"{"userinfo":{"name":null}}"#).collect::<String>();
    let (_, code, verifier) = code_and_verifier(&app, &c, &format!("openid&claims={claims}")).await;
    let tokens: Value = redeem(&app, &c, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let info: Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], "Ana Souza");
    assert!(info.get("email").is_none());
}

#[tokio::test]
async fn signing_in_again_as_the_same_user_keeps_the_session_id() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let (browser, code, verifier) = code_and_verifier(&app, &c, "openid").await;
    let first: Value = redeem(&app, &c, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let (code2, verifier2) = app
        .code_for(&browser, &c, "ana@example.com", &[("prompt", "login")])
        .await;
    let second: Value = redeem(&app, &c, &code2, &verifier2)
        .await
        .json()
        .await
        .unwrap();
    let sid = |t: &Value| jwt_claims(t["id_token"].as_str().unwrap())["sid"].clone();
    assert_eq!(sid(&first), sid(&second));
    assert_eq!(
        app.introspect(&c, first["access_token"].as_str().unwrap())
            .await["active"],
        true,
        "nobody was logged out"
    );
}

#[tokio::test]
async fn a_logout_token_is_not_accepted_as_an_id_token_hint() {
    let app = spawn_app().await;
    let c = app.create_client(ClientOptions::default()).await;
    let provider = app
        .state
        .providers
        .get(&app.state.pool, "acme")
        .await
        .unwrap()
        .unwrap();
    let forged = provider
        .keys
        .sign(portcullis::keys::Alg::Rs256, "logout+jwt", &serde_json::json!({"iss": app.issuer(), "aud": c.id, "sub": "u", "sid": "s", "events": {}}))
        .unwrap();
    let r = app
        .get(&format!("{}?id_token_hint={forged}", app.url("/logout")))
        .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_rfc8414_metadata_location_puts_the_well_known_segment_first() {
    let app = spawn_app().await;
    let d: Value = app
        .get(&format!(
            "{}/.well-known/oauth-authorization-server/t/acme",
            app.address
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], app.issuer());
}

#[tokio::test]
async fn the_profile_scope_releases_the_standard_claims_the_admin_api_sets() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let admin = {
        app.create_user_with_roles("root@admin.test", &["admin"])
            .await;
        app.login("root@admin.test").await
    };
    let patch = |body: serde_json::Value| {
        let app = &app;
        let admin = &admin;
        let user = &user;
        async move {
            app.http
                .patch(app.url(&format!("/api/v1/admin/users/{user}")))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // Bad values are refused with the reason, and change nothing.
    for (body, needle) in [
        (
            serde_json::json!({"picture": "http://pictures.example/a.png"}),
            "picture must be an https URL",
        ),
        (
            serde_json::json!({"locale": "pt_BR!"}),
            "locale must be a BCP 47",
        ),
        (
            serde_json::json!({"zoneinfo": "../etc"}),
            "zoneinfo must be an IANA",
        ),
        (serde_json::json!({"nickname": "x"}), "unknown field"),
    ] {
        let r = patch(body).await;
        assert_eq!(r.status(), 422);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "VALIDATION_FAILED");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{e}"
        );
    }
    let r = patch(serde_json::json!({
        "name": "Ana Souza", "given_name": "Ana", "family_name": "Souza",
        "preferred_username": "ana", "picture": "https://pictures.example/ana.png",
        "locale": "pt-BR", "zoneinfo": "America/Sao_Paulo"
    }))
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["profile"]["zoneinfo"], "America/Sao_Paulo");
    let unknown = app
        .http
        .patch(app.url("/api/v1/admin/users/nobody"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    // `profile` releases them at userinfo; the ID token (an access token is issued) holds
    // only what the claims parameter asks of it.
    let (_, code, verifier) = code_and_verifier(&app, &c, "openid%20profile").await;
    let tokens: Value = redeem(&app, &c, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert!(
        id.get("given_name").is_none() && id.get("name").is_none(),
        "{id}"
    );
    let info = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    for (claim, want) in [
        ("name", "Ana Souza"),
        ("given_name", "Ana"),
        ("family_name", "Souza"),
        ("preferred_username", "ana"),
        ("picture", "https://pictures.example/ana.png"),
        ("locale", "pt-BR"),
        ("zoneinfo", "America/Sao_Paulo"),
    ] {
        assert_eq!(info[claim], want, "{claim}");
    }
    assert!(info["updated_at"].as_i64().is_some());
    assert!(info.get("email").is_none(), "no email scope");

    // Essential claims asked for at userinfo are released without their scope.
    let claims = url::form_urlencoded::byte_serialize(
        br#"{"userinfo":{"email":{"essential":true},"zoneinfo":{"essential":true}},"id_token":{"picture":{"essential":true}}}"#,
    )
    .collect::<String>();
    let (_, code, verifier) = code_and_verifier(&app, &c, &format!("openid&claims={claims}")).await;
    let tokens: Value = redeem(&app, &c, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["picture"], "https://pictures.example/ana.png");
    let info = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "ana@example.com");
    assert_eq!(info["zoneinfo"], "America/Sao_Paulo");
    assert!(info.get("given_name").is_none(), "not asked for: {info}");

    // Discovery lists them.
    let d: Value = app
        .get(&app.url("/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    for claim in ["preferred_username", "picture", "zoneinfo"] {
        assert!(d["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(claim)));
    }
}
