use portcullis::storage::{dispatch, Pool};

use crate::helpers::*;

const TABLES: [&str; 9] = [
    "clients",
    "users",
    "browser_sessions",
    "authorization_requests",
    "authorization_codes",
    "refresh_tokens",
    "revoked_access_tokens",
    "consents",
    "signing_keys",
];

/// Row counts of the tables a request could change (read-only, for this check only).
async fn counts(pool: &Pool) -> Vec<i64> {
    let mut out = Vec::new();
    for t in TABLES {
        let sql = format!("SELECT COUNT(*) FROM {t}");
        let n: i64 = dispatch!(pool, p => sqlx::query_scalar(&sql).fetch_one(p).await.unwrap());
        out.push(n);
    }
    out
}

#[tokio::test]
async fn malformed_requests_get_specified_errors_never_a_500_and_change_nothing() {
    let app = spawn_app().await;
    app.create_user("ana@example.com").await;
    let c = app.create_client(ClientOptions::default()).await;
    let before = counts(&app.state.pool).await;
    let long = "x".repeat(5000);
    let gets = [
        "/authorize".to_string(),
        "/authorize?client_id=%ff%fe&redirect_uri=%00".to_string(),
        format!("/authorize?client_id={}&client_id={}", c.id, c.id),
        format!("/authorize?client_id={}&redirect_uri={REDIRECT_URI}&redirect_uri={REDIRECT_URI}", c.id),
        format!("/authorize?client_id={}&redirect_uri={REDIRECT_URI}&response_type=code&scope=openid&state={long}", c.id),
        format!("/authorize?client_id={long}"),
        "/login".to_string(),
        "/login?request=nope".to_string(),
        format!("/login?request={long}"),
        "/consent?request=nope".to_string(),
        "/logout?id_token_hint=a.b.c".to_string(),
        "/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example".to_string(),
        "/logout?client_id=nope&post_logout_redirect_uri=x".to_string(),
        "/userinfo".to_string(),
        "/jwks?x=%zz".to_string(),
    ];
    for path in &gets {
        let r = app.get(&app.url(path)).await;
        let status = r.status().as_u16();
        assert!(
            (400..500).contains(&status) || status == 200 || status == 302 || status == 303,
            "{path} → {status}"
        );
        assert!(
            status != 302
                || !r.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("https://evil"),
            "{path}"
        );
    }
    let posts: Vec<(&str, &str, &str)> = vec![
        ("/token", "application/x-www-form-urlencoded", ""),
        (
            "/token",
            "application/x-www-form-urlencoded",
            "grant_type=refresh_token&refresh_token=rt_forged&client_id=x",
        ),
        ("/token", "text/plain", "grant_type=client_credentials"),
        (
            "/token",
            "application/x-www-form-urlencoded",
            "%%%%=%%%&&&=",
        ),
        ("/revoke", "application/x-www-form-urlencoded", "token=x"),
        (
            "/introspect",
            "application/x-www-form-urlencoded",
            "token=x&client_id=nope&client_secret=nope",
        ),
        (
            "/login",
            "application/x-www-form-urlencoded",
            "request=nope&csrf_token=nope&email=a&password=b",
        ),
        (
            "/consent",
            "application/x-www-form-urlencoded",
            "request=nope&decision=allow",
        ),
        ("/login", "application/json", "{}"),
        ("/authorize", "application/json", "{}"),
        (
            "/userinfo",
            "application/x-www-form-urlencoded",
            "access_token=garbage",
        ),
    ];
    for (path, ctype, body) in posts {
        let r = app
            .http
            .post(app.url(path))
            .header("content-type", ctype)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!((400..500).contains(&status), "{path} {body:?} → {status}");
    }
    // A forged Basic header and a refresh token from nowhere.
    let r = app
        .http
        .post(app.url("/token"))
        .header("authorization", "Basic !!!not-base64")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        counts(&app.state.pool).await,
        before,
        "bad requests changed the database"
    );
}

/// A browser form posted with the wrong content type, or too large, gets an error page in
/// the person's language — not the JSON a client would get (found by tests/fuzz/oauth.py:
/// `/saml/acs` and every page form answered `{"error":"invalid_request"}`).
#[tokio::test]
async fn a_page_form_that_is_not_a_form_gets_an_error_page() {
    let app = spawn_app().await;
    let big = format!(
        "SAMLResponse={}",
        "A".repeat(app.state.config.max_body_bytes + 1)
    );
    for (path, content_type, body, status) in [
        ("/saml/acs", None, String::new(), 400),
        (
            "/saml/acs",
            Some("text/plain"),
            "SAMLResponse=x".to_string(),
            400,
        ),
        (
            "/saml/acs",
            Some("application/x-www-form-urlencoded"),
            big.clone(),
            413,
        ),
        ("/login", Some("application/json"), "{}".to_string(), 400),
        (
            "/consent",
            Some("multipart/form-data; boundary=x"),
            String::new(),
            400,
        ),
        (
            "/authorize",
            Some("application/json"),
            "{}".to_string(),
            400,
        ),
        (
            "/authorize",
            Some("application/x-www-form-urlencoded"),
            big.clone(),
            413,
        ),
        ("/logout", Some("text/plain"), "state=x".to_string(), 400),
    ] {
        let mut r = app
            .http
            .post(app.url(path))
            .header("accept-language", "pt-BR")
            .body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {content_type:?}");
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/html"), "{path} {content_type:?}");
        let page = r.text().await.unwrap();
        assert!(page.contains("lang=\"pt-BR\""), "{path}: {page}");
        let expected = if status == 413 {
            "O formulário é grande demais."
        } else {
            "Não foi possível ler o formulário"
        };
        assert!(page.contains(expected), "{path}: {page}");
    }
}
