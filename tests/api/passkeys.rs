//! Passkeys (WebAuthn): the real ceremonies in Chromium with its virtual authenticator
//! (tests/peers/spa/passkey.mjs) — registration on the account page, sign-in at the
//! authorization endpoint by autofill (conditional mediation) and by "Sign in with a
//! passkey", the first-party API, a cloned authenticator refused and audited, a passkey
//! enrolled and given as the second factor after a password — and the refusals a client can
//! provoke without an authenticator.

use std::process::Command;

use serde_json::{json, Value};

use crate::federation::{admin_token, audit_events};
use crate::helpers::{
    jwt_claims, parse_form, parse_passkey_form, run_peer, spawn_app, spawn_app_with,
    submit_sign_in, ClientOptions, TestApp, TestClient, PASSWORD, REDIRECT_URI,
};
use portcullis::tenants::MfaPolicy;

const EMAIL: &str = "ana@example.com";
const EMAIL2: &str = "bruno@example.com";

/// A server whose public URL is `http://localhost:PORT`: WebAuthn's RP id is a host name.
async fn localhost_app() -> TestApp {
    spawn_app_with(|c| c.public_url = c.public_url.replace("127.0.0.1", "localhost")).await
}

fn localhost(app: &TestApp, path: &str) -> String {
    app.url(path).replace("127.0.0.1", "localhost")
}

