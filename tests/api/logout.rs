use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::Value;

use crate::helpers::*;

/// A relying party's back-channel logout endpoint that records what it receives.
async fn logout_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let data = web::Data::from(received.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/bcl",
            web::post().to(
                |body: web::Bytes, seen: web::Data<Mutex<Vec<String>>>| async move {
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).to_string());
                    HttpResponse::Ok().finish()
                },
            ),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/bcl"), received)
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_redirects_with_state_and_notifies_the_back_channel() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let (bcl, received) = logout_receiver().await;
    let c = app
        .create_client(ClientOptions {
            backchannel: Some(bcl),
            post_logout: vec!["http://127.0.0.1:9/bye".into()],
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let (code, verifier) = app.code_for(&browser, &c, "ana@example.com", &[]).await;
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
    let id_token = tokens["id_token"].as_str().unwrap();
    let sid = jwt_claims(id_token)["sid"].as_str().unwrap().to_string();

    // An unregistered post-logout URI is refused and not redirected to.
    let r = browser
        .get(format!(
            "{}?id_token_hint={id_token}&post_logout_redirect_uri=https%3A%2F%2Fevil.example",
            app.url("/logout")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = browser
        .get(format!("{}?id_token_hint={id_token}&post_logout_redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fbye&state=bye1", app.url("/logout")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/bye?state=bye1");

    // The session is over: prompt=none now answers login_required.
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid&prompt=none&code_challenge={challenge}&code_challenge_method=S256",
        app.url("/authorize"),
        c.id
    );
    let r = browser.get(&url).send().await.unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("login_required"));

    // The back-channel logout token arrives, signed, with the session id.
    let mut body = None;
    for _ in 0..50 {
        if let Some(b) = received.lock().unwrap().first().cloned() {
            body = Some(b);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let body = body.expect("logout token delivered");
    let token = body.strip_prefix("logout_token=").unwrap();
    let (typ, claims) = app
        .state
        .providers
        .get(&app.state.pool, "acme")
        .await
        .unwrap()
        .unwrap()
        .keys
        .verify(token)
        .unwrap();
    assert_eq!(typ.as_deref(), Some("logout+jwt"));
    assert_eq!(claims["sid"], sid);
    assert_eq!(claims["aud"], c.id);
    assert!(claims["events"]
        .get("http://schemas.openid.net/event/backchannel-logout")
        .is_some());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test]
async fn logout_without_a_hint_asks_for_confirmation_with_a_csrf_protected_form() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    app.code_for(&browser, &c, "ana@example.com", &[]).await;
    let r = browser.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Do you want to sign out?"));
    let form = parse_form(&html);
    let mut fields = form.hidden.clone();
    fields.push(("confirm".into(), "yes".into()));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("You have been signed out."));
}

#[tokio::test]
async fn a_failed_back_channel_delivery_is_retried() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    // A receiver that fails its first call.
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let data = web::Data::from(calls.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/bcl",
            web::post().to(
                |body: web::Bytes, seen: web::Data<Mutex<Vec<String>>>| async move {
                    let mut seen = seen.lock().unwrap();
                    seen.push(String::from_utf8_lossy(&body).to_string());
                    if seen.len() == 1 {
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::Ok().finish()
                    }
                },
            ),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let c = app
        .create_client(ClientOptions {
            backchannel: Some(format!("http://127.0.0.1:{port}/bcl")),
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let tokens_browser = app.code_for(&browser, &c, "ana@example.com", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", tokens_browser.0.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", tokens_browser.1.as_str()),
    ];
    let tokens: Value = app.token(&c, &form).await.json().await.unwrap();
    let hint = tokens["id_token"].as_str().unwrap();
    let r = browser
        .get(format!("{}?id_token_hint={hint}", app.url("/logout")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "signed out, no redirect URI: the signed-out page"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while calls.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no retry after a failed delivery"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let seen = calls.lock().unwrap().clone();
    assert_eq!(seen[0], seen[1], "the same logout token is retried");
}

#[tokio::test]
async fn the_default_tenant_is_also_served_at_the_root() {
    let app = spawn_app_with(|c| c.default_tenant = Some("acme".into())).await;
    let d: Value = app
        .get(&format!("{}/.well-known/openid-configuration", app.address))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], app.issuer());
    let r = app.get(&format!("{}/jwks", app.address)).await;
    assert_eq!(r.status(), 200);
}
