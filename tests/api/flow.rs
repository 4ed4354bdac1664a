use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::OAuth2TokenResponse;
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn code_flow_with_pkce_through_the_real_forms_gives_a_verified_id_token_and_userinfo() {
    let app = spawn_app().await;
    let user_id = app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let meta = CoreProviderMetadata::discover_async(IssuerUrl::new(app.issuer()).unwrap(), &http)
        .await
        .unwrap();
    let rp = CoreClient::from_provider_metadata(
        meta,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let browser = app.new_browser();
    let q = app
        .authorize_through_forms(&browser, url.as_str(), "ana@example.com")
        .await;
    assert_eq!(param(&q, "state").as_deref(), Some(csrf.secret().as_str()));
    assert_eq!(
        param(&q, "iss").as_deref(),
        Some(app.issuer().as_str()),
        "RFC 9207 iss"
    );
    let code = param(&q, "code").unwrap();
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("id token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), &nonce)
        .expect("ID token verifies against JWKS");
    assert_eq!(claims.subject().as_str(), user_id);
    // Core §5.4: an access token is issued, so the email scope's claims are UserInfo's.
    assert_eq!(claims.email(), None);
    assert!(claims.auth_time().is_some());
    let raw = jwt_claims(&id_token.to_string());
    assert_eq!(raw["amr"], serde_json::json!(["pwd"]));
    assert!(raw["sid"].is_string() && raw["at_hash"].is_string());
    let at = jwt_claims(tokens.access_token().secret());
    assert_eq!(at["tenant_id"], app.tenant.id);
    assert_eq!(at["client_id"], client.id);
    for c in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "scope",
        "roles",
        "permissions",
    ] {
        assert!(at.get(c).is_some(), "access token lacks {c}");
    }
    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().to_owned(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), user_id);
    assert_eq!(info.email().map(|e| e.as_str()), Some("ana@example.com"));

    // The browser session is reused: a second authorization needs no sign-in or consent.
    let (again, _, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(PkceCodeChallenge::new_random_sha256().0)
        .url();
    let r = browser.get(again.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(REDIRECT_URI));
}

#[tokio::test]
async fn token_responses_are_not_cacheable() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let (code, verifier) = app
        .code_for(&browser, &client, "ana@example.com", &[])
        .await;
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
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let first = app.tokens_for(&client, "ana@example.com").await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let r = app
        .token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    // Replay of the used token: invalid_grant, and the family (rt2 too) is revoked.
    let r = app
        .token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
        )
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
    let r = app
        .token(
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The access token issued with the family is revoked as well.
    let at2 = second["access_token"].as_str().unwrap();
    assert_eq!(
        app.introspect(&client, at2).await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn a_reuse_interval_lets_concurrent_refreshes_succeed() {
    let app = spawn_app().await;
    let mut settings = app.tenant.settings.clone();
    settings.refresh_token_reuse_interval = 30;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &settings)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
    app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let first = app.tokens_for(&client, "ana@example.com").await;
    let rt = first["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let r = app
            .token(
                &client,
                &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    // Truly at once: the request that loses the rotation is inside the interval too.
    let second = app.tokens_for(&client, "ana@example.com").await;
    let rt = second["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let (a, b) = tokio::join!(app.token(&client, &form), app.token(&client, &form));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let a: serde_json::Value = a.json().await.unwrap();
    let r = app
        .token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", a["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "the family is not revoked");
}

#[tokio::test]
async fn a_code_redeemed_twice_fails_and_revokes_what_the_first_redemption_issued() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let (code, verifier) = app
        .code_for(&browser, &client, "ana@example.com", &[])
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier.as_str()),
    ];
    let first: Value = app.token(&client, &form).await.json().await.unwrap();
    let r = app.token(&client, &form).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(
        app.introspect(&client, first["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    assert_eq!(
        app.introspect(&client, first["refresh_token"].as_str().unwrap())
            .await["active"],
        false
    );
}

/// Two redemptions of one code at the same moment (found by tests/crash: the replay looked
/// for the refresh token family before the first redemption had created it, so the
/// winner's refresh token kept working): whatever the interleaving, at most one gets
/// tokens, and no refresh token issued from the code stays usable.
#[tokio::test]
async fn a_code_redeemed_twice_at_once_leaves_no_usable_refresh_token() {
    // Many redemptions from one address: the limiter is not what is tested.
    let app = spawn_app_with(|c| c.rate_limit.enabled = false).await;
    app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    for round in 0..12 {
        let (code, verifier) = app
            .code_for(&browser, &client, "ana@example.com", &[])
            .await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ];
        let (a, b) = tokio::join!(app.token(&client, &form), app.token(&client, &form));
        let mut winners = Vec::new();
        for r in [a, b] {
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            match status {
                200 => winners.push(body),
                400 => assert_eq!(body["error"], "invalid_grant", "round {round}"),
                other => panic!("round {round}: {other} {body}"),
            }
        }
        assert!(winners.len() <= 1, "round {round}: redeemed twice");
        for w in winners {
            let r = app
                .token(
                    &client,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", w["refresh_token"].as_str().unwrap()),
                    ],
                )
                .await;
            assert_eq!(
                r.status(),
                400,
                "round {round}: the winner's refresh token works"
            );
            assert_eq!(
                app.introspect(&client, w["access_token"].as_str().unwrap())
                    .await["active"],
                false,
                "round {round}"
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_pkce_verifier_or_redirect_uri_is_invalid_grant() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let (code, _) = app
        .code_for(&browser, &client, "ana@example.com", &[])
        .await;
    let wrong = "x".repeat(43);
    let r = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &wrong),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
    assert_eq!(e["error_description"], "PKCE verification failed");
    let (code, verifier) = app
        .code_for(&browser, &client, "ana@example.com", &[])
        .await;
    let r = app
        .token(
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "redirect_uri does not match the authorization request"
    );
}

#[tokio::test]
async fn prompt_none_without_a_session_returns_login_required_to_the_client() {
    let app = spawn_app().await;
    let client = app.create_client(ClientOptions::default()).await;
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s1&prompt=none&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"), client.id, REDIRECT_URI
    );
    let r = app.get(&url).await;
    assert_eq!(r.status(), 302);
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&q, "state").as_deref(), Some("s1"));
    assert_eq!(param(&q, "iss").as_deref(), Some(app.issuer().as_str()));
}

