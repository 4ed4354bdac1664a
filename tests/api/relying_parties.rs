//! Relying parties written by others against the real server: authlib (PyPI) runs the code
//! flow with PKCE, validates the ID token with its own rules (at_hash, nonce, iss, aud),
//! reads userinfo, refreshes with rotation and logs out (tests/peers/rp).

use std::process::Command;

use crate::helpers::{free_port, run_peer, spawn_app, ClientOptions, PASSWORD, REDIRECT_URI};

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
    let mut cmd = Command::new("python3");
    cmd.arg("tests/peers/rp/authlib_rp.py")
        .env("ISSUER", issuer)
        .env("CLIENT_ID", &client.id)
        .env("CLIENT_SECRET", client.secret.as_deref().unwrap())
        .env("REDIRECT_URI", REDIRECT_URI)
        .env("POST_LOGOUT_URI", POST_LOGOUT)
        .env("EMAIL", "ana@example.com")
        .env("PASSWORD", PASSWORD);
    let result: serde_json::Value = run_peer(cmd, "`bash .ci/dev test` installs authlib").await;
    assert_eq!(result["sub"], user.as_str());
    assert_eq!(result["amr"], serde_json::json!(["pwd"]));
    assert_eq!(result["userinfo_email"], "ana@example.com");
    assert_eq!(result["logged_out"], true);
}

/// Follows redirects by hand through the RP and Portcullis, signing in and consenting on our
/// pages and confirming sign-out; returns the final response.
async fn browse(
    browser: &reqwest::Client,
    start: &str,
    email: &str,
) -> (String, reqwest::StatusCode, String) {
    let mut next = start.to_string();
    let mut post: Option<(String, Vec<(String, String)>)> = None;
    for _ in 0..16 {
        let r = match post.take() {
            Some((action, fields)) => browser.post(&action).form(&fields).send().await.unwrap(),
            None => browser.get(&next).send().await.unwrap(),
        };
        if r.status().is_redirection() {
            next = r
                .url()
                .join(r.headers()["location"].to_str().unwrap())
                .unwrap()
                .to_string();
            continue;
        }
        let url = r.url().to_string();
        let status = r.status();
        let page = r.text().await.unwrap();
        let form = |suffix: &str| {
            let f = crate::helpers::parse_form(&page);
            assert!(f.action.ends_with(suffix), "{page}");
            f
        };
        if page.contains("name=\"password\"") {
            let f = crate::helpers::parse_form(
                page.split("<form ")
                    .nth(1)
                    .map(|x| format!("<form {x}"))
                    .as_deref()
                    .unwrap(),
            );
            let mut fields = f.hidden.clone();
            fields.push(("email".into(), email.into()));
            fields.push(("password".into(), PASSWORD.into()));
            post = Some((f.action, fields));
        } else if page.contains("name=\"decision\"") {
            let f = form("/consent");
            let mut fields = f.hidden.clone();
            fields.push(("decision".into(), "allow".into()));
            post = Some((f.action, fields));
        } else if page.contains("name=\"confirm\"") {
            let f = form("/logout");
            let mut fields = f.hidden.clone();
            fields.push(("confirm".into(), "yes".into()));
            post = Some((f.action, fields));
        } else {
            return (url, status, page);
        }
    }
    panic!("too many steps from {start}");
}

#[tokio::test]
async fn mod_auth_openidc_signs_in_refreshes_and_logs_out() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let port = free_port();
    let rp_base = format!("http://127.0.0.1:{port}");
    let client = app
        .create_client(ClientOptions {
            redirect_uri: Some(format!("{rp_base}/protected/redirect_uri")),
            post_logout: vec![format!("{rp_base}/loggedout.html")],
            scopes: Some(vec!["openid", "profile", "email", "offline_access"]),
            ..ClientOptions::default()
        })
        .await;
    let dir = std::env::temp_dir().join(format!("pc-rp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg("tests/peers/rp/mod_auth_openidc.py")
        .env("RP_DIR", &dir)
        .env("RP_PORT", port.to_string())
        .env("ISSUER", app.issuer())
        .env("CLIENT_ID", &client.id)
        .env("CLIENT_SECRET", client.secret.as_deref().unwrap());
    let peer = crate::federation::start_peer(cmd, "RP (mod_auth_openidc)");
    assert_eq!(peer.base, rp_base);

    // The protected page: Apache sends the browser to us, validates what comes back.
    let browser = app.new_browser();
    let (url, status, page) = browse(
        &browser,
        &format!("{rp_base}/protected/"),
        "ana@example.com",
    )
    .await;
    assert_eq!(status, 200, "{url}: {page}");
    assert!(page.contains("protected content"), "{page}");

    // Its session: our ID token's claims and our userinfo.
    let info: serde_json::Value = browser
        .get(format!("{rp_base}/protected/redirect_uri?info=json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["id_token"]["sub"], user.as_str(), "{info}");
    assert_eq!(info["id_token"]["iss"], app.issuer().as_str());
    assert_eq!(info["userinfo"]["email"], "ana@example.com", "{info}");
    let first_refresh = info["refresh_token"].as_str().unwrap().to_string();
    let first_access = info["access_token"].as_str().unwrap().to_string();

    // Refresh through the RP (its refresh hook), rotating our refresh token.
    let r = browser
        .get(format!(
            "{rp_base}/protected/redirect_uri?refresh={}&access_token={first_access}",
            crate::federation::url_encode(&format!("{rp_base}/protected/"))
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let info: serde_json::Value = browser
        .get(format!("{rp_base}/protected/redirect_uri?info=json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(
        info["refresh_token"].as_str().unwrap(),
        first_refresh,
        "{info}"
    );
    assert_ne!(info["access_token"].as_str().unwrap(), first_access);

    // RP-initiated logout: Apache sends the browser to our end_session_endpoint, we confirm
    // and return to its post-logout page.
    let (url, status, page) = browse(
        &browser,
        &format!(
            "{rp_base}/protected/redirect_uri?logout={}",
            crate::federation::url_encode(&format!("{rp_base}/loggedout.html"))
        ),
        "ana@example.com",
    )
    .await;
    assert_eq!(status, 200, "{url}: {page}");
    assert!(page.contains("signed out"), "{url}: {page}");
    // Our session is gone too: the protected page asks for a sign-in again.
    let r = browser
        .get(format!("{rp_base}/protected/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = browser
        .get(r.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "our sign-in page again, not a silent code");
    drop(peer);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_oidc_client_ts_spa_in_chromium_signs_in_with_pkce_and_renews_silently() {
    let app = spawn_app().await;
    let user = app.create_user("ana@example.com").await;
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let client = app
        .create_client(ClientOptions {
            public: true,
            grants: vec![portcullis::clients::GrantType::AuthorizationCode],
            skip_consent: true,
            redirect_uri: Some(format!("{origin}/callback")),
            origins: vec![origin.clone()],
            ..ClientOptions::default()
        })
        .await;
    let issuer = app.issuer();
    let mut cmd = Command::new("node");
    cmd.arg("tests/peers/spa/spa.mjs")
        .env("ISSUER", issuer)
        .env("CLIENT_ID", &client.id)
        .env("SPA_PORT", port.to_string())
        .env("EMAIL", "ana@example.com")
        .env("PASSWORD", PASSWORD);
    let result: serde_json::Value = run_peer(
        cmd,
        "`bash .ci/dev test` installs the SPA peer and chromium",
    )
    .await;
    assert_eq!(result["sub"], user.as_str());
    assert_eq!(result["renewed_sub"], user.as_str());
    assert_eq!(
        result["email"], "ana@example.com",
        "loadUserInfo through CORS"
    );
}
