//! Relying parties written by others against the real server: authlib (PyPI) runs the code
//! flow with PKCE, validates the ID token with its own rules (at_hash, nonce, iss, aud),
//! reads userinfo, refreshes with rotation and logs out (tests/peers/rp).

use std::process::Command;

use crate::helpers::{spawn_app, ClientOptions, PASSWORD, REDIRECT_URI};

const POST_LOGOUT: &str = "http://127.0.0.1:9/signed-out";

#[tokio::test]
async fn authlib_completes_the_code_flow_refresh_and_rp_initiated_logout() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let client = app
        .create_client(ClientOptions {
            post_logout: vec![POST_LOGOUT.into()],
            scopes: Some(vec!["openid", "profile", "email", "offline_access"]),
            ..ClientOptions::default()
        })
        .await;
    let issuer = app.issuer();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("tests/peers/rp/authlib_rp.py")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ISSUER", issuer)
            .env("CLIENT_ID", &client.id)
            .env("CLIENT_SECRET", client.secret.as_deref().unwrap())
            .env("REDIRECT_URI", REDIRECT_URI)
            .env("POST_LOGOUT_URI", POST_LOGOUT)
            .env("EMAIL", "ana@example.com")
            .env("PASSWORD", PASSWORD)
            .output()
            .expect("python3 runs; `bash .ci/dev test` installs authlib")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("OK "))
        .unwrap_or_else(|| panic!("{stdout}\n{stderr}"));
    let result: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(result["sub"], user.as_str());
    assert_eq!(result["amr"], serde_json::json!(["pwd"]));
    assert_eq!(result["userinfo_email"], "ana@example.com");
    assert_eq!(result["logged_out"], true);
}
