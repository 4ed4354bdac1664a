use crate::helpers::*;

fn authorize_url(app: &TestApp, client_id: &str, redirect_uri: &str, extra: &str) -> String {
    let challenge = portcullis::crypto::b64url(&portcullis::crypto::sha256(b"v"));
    format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={redirect_uri}&scope=openid&state=s&code_challenge={challenge}&code_challenge_method=S256{extra}",
        app.url("/authorize")
    )
}

async fn expect_error_page(app: &TestApp, url: &str, message: &str) {
    let r = app.get(url).await;
    assert_eq!(r.status(), 400, "{url}");
    assert!(r.headers().get("location").is_none(), "never redirected");
    let html = r.text().await.unwrap();
    assert!(html.contains(message), "{html}");
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_shown_on_an_error_page_and_never_redirected_to() {
    let app = spawn_app().await;
    let client = app.create_client(ClientOptions::default()).await;
    expect_error_page(
        &app,
        &authorize_url(&app, &client.id, "https://evil.example/cb", ""),
        "redirect_uri is not registered",
    )
    .await;
    // Exact matching: a prefix or a different query is not the registered URI.
    expect_error_page(
        &app,
        &authorize_url(&app, &client.id, "http://127.0.0.1:9/callback/x", ""),
        "redirect_uri is not registered",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_client_is_shown_on_an_error_page() {
    let app = spawn_app().await;
    expect_error_page(
        &app,
        &authorize_url(&app, "no-such-client", REDIRECT_URI, ""),
        "client_id) is not known",
    )
    .await;
}

#[tokio::test]
async fn a_client_of_another_tenant_is_unknown_here() {
    let app = spawn_app().await;
    let other = app.create_tenant("globex").await;
    let foreign = app.create_client_in(&other, ClientOptions::default()).await;
    expect_error_page(
        &app,
        &authorize_url(&app, &foreign.id, REDIRECT_URI, ""),
        "client_id) is not known",
    )
    .await;
}

async fn expect_redirect_error(app: &TestApp, url: &str, error: &str) {
    let r = app.get(url).await;
    assert_eq!(r.status(), 302, "{url}");
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some(error), "{url}");
    assert_eq!(param(&q, "iss").as_deref(), Some(app.issuer().as_str()));
}

#[tokio::test]
async fn invalid_requests_with_a_trusted_redirect_uri_are_redirected_with_the_exact_error() {
    let app = spawn_app().await;
    let c = app.create_client(ClientOptions::default()).await;
    let id = c.id.as_str();
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "&code_challenge_method=plain")
            .replace("code_challenge_method=S256&", ""),
        "invalid_request",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "&request=eyJ"),
        "request_not_supported",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "&request_uri=https%3A%2F%2Fx"),
        "request_uri_not_supported",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "")
            .replace("response_type=code", "response_type=token"),
        "unsupported_response_type",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "").replace("scope=openid", "scope=openid%20admin"),
        "invalid_scope",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "&state=again"),
        "invalid_request",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "&max_age=-1"),
        "invalid_request",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "&prompt=none%20login"),
        "invalid_request",
    )
    .await;
    expect_redirect_error(
        &app,
        &authorize_url(&app, id, REDIRECT_URI, "&id_token_hint=garbage"),
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn public_clients_must_use_pkce() {
    let app = spawn_app().await;
    let c = app
        .create_client(ClientOptions {
            public: true,
            ..ClientOptions::default()
        })
        .await;
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={REDIRECT_URI}&scope=openid",
        app.url("/authorize"),
        c.id
    );
    expect_redirect_error(&app, &url, "invalid_request").await;
}

#[tokio::test]
async fn unknown_parameters_display_and_acr_values_are_ignored() {
    let app = spawn_app().await;
    let c = app.create_client(ClientOptions::default()).await;
    let r = app
        .get(&authorize_url(
            &app,
            &c.id,
            REDIRECT_URI,
            "&display=popup&acr_values=urn%3Ax&claims_locales=de&foo=bar",
        ))
        .await;
    assert_eq!(r.status(), 303);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .contains("/login?request="));
}

#[tokio::test]
async fn the_sign_in_page_has_labelled_inputs_and_refuses_a_post_without_csrf_token() {
    let app = spawn_app().await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let r = browser
        .get(authorize_url(&app, &c.id, REDIRECT_URI, "&ui_locales=en"))
        .send()
        .await
        .unwrap();
    let login = r.headers()["location"].to_str().unwrap().to_string();
    let html = browser
        .get(&login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<label for="email">Email</label>"#));
    assert!(html.contains(r#"<label for="password">Password</label>"#));
    assert!(html.contains(">Sign in</button>"));
    assert!(html.contains(r#"autocomplete="current-password""#));
    let form = parse_form(&html);
    let request = form
        .hidden
        .iter()
        .find(|(k, _)| k == "request")
        .unwrap()
        .1
        .clone();
    let r = browser
        .post(&form.action)
        .form(&[
            ("request", request.as_str()),
            ("email", "a@b.c"),
            ("password", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let mut answers = Vec::new();
    for (email, password) in [
        ("ana@example.com", "Wrong-Password-1"),
        ("ghost@example.com", PASSWORD),
    ] {
        let browser = app.new_browser();
        let url = authorize_url(&app, &c.id, REDIRECT_URI, "");
        let r = submit_sign_in(&browser, &url, email, password).await;
        assert_eq!(r.status(), 401);
        let html = r.text().await.unwrap();
        assert!(html.contains("The email or password is incorrect."));
        answers.push(html.replace(email, ""));
    }
}

#[tokio::test]
async fn pages_are_served_in_brazilian_portuguese_when_asked() {
    let app = spawn_app().await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let r = browser
        .get(authorize_url(
            &app,
            &c.id,
            REDIRECT_URI,
            "&ui_locales=pt-BR",
        ))
        .send()
        .await
        .unwrap();
    let login = r.headers()["location"].to_str().unwrap().to_string();
    let html = browser
        .get(&login)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"lang="pt-BR""#));
    assert!(html.contains("Senha"));
}

#[tokio::test]
async fn deny_on_the_consent_page_returns_access_denied() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let browser = app.new_browser();
    let url = authorize_url(&app, &c.id, REDIRECT_URI, "");
    let r = submit_sign_in(&browser, &url, "ana@example.com", PASSWORD).await;
    let consent = r.headers()["location"].to_str().unwrap().to_string();
    let html = browser
        .get(&consent)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(">Allow</button>")
            && html.contains(">Deny</button>")
            && html.contains("Test app")
    );
    let form = parse_form(&html);
    let mut fields = form.hidden.clone();
    fields.push(("decision".into(), "deny".into()));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    let q = query_of(r.headers()["location"].to_str().unwrap());
    assert_eq!(param(&q, "error").as_deref(), Some("access_denied"));
}
