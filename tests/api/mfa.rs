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
