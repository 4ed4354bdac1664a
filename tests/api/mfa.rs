//! TOTP MFA through the JSON API (seeds 000 and 002).

use serde_json::{json, Value};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::*;

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn code_for(secret_b32: &str) -> String {
    let bytes = Secret::Encoded(secret_b32.to_string()).to_bytes().unwrap();
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "test".into())
        .unwrap()
        .generate_current()
        .unwrap()
}

#[tokio::test]
async fn totp_enrolment_login_challenge_backup_codes_and_disable() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let token = app.login("ana@example.com").await;

    // Enrolment: secret in text and a server-rendered SVG QR code.
    let (s, setup) = post(&app, "/api/v1/mfa/setup", Some(&token), json!({})).await;
    assert_eq!(s, 200, "{setup}");
    let secret = setup["data"]["secret"].as_str().unwrap().to_string();
    assert!(setup["data"]["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    assert!(setup["data"]["qr_svg"].as_str().unwrap().contains("<svg"));
    let (s, body) = post(
        &app,
        "/api/v1/mfa/enable",
        Some(&token),
        json!({"code": "000000"}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (401, json!("MFA_INVALID_CODE"))
    );
    let code = code_for(&secret);
    let (s, enabled) = post(
        &app,
        "/api/v1/mfa/enable",
        Some(&token),
        json!({"code": code}),
    )
    .await;
    assert_eq!(s, 200, "{enabled}");
    let backup: Vec<String> = enabled["data"]["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(backup.len(), 10);
    // The same code never works twice.
    let (s, body) = post(
        &app,
        "/api/v1/mfa/verify",
        Some(&token),
        json!({"code": code}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (401, json!("MFA_INVALID_CODE"))
    );
    let r = app
        .http
        .get(app.url("/api/v1/mfa/backup-codes"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["remaining"], 10);

    // Login now answers MFA_REQUIRED with a challenge (seed 000 shape).
    let (s, body) = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(body["error"]["code"], "MFA_REQUIRED");
    assert_eq!(
        body["error"]["message"],
        "This operation requires MFA verification"
    );
    let challenge = body["error"]["mfa_challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("mfa_ch_"));
    let (s, body) = post(
        &app,
        "/api/v1/auth/mfa/verify",
        None,
        json!({"challenge_id": challenge, "code": "123456"}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (401, json!("MFA_INVALID_CODE"))
    );
    let (s, body) = post(
        &app,
        "/api/v1/auth/mfa/verify",
        None,
        json!({"challenge_id": challenge, "code": backup[0]}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["data"]["mfa_verified"], true);
    assert_eq!(body["data"]["mfa_expires_in"], 300);
    let claims = jwt_claims(body["data"]["token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(claims["mfa_verified"], true);
    // A used challenge and a used backup code do not work again.
    let (s, _) = post(
        &app,
        "/api/v1/auth/mfa/verify",
        None,
        json!({"challenge_id": challenge, "code": backup[1]}),
    )
    .await;
    assert_eq!(s, 401);
    let (_, body) = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    let challenge2 = body["error"]["mfa_challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = post(
        &app,
        "/api/v1/auth/mfa/verify",
        None,
        json!({"challenge_id": challenge2, "code": backup[0]}),
    )
    .await;
    assert_eq!(s, 401, "a backup code is single-use");

    // Disabling requires a code; afterwards the password alone signs in again.
    let (s, _) = post(
        &app,
        "/api/v1/mfa/disable",
        Some(&token),
        json!({"code": "999999"}),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = post(
        &app,
        "/api/v1/mfa/disable",
        Some(&token),
        json!({"code": backup[2]}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn the_sign_in_page_asks_for_the_authentication_code_and_the_id_token_says_so() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let enrollment = portcullis::mfa::setup(app.state.mfa(), &app.tenant, &user, "ana@example.com")
        .await
        .unwrap();
    portcullis::mfa::enable(
        app.state.mfa(),
        &app.tenant,
        &user,
        &code_for(&enrollment.secret),
    )
    .await
    .unwrap();
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        c.id
    );
    let r = submit_sign_in(&browser, &url, "ana@example.com", PASSWORD).await;
    assert_eq!(r.status(), 303);
    let mfa_url = r.headers()["location"].to_str().unwrap().to_string();
    assert!(mfa_url.contains("/mfa?request="), "{mfa_url}");
    let html = browser
        .get(&mfa_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<label for="code">Authentication code</label>"#));
    assert!(html.contains(">Verify</button>"));
    assert!(html.contains(r#"autocomplete="one-time-code""#));
    let form = parse_form(&html);
    let mut wrong = form.hidden.clone();
    wrong.push(("code".into(), "000000".into()));
    let r = browser
        .post(&form.action)
        .form(&wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("The code is not valid."));
    // The next time step's code (within the ±1 window; the current one was used to enable).
    let bytes = Secret::Encoded(enrollment.secret.clone())
        .to_bytes()
        .unwrap();
    let next = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into())
        .unwrap()
        .generate(portcullis::storage::now() as u64 + 30);
    let mut right = form.hidden.clone();
    right.push(("code".into(), next));
    let r = browser
        .post(&form.action)
        .form(&right)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let q = query_of(r.headers()["location"].to_str().unwrap());
    let code = param(&q, "code").unwrap();
    let tokens: Value = app
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
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp"]));
    assert_eq!(id["acr"], "2");
}

pub(crate) async fn enroll(app: &TestApp, user: &str) -> String {
    let e = portcullis::mfa::setup(app.state.mfa(), &app.tenant, user, "x@example.com")
        .await
        .unwrap();
    let bytes = Secret::Encoded(e.secret.clone()).to_bytes().unwrap();
    let code = TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into())
        .unwrap()
        .generate(portcullis::storage::now() as u64 - 30);
    portcullis::mfa::enable(app.state.mfa(), &app.tenant, user, &code)
        .await
        .unwrap();
    e.secret
}

pub(crate) fn code_at(secret: &str, offset: i64) -> String {
    let bytes = Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into())
        .unwrap()
        .generate((portcullis::storage::now() + offset) as u64)
}

#[tokio::test]
async fn acr_values_2_steps_up_a_password_only_session_with_the_second_factor() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    // A live session from before MFA was enabled: acr 1.
    let browser = app.new_browser();
    app.code_for(&browser, &c, "ana@example.com", &[]).await;
    let secret = enroll(&app, &user).await;
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let base = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&code_challenge={challenge}&code_challenge_method=S256&acr_values=2",
        app.url("/authorize"),
        c.id
    );
    let r = browser
        .get(format!("{base}&prompt=none"))
        .send()
        .await
        .unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("interaction_required"));
    let r = browser.get(&base).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let mfa_url = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        mfa_url.contains("/mfa?request="),
        "only the missing factor is asked: {mfa_url}"
    );
    let form = parse_form(
        &browser
            .get(&mfa_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let mut fields = form.hidden.clone();
    fields.push(("code".into(), code_at(&secret, 0)));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let code = param(&query_of(r.headers()["location"].to_str().unwrap()), "code").unwrap();
    let tokens: Value = app
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
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["acr"], "2");
    assert_eq!(id["amr"], json!(["pwd", "otp"]));
}

#[tokio::test]
async fn a_privileged_request_without_recent_mfa_answers_mfa_required_then_the_upgraded_token_passes(
) {
    let app = spawn_app().await;
    let admin_id = app
        .create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let target = app.create_user("ana@acme.test").await;
    // A token from before MFA was enabled (password only).
    let token = app.login("admin@acme.test").await;
    let secret = enroll(&app, &admin_id).await;
    let (s, body) = post(
        &app,
        "/api/v1/rbac/assign",
        Some(&token),
        json!({"user_id": target, "role": "admin"}),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(body["error"]["code"], "MFA_REQUIRED");
    let challenge = body["error"]["mfa_challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, verified) = post(
        &app,
        "/api/v1/auth/mfa/verify",
        Some(&token),
        json!({"challenge_id": challenge, "code": code_at(&secret, 0)}),
    )
    .await;
    assert_eq!(s, 200, "{verified}");
    assert_eq!(verified["data"]["mfa_verified"], true);
    let upgraded = verified["data"]["token"].as_str().unwrap();
    let (s, _) = post(
        &app,
        "/api/v1/rbac/assign",
        Some(upgraded),
        json!({"user_id": target, "role": "admin"}),
    )
    .await;
    assert_eq!(s, 200);
    // A non-privileged request never needed it.
    let r = app
        .http
        .get(app.url("/api/v1/rbac/roles"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_hash_with_older_parameters_is_upgraded_at_the_next_sign_in() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let old = portcullis::accounts::PasswordHasher::new(portcullis::config::Argon2Params {
        memory_kib: 512,
        iterations: 2,
        parallelism: 1,
    })
    .unwrap();
    let old_hash = old.hash(PASSWORD).await.unwrap();
    portcullis::storage::users::update_password_hash(
        &app.state.pool,
        &app.tenant.id,
        &user,
        &old_hash,
        0,
    )
    .await
    .unwrap();
    app.login("ana@example.com").await;
    let row = portcullis::storage::users::find_user(&app.state.pool, &app.tenant.id, &user)
        .await
        .unwrap()
        .unwrap();
    let stored = row.password_hash.unwrap();
    assert_ne!(stored, old_hash);
    assert!(
        stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{stored}"
    );
    app.login("ana@example.com").await;
}

#[tokio::test]
async fn wrong_codes_lock_the_account_even_for_someone_who_knows_the_password() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    enroll(&app, &user).await;
    let (_, body) = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    let challenge = body["error"]["mfa_challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 1..=4 {
        let (s, body) = post(
            &app,
            "/api/v1/auth/mfa/verify",
            None,
            json!({"challenge_id": challenge, "code": "000000"}),
        )
        .await;
        assert_eq!(
            (s, body["error"]["code"].clone()),
            (401, json!("MFA_INVALID_CODE")),
            "attempt {i}"
        );
    }
    let (s, body) = post(
        &app,
        "/api/v1/auth/mfa/verify",
        None,
        json!({"challenge_id": challenge, "code": "000000"}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (423, json!("ACCOUNT_LOCKED"))
    );
    let (s, _) = post(
        &app,
        "/api/v1/auth/login",
        None,
        json!({"email": "ana@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 423);
}

pub(crate) async fn set_policy(app: &TestApp, policy: portcullis::tenants::MfaPolicy) {
    let mut s = app.tenant.settings.clone();
    s.mfa_policy = policy;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &s)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
}

#[tokio::test]
async fn a_required_policy_enrols_the_user_during_sign_in_and_off_skips_the_factor() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    set_policy(&app, portcullis::tenants::MfaPolicy::Required).await;
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let verifier = portcullis::crypto::random_token(32);
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(verifier.as_bytes()));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        c.id
    );
    let r = submit_sign_in(&browser, &url, "ana@example.com", PASSWORD).await;
    let enroll_url = r.headers()["location"].to_str().unwrap().to_string();
    assert!(enroll_url.contains("/mfa/enroll?request="), "{enroll_url}");
    let html = browser
        .get(&enroll_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<svg"), "QR code rendered server-side as SVG");
    let secret = html
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_string();
    let form = parse_form(&html);
    let mut fields = form.hidden.clone();
    fields.push(("code".into(), code_for(&secret)));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert_eq!(
        html.matches("<li><code>").count(),
        10,
        "ten backup codes, shown once"
    );
    let cont = parse_form_get(&html);
    let r = browser.get(&cont).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let code = param(&query_of(r.headers()["location"].to_str().unwrap()), "code").unwrap();
    let tokens: Value = app
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
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );

    // Policy off: the enrolled user signs in with the password alone.
    set_policy(&app, portcullis::tenants::MfaPolicy::Off).await;
    let (code, _) = app
        .code_for(&app.new_browser(), &c, "ana@example.com", &[])
        .await;
    assert!(!code.is_empty());
}

/// The URL a GET form submits to (its action with its hidden fields as the query).
fn parse_form_get(html: &str) -> String {
    let start = html.find(r#"<form method="get" action=""#).unwrap()
        + r#"<form method="get" action=""#.len();
    let action = unescape(&html[start..start + html[start..].find('"').unwrap()]);
    let rest = &html[start..];
    let v = rest.split(r#"name="request" value=""#).nth(1).unwrap();
    let value = unescape(&v[..v.find('"').unwrap()]);
    format!("{action}?request={value}")
}

#[tokio::test]
async fn a_client_can_require_mfa_for_its_own_sign_ins() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    app.create_user("ana@example.com").await;
    let admin = app.login("admin@acme.test").await;
    let r = app
        .http
        .post(app.url("/api/v1/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Bank", "redirect_uris": [REDIRECT_URI], "skip_consent": true, "mfa_policy": "required"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["mfa_policy"], "required");
    let strict = TestClient {
        id: body["data"]["client_id"].as_str().unwrap().into(),
        secret: body["data"]["client_secret"].as_str().map(str::to_string),
    };
    let relaxed = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    // The relaxed client signs in with the password alone.
    app.code_for(&app.new_browser(), &relaxed, "ana@example.com", &[])
        .await;
    // The strict one sends the (not enrolled) user to enrolment.
    let browser = app.new_browser();
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        strict.id
    );
    let r = submit_sign_in(&browser, &url, "ana@example.com", PASSWORD).await;
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("/mfa/enroll?request="));
}

#[tokio::test]
async fn a_client_declared_privileged_scope_needs_the_second_factor() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    app.create_user("ana@example.com").await;
    let admin = app.login("admin@acme.test").await;
    let r = app
        .http
        .post(app.url("/api/v1/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Payments", "redirect_uris": [REDIRECT_URI], "skip_consent": true, "scopes": ["openid", "payments"], "privileged_scopes": ["payments"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let client = TestClient {
        id: body["data"]["client_id"].as_str().unwrap().into(),
        secret: body["data"]["client_secret"].as_str().map(str::to_string),
    };
    let browser = app.new_browser();
    // Without the privileged scope: the password is enough.
    let challenge0 = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url0 = format!("{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&code_challenge={challenge0}&code_challenge_method=S256", app.url("/authorize"), client.id);
    let q = app
        .authorize_through_forms(&browser, &url0, "ana@example.com")
        .await;
    assert!(param(&q, "code").is_some());
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid%20payments&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id
    );
    let r = browser.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let mfa_url = r.headers()["location"].to_str().unwrap().to_string();
    assert!(mfa_url.contains("/mfa?request="), "{mfa_url}");
    let r = browser.get(&mfa_url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("/mfa/enroll?request="),
        "not enrolled: enrolment first"
    );
    let r = app
        .http
        .post(app.url("/api/v1/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Bad", "redirect_uris": [REDIRECT_URI], "scopes": ["openid"], "privileged_scopes": ["payments"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
}

/// A user disabled after the password step cannot go on to enrol a second factor (and so
/// finish signing in): the enrolment page and its form refuse, as the code step does.
#[tokio::test]
async fn a_user_disabled_between_the_steps_cannot_enrol_a_second_factor() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    set_policy(&app, portcullis::tenants::MfaPolicy::Required).await;
    let c = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"verifier"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        c.id
    );
    let r = submit_sign_in(&browser, &url, "ana@example.com", PASSWORD).await;
    let enroll_url = r.headers()["location"].to_str().unwrap().to_string();
    assert!(enroll_url.contains("/mfa/enroll?request="), "{enroll_url}");
    let html = browser
        .get(&enroll_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = parse_form(&html);

    let sql = "UPDATE users SET disabled = TRUE WHERE email = 'ana@example.com'";
    portcullis::storage::dispatch!(&app.state.pool, p => {
        sqlx::query(sql).execute(p).await.unwrap();
    });

    let r = browser.get(&enroll_url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let mut fields = form.hidden.clone();
    fields.push(("code".into(), "000000".into()));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains(portcullis::i18n::Locale::En.texts().request_expired));
}
