//! Password policy and history, self-registration, e-mail verification and password reset.

use serde_json::{json, Value};

use crate::helpers::*;

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn login_with(app: &TestApp, email: &str, password: &str) -> Option<String> {
    let (s, body) = post(
        app,
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await;
    (s == 200).then(|| body["data"]["token"].as_str().unwrap().to_string())
}

fn token_in(mail: &str) -> String {
    let start = mail.find("token=").unwrap() + 6;
    mail[start..].split_whitespace().next().unwrap().to_string()
}

async fn outbox(app: &TestApp, to: &str) -> Vec<portcullis::storage::users::OutboxRow> {
    portcullis::storage::users::list_outbox(&app.state.pool, &app.tenant.id, to)
        .await
        .unwrap()
}

#[tokio::test]
async fn policy_failures_name_each_rule_and_the_last_five_passwords_cannot_be_reused() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let token = login_with(&app, "ana@example.com", PASSWORD).await.unwrap();
    let (s, body) = post(
        &app,
        "/api/v1/auth/change-password",
        Some(&token),
        json!({"current_password": PASSWORD, "new_password": "short"}),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(body["error"]["code"], "VALIDATION_FAILED");
    let rules: Vec<String> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        rules,
        [
            "at least 12 characters",
            "an upper-case letter",
            "a digit",
            "a symbol"
        ]
    );
    let (s, body) = post(
        &app,
        "/api/v1/auth/change-password",
        Some(&token),
        json!({"current_password": "Wrong-Password-1", "new_password": "Another-Pass-77"}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (401, json!("INVALID_CREDENTIALS"))
    );

    let passwords: Vec<String> = (1..=5).map(|i| format!("Rotated-Pass-{i}!")).collect();
    let mut current = PASSWORD.to_string();
    for next in &passwords[..4] {
        let token = login_with(&app, "ana@example.com", &current).await.unwrap();
        let (s, body) = post(
            &app,
            "/api/v1/auth/change-password",
            Some(&token),
            json!({"current_password": current, "new_password": next}),
        )
        .await;
        assert_eq!(s, 200, "{body}");
        // A password change signs the user out everywhere.
        let r = app
            .http
            .get(app.url("/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        current = next.clone();
    }
    // The original password is among the last five (current + four before): refused.
    let token = login_with(&app, "ana@example.com", &current).await.unwrap();
    let (s, body) = post(
        &app,
        "/api/v1/auth/change-password",
        Some(&token),
        json!({"current_password": current, "new_password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        body["error"]["message"],
        "the password was used recently; choose another"
    );
    let (s, _) = post(
        &app,
        "/api/v1/auth/change-password",
        Some(&token),
        json!({"current_password": current, "new_password": passwords[4]}),
    )
    .await;
    assert_eq!(s, 200);
    // Six changes later the original is out of the window.
    let token = login_with(&app, "ana@example.com", &passwords[4])
        .await
        .unwrap();
    let (s, body) = post(
        &app,
        "/api/v1/auth/change-password",
        Some(&token),
        json!({"current_password": passwords[4], "new_password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn self_registration_sends_a_single_use_verification_link() {
    let app = spawn_app().await;
    let (s, body) = post(
        &app,
        "/api/v1/auth/register",
        None,
        json!({"email": "new@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (404, json!("NOT_FOUND")),
        "off by default"
    );
    let mut settings = app.tenant.settings.clone();
    settings.self_registration = true;
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &settings)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
    let (s, _) = post(
        &app,
        "/api/v1/auth/register",
        None,
        json!({"email": "new@example.com", "password": PASSWORD, "name": "New"}),
    )
    .await;
    assert_eq!(s, 202);
    let mails = outbox(&app, "new@example.com").await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0]
        .body
        .contains(&format!("{}/verify-email?token=", app.issuer())));
    let token = token_in(&mails[0].body);
    let (s, _) = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({"token": token}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = post(
        &app,
        "/api/v1/auth/verify-email",
        None,
        json!({"token": token}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED")),
        "single use"
    );
    // Registering an existing address answers the same, and mails its owner instead.
    let (s, _) = post(
        &app,
        "/api/v1/auth/register",
        None,
        json!({"email": "new@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(s, 202);
    let mails = outbox(&app, "new@example.com").await;
    assert_eq!(mails.len(), 2);
    assert!(mails
        .iter()
        .any(|m| m.subject == "You already have an account"));
    let (s, body) = post(
        &app,
        "/api/v1/auth/register",
        None,
        json!({"email": "weak@example.com", "password": "weakpassword"}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );
}

#[tokio::test]
async fn password_reset_links_are_single_use_expire_and_never_reveal_an_address() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let (s, unknown) = post(
        &app,
        "/api/v1/auth/reset-password",
        None,
        json!({"email": "ghost@example.com"}),
    )
    .await;
    assert_eq!(s, 202);
    assert!(outbox(&app, "ghost@example.com").await.is_empty());
    let (s, known) = post(
        &app,
        "/api/v1/auth/reset-password",
        None,
        json!({"email": "ana@example.com"}),
    )
    .await;
    assert_eq!(s, 202);
    assert_eq!(
        unknown, known,
        "the same answer for known and unknown addresses"
    );
    let token = token_in(&outbox(&app, "ana@example.com").await[0].body);
    let (s, body) = post(
        &app,
        "/api/v1/auth/reset-password",
        None,
        json!({"token": token, "new_password": "weak"}),
    )
    .await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (422, json!("VALIDATION_FAILED"))
    );
    let (s, _) = post(
        &app,
        "/api/v1/auth/reset-password",
        None,
        json!({"token": token, "new_password": "Fresh-Password-9"}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(login_with(&app, "ana@example.com", "Fresh-Password-9")
        .await
        .is_some());
    assert!(login_with(&app, "ana@example.com", PASSWORD)
        .await
        .is_none());
    let (s, _) = post(
        &app,
        "/api/v1/auth/reset-password",
        None,
        json!({"token": token, "new_password": "Other-Password-9"}),
    )
    .await;
    assert_eq!(s, 422, "single use");
    // An expired link.
    let expired = "expired-token-value";
    let now = portcullis::storage::now();
    portcullis::storage::users::insert_email_token(
        &app.state.pool,
        &portcullis::crypto::token_digest(expired),
        &app.tenant.id,
        &user,
        "reset_password",
        now - 7200,
        now - 3600,
    )
    .await
    .unwrap();
    let (s, body) = post(
        &app,
        "/api/v1/auth/reset-password",
        None,
        json!({"token": expired, "new_password": "Other-Password-9"}),
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        body["error"]["message"],
        "the link is invalid, expired or already used"
    );
}

#[tokio::test]
async fn the_links_in_the_mails_open_working_pages() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    post(
        &app,
        "/api/v1/auth/reset-password",
        None,
        json!({"email": "ana@example.com"}),
    )
    .await;
    let mail = &outbox(&app, "ana@example.com").await[0].body;
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/reset-password?token="))
        .unwrap()
        .to_string();
    let browser = app.new_browser();
    let html = browser
        .get(&link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<label for="new_password">New password</label>"#));
    assert!(html.contains(r#"autocomplete="new-password""#));
    let form = parse_form(&html);
    let mut weak = form.hidden.clone();
    weak.push(("new_password".into(), "weak".into()));
    let r = browser.post(&form.action).form(&weak).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("password needs at least 12 characters"));
    let mut good = form.hidden.clone();
    good.push(("new_password".into(), "Brand-New-Pass-5".into()));
    let r = browser.post(&form.action).form(&good).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(login_with(&app, "ana@example.com", "Brand-New-Pass-5")
        .await
        .is_some());
    let r = browser
        .get(format!("{}/verify-email?token=nope", app.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("This link is invalid, has expired or was already used."));
}

async fn signed_in_account_browser(app: &TestApp, email: &str, password: &str) -> reqwest::Client {
    let browser = app.new_browser();
    let r = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let login = r.headers()["location"].to_str().unwrap().to_string();
    assert!(login.contains("/login?request="));
    let back = drive_forms(&browser, &login, email, password, &app.url("/account")).await;
    assert_eq!(back, app.url("/account"));
    browser
}

fn account_form(html: &str, action_suffix: &str) -> Form {
    let forms: Vec<&str> = html.split("<form ").skip(1).collect();
    let f = forms
        .iter()
        .find(|f| f.contains(&format!("{action_suffix}\"")))
        .unwrap();
    parse_form(&format!("<form {f}"))
}

#[tokio::test]
async fn the_account_page_changes_the_password_enrols_mfa_and_signs_sessions_out() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let browser = signed_in_account_browser(&app, "ana@example.com", PASSWORD).await;
    let html = browser
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Your account") && html.contains("ana@example.com"));
    assert!(html.contains("this device"));

    // Change password: the policy is told in words, then success.
    let form = account_form(&html, "/account/password");
    let mut weak = form.hidden.clone();
    weak.extend([
        ("current_password".to_string(), PASSWORD.to_string()),
        ("new_password".to_string(), "weakweakweak".to_string()),
    ]);
    let r = browser.post(&form.action).form(&weak).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("password needs an upper-case letter, a digit, a symbol"));
    let mut good = form.hidden.clone();
    good.extend([
        ("current_password".to_string(), PASSWORD.to_string()),
        ("new_password".to_string(), "Changed-Pass-88".to_string()),
    ]);
    let r = browser.post(&form.action).form(&good).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Your password was changed."));

    // A second device, signed out from the first.
    let other = signed_in_account_browser(&app, "ana@example.com", "Changed-Pass-88").await;
    let html = browser
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = html
        .split("<li>")
        .skip(1)
        .filter(|r| r.contains("/account/sessions/end\""))
        .collect();
    assert_eq!(rows.len(), 2, "both sessions are listed");
    let theirs = rows.iter().find(|r| !r.contains("this device")).unwrap();
    let form = parse_form(&format!("<form {}", theirs.split("<form ").nth(1).unwrap()));
    let r = browser
        .post(&form.action)
        .form(&form.hidden)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        other
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        303,
        "the other device is signed out"
    );
    assert_eq!(
        browser
            .get(app.url("/account"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "this one is not"
    );

    // MFA enrolment with a QR code, then backup codes.
    let html = browser
        .get(app.url("/account/mfa"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<svg"));
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
    let bytes = totp_rs::Secret::Encoded(secret).to_bytes().unwrap();
    let code = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, None, "t".into())
        .unwrap()
        .generate_current()
        .unwrap();
    fields.push(("code".into(), code));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().matches("<li><code>").count(), 10);
    let html = browser
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("unused backup codes: 10"));

    let html = browser
        .get(app.url("/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = account_form(&html, "/account/sessions/end-all");
    let r = browser
        .post(&form.action)
        .form(&form.hidden)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You have been signed out."));
    let r = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(
        r.status(),
        303,
        "signed out everywhere, this device included"
    );
}