#[tokio::test]
async fn prompt_none_with_a_session_and_consent_issues_a_code_silently() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let client = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    app.code_for(&browser, &client, "ana@example.com", &[])
        .await;
    let (code, _) = app
        .code_for(
            &browser,
            &client,
            "nobody@example.com",
            &[("prompt", "none")],
        )
        .await;
    assert!(!code.is_empty());
}

#[tokio::test]
async fn max_age_forces_a_fresh_sign_in_and_auth_time_reflects_it() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    app.code_for(&browser, &client, "ana@example.com", &[])
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // With max_age=1 the live session is too old: the sign-in form must appear again.
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&max_age=1&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"), client.id, REDIRECT_URI
    );
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("/login?request="));
    let started = portcullis::storage::now();
    let q = app
        .authorize_through_forms(&browser, &url, "ana@example.com")
        .await;
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
    let body: Value = r.json().await.unwrap();
    let id = jwt_claims(body["id_token"].as_str().unwrap());
    assert!(id["auth_time"].as_i64().unwrap() >= started);
}

#[tokio::test]
async fn form_post_response_mode_renders_an_auto_submitting_form_without_inline_script() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    app.code_for(&browser, &client, "ana@example.com", &[])
        .await;
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"verifier"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=xyz&response_mode=form_post&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"), client.id, REDIRECT_URI
    );
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("unsafe-inline"));
    let html = r.text().await.unwrap();
    let form = parse_form(&html);
    assert_eq!(form.action, REDIRECT_URI);
    assert!(form.hidden.iter().any(|(k, v)| k == "state" && v == "xyz"));
    assert!(form.hidden.iter().any(|(k, _)| k == "code"));
    assert!(!html.contains("<script>"), "no inline script");
}
