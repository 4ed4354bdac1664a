use serde_json::Value;

use crate::helpers::*;

fn url_with(app: &TestApp, client: &TestClient, extra: &str) -> (String, String) {
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid%20email&nonce=n&code_challenge={challenge}&code_challenge_method=S256{extra}",
        app.url("/authorize"),
        client.id
    );
    (url, verifier)
}

async fn signed_in(app: &TestApp, client: &TestClient) -> reqwest::Client {
    let browser = app.new_browser();
    app.code_for(&browser, client, "ana@example.com", &[]).await;
    browser
}

#[tokio::test]
async fn prompt_login_shows_the_sign_in_form_despite_a_live_session() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = signed_in(&app, &c).await;
    let (url, _) = url_with(&app, &c, "&prompt=login");
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let login = r.headers()["location"].to_str().unwrap().to_string();
    assert!(login.contains("/login?request="));
    let html = browser
        .get(&login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"name="password""#));
    assert!(!html.contains("Continue as"));
}

#[tokio::test]
async fn prompt_consent_shows_the_consent_page_again() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = signed_in(&app, &c).await;
    let (url, _) = url_with(&app, &c, "&prompt=consent");
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("/consent?request="));
    // Without prompt=consent the remembered consent applies.
    let (url, _) = url_with(&app, &c, "");
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn consent_covers_only_the_scopes_granted() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let (url, _) = url_with(&app, &c, "");
    app.authorize_through_forms(&browser, &url, "ana@example.com")
        .await;
    let (url, _) = url_with(&app, &c, "&prompt=none").clone();
    let more = url.replace("scope=openid%20email", "scope=openid%20email%20profile");
    let r = browser.get(&more).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("consent_required"));
}

#[tokio::test]
async fn select_account_offers_to_continue_as_the_signed_in_user() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = signed_in(&app, &c).await;
    let (url, _) = url_with(&app, &c, "&prompt=select_account");
    let r = browser.get(&url).send().await.unwrap();
    let login = r.headers()["location"].to_str().unwrap().to_string();
    let html = browser
        .get(&login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Continue as ana@example.com"));
    // The first form is "continue".
    let first = html.split("<form ").nth(1).unwrap();
    let form = parse_form(&format!("<form {first}"));
    let mut fields = form.hidden.clone();
    fields.push(("action".into(), "continue".into()));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(param(&query_of(r.headers()["location"].to_str().unwrap()), "code").is_some());
}

#[tokio::test]
async fn login_hint_prefills_the_email() {
    let app = spawn_app().await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let (url, _) = url_with(&app, &c, "&login_hint=ana%40example.com");
    let r = browser.get(&url).send().await.unwrap();
    let html = browser
        .get(r.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"value="ana@example.com""#), "{html}");
}

#[tokio::test]
async fn an_id_token_hint_for_another_user_requires_signing_in_again() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    app.create_user("bob@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let bob = app.tokens_for(&c, "bob@example.com").await;
    let browser = signed_in(&app, &c).await;
    let (url, _) = url_with(
        &app,
        &c,
        &format!(
            "&prompt=none&id_token_hint={}",
            bob["id_token"].as_str().unwrap()
        ),
    );
    let r = browser.get(&url).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn the_claims_parameter_adds_requested_claims_to_the_id_token() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let claims =
        url::form_urlencoded::byte_serialize(br#"{"id_token":{"name":null}}"#).collect::<String>();
    let browser = app.new_browser();
    let (url, verifier) = url_with(&app, &c, &format!("&claims={claims}"));
    let q = app
        .authorize_through_forms(&browser, &url, "ana@example.com")
        .await;
    let code = param(&q, "code").unwrap();
    let body: Value = app
        .token(
            &c,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let id = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(
        id["name"], "Ana Souza",
        "requested by the claims parameter without the profile scope"
    );
    // Core §5.4: an access token was issued, so the scopes' claims are UserInfo's.
    assert!(id.get("email").is_none(), "{id}");
    let info = app.userinfo(body["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "ana@example.com");
    assert_eq!(id["nonce"], "n");
    let malformed = app.get(&url_with(&app, &c, "&claims=not-json").0).await;
    let q = query_of(malformed.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn the_authorization_endpoint_accepts_form_encoded_posts() {
    let app = spawn_app().await;
    let c = app.create_client(ClientOptions::default()).await;
    let (url, _) = url_with(&app, &c, "");
    let (endpoint, query) = url.split_once('?').unwrap();
    let r = app
        .http
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("/login?request="));
}

#[tokio::test]
async fn a_code_presented_by_another_client_is_refused_and_not_consumed() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let thief = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let (code, verifier) = app.code_for(&browser, &c, "ana@example.com", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let r = app.token(&thief, &form).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(app.token(&c, &form).await.status(), 200);
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_invalid_at_userinfo() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let tokens = app.tokens_for(&c, "ana@example.com").await;
    let at = tokens["access_token"].as_str().unwrap();
    let r = app
        .http
        .post(app.url("/userinfo"))
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "RFC 6750 §2.2 form body token");
    let mut parts: Vec<String> = at.split('.').map(str::to_string).collect();
    let mut claims = jwt_claims(at);
    claims["sub"] = Value::from("someone-else");
    parts[1] = portcullis::crypto::b64url(claims.to_string().as_bytes());
    for bad in [
        parts.join("."),
        "garbage".to_string(),
        tokens["id_token"].as_str().unwrap().to_string(),
    ] {
        let r = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert!(r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""));
    }
}
