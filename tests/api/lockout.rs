//! Brute-force lockout and timing of failed sign-ins (SPEC "Accounts and policy").

use serde_json::{json, Value};

use crate::helpers::*;

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn five_failures_lock_the_address_for_known_and_unknown_users_alike_and_an_admin_can_unlock()
{
    let app = spawn_app().await;
    let ana = app.create_user("ana@example.com").await;
    for email in ["ana@example.com", "ghost@example.com"] {
        for i in 1..=4 {
            let (s, body) = login(&app, email, "Wrong-Password-1").await;
            assert_eq!(
                (s, body["error"]["code"].clone()),
                (401, json!("INVALID_CREDENTIALS")),
                "{email} attempt {i}"
            );
        }
        let (s, body) = login(&app, email, "Wrong-Password-1").await;
        assert_eq!(s, 423, "{email}: {body}");
        assert_eq!(body["error"]["code"], "ACCOUNT_LOCKED");
        let retry = body["error"]["retry_after"].as_i64().unwrap();
        assert!((850..=900).contains(&retry), "{retry}");
    }
    // Even the right password is refused while locked.
    let (s, _) = login(&app, "ana@example.com", PASSWORD).await;
    assert_eq!(s, 423);
    app.create_user_with_roles("admin@example.com", &["admin"])
        .await;
    let admin = app.login("admin@example.com").await;
    let r = app
        .http
        .post(app.url(&format!("/api/v1/admin/users/{ana}/unlock")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, _) = login(&app, "ana@example.com", PASSWORD).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn a_successful_sign_in_resets_the_count() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    for _ in 0..4 {
        assert_eq!(
            login(&app, "ana@example.com", "Wrong-Password-1").await.0,
            401
        );
    }
    assert_eq!(login(&app, "ana@example.com", PASSWORD).await.0, 200);
    for _ in 0..4 {
        assert_eq!(
            login(&app, "ana@example.com", "Wrong-Password-1").await.0,
            401
        );
    }
    assert_eq!(
        login(&app, "ANA@example.com", PASSWORD).await.0,
        200,
        "addresses compare case-insensitively"
    );
}

#[tokio::test]
async fn the_sign_in_page_says_the_account_is_locked() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    for _ in 0..5 {
        login(&app, "ana@example.com", "Wrong-Password-1").await;
    }
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        c.id
    );
    let r = submit_sign_in(&browser, &url, "ana@example.com", PASSWORD).await;
    assert_eq!(r.status(), 423);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Too many failed sign-ins. Try again in 15 minutes."));
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_take_about_the_same_time() {
    // The production hashing cost for this test (the suite's default is cheap): the hash
    // must dominate each request's time, or the scheduling noise of a busy suite does.
    let app = spawn_app_with(|c| {
        c.argon2 = portcullis::config::Config::default().argon2;
    })
    .await;
    app.create_user("ana@example.com").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..4 {
        let t = std::time::Instant::now();
        assert_eq!(
            login(&app, "ana@example.com", "Wrong-Password-1").await.0,
            401
        );
        known.push(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        assert_eq!(
            login(&app, &format!("ghost{i}@example.com"), "Wrong-Password-1")
                .await
                .0,
            401
        );
        unknown.push(t.elapsed().as_secs_f64());
    }
    known.sort_by(f64::total_cmp);
    unknown.sort_by(f64::total_cmp);
    let (k, u) = (known[2], unknown[2]);
    assert!(
        u > k * 0.5 && u < k * 2.0,
        "median known {k:.4}s vs unknown {u:.4}s"
    );
}