/// The ID token of a code the browser script reported.
async fn id_token_of(app: &TestApp, client: &TestClient, result: &Value, code: &str) -> Value {
    let r = app
        .token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", result["codes"][code].as_str().unwrap()),
                ("redirect_uri", result["callback"].as_str().unwrap()),
                ("code_verifier", result["verifier"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status(), 200, "{code}");
    let tokens: Value = r.json().await.unwrap();
    jwt_claims(tokens["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn passkeys_in_chromium_sign_in_by_autofill_button_and_api_serve_as_second_factor_and_a_clone_is_refused(
) {
    let app = localhost_app().await;
    // Served by the script. (Not helpers::REDIRECT_URI: Chromium refuses port 9.)
    let callback = format!("http://127.0.0.1:{}/callback", crate::helpers::free_port());
    let callback = callback.as_str();
    let user = app.create_user(EMAIL).await;
    let second = app.create_user(EMAIL2).await;
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            redirect_uri: Some(callback.into()),
            ..ClientOptions::default()
        })
        .await;
    let strict = app
        .create_client(ClientOptions {
            skip_consent: true,
            redirect_uri: Some(callback.into()),
            mfa_policy: Some(MfaPolicy::Required),
            ..ClientOptions::default()
        })
        .await;
    let mut cmd = Command::new("node");
    cmd.arg("tests/peers/spa/passkey.mjs")
        .env("ISSUER", localhost(&app, ""))
        .env("CLIENT_ID", &client.id)
        .env("MFA_CLIENT_ID", &strict.id)
        .env("REDIRECT_URI", callback)
        .env("EMAIL", EMAIL)
        .env("EMAIL2", EMAIL2)
        .env("PASSWORD", PASSWORD);
    let mut result: Value = run_peer(
        cmd,
        "`bash .ci/dev deps` installs playwright-core and chromium",
    )
    .await;
    result["callback"] = json!(callback);
    assert!(
        result["listed"].as_str().unwrap().contains("Laptop"),
        "{result}"
    );
    assert_eq!(result["errors"], json!([]), "no script error on the pages");

    // Passkey sign-ins, by autofill (conditional mediation) and by the button: amr hwk +
    // user, the phishing-resistant acr.
    for how in ["autofill", "button"] {
        let id = id_token_of(&app, &client, &result, how).await;
        assert_eq!(id["sub"], user.as_str(), "{how}");
        assert_eq!(id["amr"], json!(["hwk", "user"]), "{how}");
        assert_eq!(id["acr"], "phr", "{how}");
        assert_eq!(id["nonce"], "pk-nonce", "{how}");
    }
    // The button while the autofill request waited: it gave way to the browser's prompt
    // (a second ceremony, no error shown, still on the sign-in page waiting for the user).
    assert_eq!(result["abort"]["ceremonies"], 2, "{result}");
    assert_eq!(result["abort"]["status"], "", "{result}");
    assert!(result["abort"]["url"]
        .as_str()
        .unwrap()
        .contains("/login?request="));

    // The JSON API's token, signed in the same way.
    let api = jwt_claims(result["api_token"].as_str().unwrap());
    assert_eq!(api["sub"], user.as_str());
    assert_eq!(api["amr"], json!(["hwk", "user"]));
    assert_eq!(api["acr"], "phr");
    assert_eq!(api["mfa_verified"], true);

    // The clone: refused like any failed sign-in, and audited as what it is.
    assert_eq!(result["cloned_status"], 401, "{result}");
    assert_eq!(
        result["cloned_body"]["error"]["code"],
        "INVALID_CREDENTIALS"
    );
    let token = admin_token(&app).await;
    let cloned = audit_events(&app, &token, "passkey.cloned").await;
    assert_eq!(cloned.len(), 1, "{cloned:?}");
    assert_eq!(cloned[0]["actor"], user.as_str());

    // A passkey as the second factor: enrolled instead of TOTP when the client required one,
    // then given after the password on the second-factor page (which shows no code form:
    // this user has no TOTP).
    for how in ["enrol", "mfa"] {
        let id = id_token_of(&app, &strict, &result, how).await;
        assert_eq!(id["sub"], second.as_str(), "{how}");
        assert_eq!(id["amr"], json!(["pwd", "hwk", "user"]), "{how}");
        assert_eq!(id["acr"], "phr", "{how}");
    }
    assert_eq!(result["code_form"], 0);
    let registered = audit_events(&app, &token, "passkey.registered").await;
    assert_eq!(registered.len(), 2, "{registered:?}");

    // The stored credential: counter and flags of its last good use.
    let (counter, eligible, last_used): (i64, bool, Option<i64>) =
        portcullis::storage::dispatch!(&app.state.pool, p => sqlx::query_as(
            "SELECT counter, backup_eligible, last_used_at FROM passkeys WHERE user_id = $1",
        )
        .bind(&user)
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(counter, result["sign_count"].as_i64().unwrap());
    assert!(!eligible, "a device-bound key: hwk");
    assert!(last_used.is_some());
}

#[tokio::test]
async fn passkey_options_name_this_relying_party_and_require_user_verification() {
    let app = localhost_app().await;
    let r = app
        .http
        .post(app.url("/api/v1/auth/passkey/options"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    let o = &body["data"];
    assert!(o["ceremony"].as_str().unwrap().len() >= 32);
    assert_eq!(o["publicKey"]["rpId"], "localhost");
    assert_eq!(o["publicKey"]["userVerification"], "required");
    assert_eq!(o["publicKey"]["allowCredentials"], json!([]));
    assert!(o["publicKey"]["challenge"].as_str().unwrap().len() >= 43);
    let doc: Value = app
        .get(&app.url("/.well-known/openid-configuration"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["acr_values_supported"], json!(["1", "2", "phr"]));
    // A public URL with an IP address has no relying party id: passkeys are off, and say why.
    let app = spawn_app().await;
    let r = app
        .http
        .post(app.url("/api/v1/auth/passkey/options"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "passkeys need a host name in public_url (a WebAuthn relying party id is not an IP address)"
    );
}

async fn verify(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/api/v1/auth/passkey/verify"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_passkey_answer_that_cannot_verify_is_refused_with_its_reason() {
    let app = localhost_app().await;
    let (status, body) = verify(&app, json!({"ceremony": "x"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["message"],
        "ceremony and credential are required"
    );
    let (status, body) = verify(&app, json!({"ceremony": "unknown", "credential": {}})).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["message"],
        "the passkey ceremony is unknown, expired or already used"
    );
    let options: Value = app
        .http
        .post(app.url("/api/v1/auth/passkey/options"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ceremony = options["data"]["ceremony"].as_str().unwrap().to_string();
    let (status, body) = verify(
        &app,
        json!({"ceremony": ceremony, "credential": {"id": "nope"}}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["message"],
        "the passkey response is not a WebAuthn credential"
    );
    // The ceremony was used up by that attempt.
    let (status, body) = verify(&app, json!({"ceremony": ceremony, "credential": {}})).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["error"]["message"],
        "the passkey ceremony is unknown, expired or already used"
    );
    // A well-formed answer of a credential nobody registered: the same refusal as a wrong
    // password.
    let options: Value = app
        .http
        .post(app.url("/api/v1/auth/passkey/options"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_data = portcullis::crypto::b64url(
        json!({"type": "webauthn.get", "challenge": options["data"]["publicKey"]["challenge"],
            "origin": app.address})
        .to_string()
        .as_bytes(),
    );
    let credential = json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"authenticatorData": portcullis::crypto::b64url(&[0u8; 37]),
            "clientDataJSON": client_data, "signature": "AAAA",
            "userHandle": portcullis::crypto::b64url(uuid::Uuid::new_v4().as_bytes())},
        "clientExtensionResults": {}
    });
    let (status, body) = verify(
        &app,
        json!({"ceremony": options["data"]["ceremony"], "credential": credential}),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn the_pages_offer_passkeys_only_through_their_static_script() {
    let app = localhost_app().await;
    app.create_user(EMAIL).await;
    let browser = app.new_browser();
    let r = browser.get(app.url("/account")).send().await.unwrap();
    let login = r.headers()["location"].to_str().unwrap().to_string();
    let r = browser
        .get(if login.starts_with('/') {
            format!("{}{login}", app.address)
        } else {
            login
        })
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    let html = r.text().await.unwrap();
    assert!(html.contains("Sign in with a passkey"));
    assert!(html.contains(r#"<script src="/static/passkey.js" defer></script>"#));
    assert!(
        html.contains(r#"data-passkey="sign-in""#) && html.contains(" hidden>"),
        "hidden without the script, so the password form is all a page without JavaScript shows"
    );
    let js = app.get(&format!("{}/static/passkey.js", app.address)).await;
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript");
    // The options of a sign-in page need its CSRF token.
    let r = browser
        .post(app.url("/login/passkey/options"))
        .form(&[("request", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// The sign-in of `email` at a client that requires a second factor, up to the page the
/// password leads to: (browser, that page's URL).
async fn password_step(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            mfa_policy: Some(MfaPolicy::Required),
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id
    );
    let r = submit_sign_in(&browser, &url, email, PASSWORD).await;
    assert_eq!(r.status(), 303);
    let next = r.headers()["location"].to_str().unwrap().to_string();
    (browser, next)
}

async fn page(browser: &reqwest::Client, url: &str) -> String {
    browser.get(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn enrolment_offers_a_passkey_beside_totp_and_refuses_an_answer_that_does_not_verify() {
    let app = localhost_app().await;
    app.create_user(EMAIL).await;
    let (browser, enroll) = password_step(&app, EMAIL).await;
    assert!(enroll.contains("/mfa/enroll?request="), "{enroll}");
    let html = page(&browser, &enroll).await;
    assert!(html.contains("<svg"), "TOTP is still offered");
    assert!(html.contains(">Add a passkey</button>"));
    assert!(html.contains(r#"/mfa/enroll/passkey/options" data-failed="#));
    // The passkey form's options name the user who gave the password.
    let form = parse_passkey_form(&html);
    let r = browser
        .post(localhost(&app, "/mfa/enroll/passkey/options"))
        .form(&form.hidden)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let options: Value = r.json().await.unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(options["publicKey"]["user"]["name"], EMAIL);
    assert_eq!(
        options["publicKey"]["authenticatorSelection"]["residentKey"],
        "required"
    );
    // An answer that is no WebAuthn credential: refused, nothing registered, the page again.
    let mut fields = form.hidden.clone();
    fields.retain(|(k, _)| k != "ceremony" && k != "credential");
    fields.push((
        "ceremony".into(),
        options["ceremony"].as_str().unwrap().into(),
    ));
    fields.push(("credential".into(), r#"{"id":"x"}"#.into()));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("the passkey response is not a WebAuthn credential"));
    assert!(html.contains(">Add a passkey</button>"));
    // Options need the page's CSRF token.
    let r = browser
        .post(app.url("/mfa/enroll/passkey/options"))
        .form(&[("request", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Where passkeys cannot work (an IP address in the public URL), enrolment is TOTP only.
    let app = spawn_app().await;
    app.create_user(EMAIL).await;
    let (browser, enroll) = password_step(&app, EMAIL).await;
    let html = page(&browser, &enroll).await;
    assert!(html.contains("<svg") && !html.contains("Add a passkey"));
}

#[tokio::test]
async fn a_passkey_answer_on_the_second_factor_page_that_does_not_verify_is_a_failed_factor() {
    let app = localhost_app().await;
    let user = app.create_user(EMAIL).await;
    crate::mfa::enroll(&app, &user).await;
    let (browser, mfa) = password_step(&app, EMAIL).await;
    assert!(mfa.contains("/mfa?request="), "{mfa}");
    let html = page(&browser, &mfa).await;
    assert!(html.contains(r#"<label for="code">Authentication code</label>"#));
    assert!(
        !html.contains("Use a passkey"),
        "no passkey is registered to this user: none is offered"
    );
    let form = parse_form(&html);
    // Starting a passkey ceremony for a user without one says so.
    let r = browser
        .post(localhost(&app, "/mfa/passkey/options"))
        .form(&form.hidden)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("this account has no passkey"));
    // A made-up passkey answer: refused like a wrong code, audited, counted towards lockout.
    let mut fields = form.hidden.clone();
    fields.extend([
        ("action".to_string(), "passkey".to_string()),
        ("ceremony".to_string(), "made-up".to_string()),
        ("credential".to_string(), "{}".to_string()),
    ]);
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    assert!(html.contains("The passkey could not be used."), "{html}");
    assert!(html.contains(r#"<label for="code">Authentication code</label>"#));
    let token = admin_token(&app).await;
    let failures = audit_events(&app, &token, "mfa.failure").await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["actor"], user.as_str());
    assert!(failures[0].to_string().contains("passkey"), "{failures:?}");
}
