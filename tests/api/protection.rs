//! Protection: rate limits (seed 003/004 behaviour), lockouts, bans and their platform API,
//! client addresses behind trusted proxies, CORS, security headers and metrics.

use portcullis::clients::{self, GrantType, NewClient, RedirectUri};
use portcullis::config::Window;
use serde_json::{json, Value};

use crate::helpers::*;

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn client_credentials_client(app: &TestApp, origins: &[&str]) -> TestClient {
    let mut new = NewClient::new("Service");
    new.redirect_uris = vec![RedirectUri::parse(REDIRECT_URI).unwrap()];
    new.grant_types = vec![GrantType::ClientCredentials];
    new.scopes = vec!["api".into()];
    new.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    let (c, secret) = clients::create_client(app.state.clients(), &app.tenant, new)
        .await
        .unwrap();
    TestClient { id: c.id, secret }
}

async fn cc_token(app: &TestApp, client: &TestClient, xff: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("grant_type", "client_credentials"), ("scope", "api")]);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn credential_endpoints_admit_20_requests_a_minute_then_answer_rate_limited() {
    let app = spawn_app().await;
    for i in 0..20u64 {
        let r = app
            .http
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": format!("nobody{i}@acme.test"), "password": "Wrong-password-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "request {i}");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("20"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some((19 - i).to_string().as_str())
        );
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            reset > portcullis::storage::now() as u64
                && reset <= portcullis::storage::now() as u64 + 60
        );
    }
    let r = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "nobody@acme.test", "password": "Wrong-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(body["error"]["retry_after"], retry);
    assert_eq!(body["error"]["limit"], 20);
    assert_eq!(body["error"]["window"], 60);
    assert!(body["error"]["correlation_id"].is_string());
    // Another endpoint has its own counter.
    let r = app
        .http
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": "rt_x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("19"));
}

#[tokio::test]
async fn oauth_endpoints_and_pages_answer_429_in_their_own_form_and_health_is_exempt() {
    let app = spawn_app_with(|c| {
        c.rate_limit.credentials = Window {
            limit: 2,
            window_secs: 60,
        };
        c.rate_limit.public = Window {
            limit: 1,
            window_secs: 60,
        };
    })
    .await;
    let client = client_credentials_client(&app, &[]).await;
    for _ in 0..2 {
        assert_eq!(cc_token(&app, &client, None).await.status(), 200);
    }
    let r = cc_token(&app, &client, None).await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").is_some());
    assert_eq!(header(&r, "cache-control"), Some("no-store"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(body["limit"], 2);
    assert_eq!(body["window"], 60);
    assert!(body["retry_after"].as_u64().unwrap() >= 1);

    for _ in 0..2 {
        app.post_form(&app.url("/login"), &[("email", "a@b.c")])
            .await;
    }
    let r = app
        .post_form(&app.url("/login"), &[("email", "a@b.c")])
        .await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "content-type").unwrap().starts_with("text/html"));
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Too many requests. Try again in"));

    assert_eq!(app.get(&app.url("/jwks")).await.status(), 200);
    assert_eq!(app.get(&app.url("/jwks")).await.status(), 429);
    for _ in 0..5 {
        let r = app.get(&format!("{}/health", app.address)).await;
        assert_eq!(r.status(), 200);
        assert!(header(&r, "x-ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn repeated_violations_lock_the_address_out_then_ban_it_and_operators_lift_the_ban() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.rate_limit.credentials = Window {
            limit: 1,
            window_secs: 60,
        };
        c.rate_limit.lockout_violations = 3;
        c.rate_limit.lockout_secs = 1;
        c.rate_limit.ban_after_lockouts = 2;
    })
    .await;
    let client = client_credentials_client(&app, &[]).await;
    let attacker = Some("203.0.113.9");
    assert_eq!(cc_token(&app, &client, attacker).await.status(), 200);
    for _ in 0..3 {
        assert_eq!(cc_token(&app, &client, attacker).await.status(), 429);
    }
    // Locked out: every limited endpoint refuses the address, with the lockout's Retry-After.
    let r = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("1"));
    // Other addresses behind the same proxy are not affected.
    assert_eq!(
        cc_token(&app, &client, Some("198.51.100.1")).await.status(),
        200
    );

    // The second lockout bans the address, in the database.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for _ in 0..3 {
        assert_eq!(cc_token(&app, &client, attacker).await.status(), 429);
    }
    let r = cc_token(&app, &client, attacker).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "access_denied");
    let r = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "IP_BANNED"
    );
    let rows = portcullis::storage::bans::list_live_bans(&app.state.pool, 0)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].ip, "203.0.113.9");
    assert_eq!(rows[0].created_by, "rate-limiter");
    app.state.audit.flush().await;
    let events = portcullis::storage::audit::count_events(&app.state.pool, "ip.banned")
        .await
        .unwrap();
    assert_eq!(events, 1);

    // Operators see and lift bans with a platform key (from another address).
    let ops = app
        .api_key(None, &["bans:read", "bans:create", "bans:delete"])
        .await;
    let admin = |m: reqwest::Method, path: &str| {
        app.http
            .request(m, format!("{}{path}", app.address))
            .header("x-api-key", &ops)
            .header("x-forwarded-for", "198.51.100.2")
    };
    let list: Value = admin(reqwest::Method::GET, "/api/v1/admin/bans")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["ip"], "203.0.113.9");
    assert!(list["data"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("lockouts"));
    let r = admin(reqwest::Method::DELETE, "/api/v1/admin/bans/203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        cc_token(&app, &client, Some("203.0.113.9")).await.status(),
        429
    );
    let r = admin(reqwest::Method::DELETE, "/api/v1/admin/bans/203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A range, banned by hand.
    let r = admin(reqwest::Method::POST, "/api/v1/admin/bans")
        .json(&json!({"ip": "192.0.2.0/24", "reason": "abuse report"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]["ip"],
        "192.0.2.0/24"
    );
    assert_eq!(
        cc_token(&app, &client, Some("192.0.2.77")).await.status(),
        403
    );
    let r = admin(reqwest::Method::POST, "/api/v1/admin/bans")
        .json(&json!({"ip": "not-an-ip"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "VALIDATION_FAILED"
    );
    let reader = app.api_key(None, &["bans:read"]).await;
    let r = app
        .http
        .post(format!("{}/api/v1/admin/bans", app.address))
        .header("x-api-key", &reader)
        .header("x-forwarded-for", "198.51.100.3")
        .json(&json!({"ip": "198.51.100.77"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INSUFFICIENT_PERMISSIONS");
    assert_eq!(
        body["error"]["required_permissions"],
        json!(["bans:create"])
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_does_not_change_the_count() {
    let app = spawn_app_with(|c| {
        c.rate_limit.credentials = Window {
            limit: 1,
            window_secs: 60,
        };
    })
    .await;
    let client = client_credentials_client(&app, &[]).await;
    assert_eq!(
        cc_token(&app, &client, Some("203.0.113.1")).await.status(),
        200
    );
    assert_eq!(
        cc_token(&app, &client, Some("203.0.113.2")).await.status(),
        429
    );
}

#[tokio::test]
async fn a_tenant_sets_its_own_windows_and_bad_windows_are_refused() {
    let app = spawn_app().await;
    app.create_user_with_roles("admin@acme.test", &["admin"])
        .await;
    let admin = app.login("admin@acme.test").await;
    let patch = |body: Value| {
        app.http
            .patch(app.url("/api/v1/admin/settings"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let r = patch(json!({"rate_limits": {"credentials": {"limit": 0, "window_secs": 60}}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "rate_limits.credentials: limit must be at least 1 and window_secs 1-86400"
    );
    let r = patch(json!({"rate_limits": {"credentials": {"limit": 3, "window_secs": 30}}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let client = client_credentials_client(&app, &[]).await;
    let r = cc_token(&app, &client, None).await;
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
    cc_token(&app, &client, None).await;
    cc_token(&app, &client, None).await;
    let r = cc_token(&app, &client, None).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["limit"].as_u64(), body["window"].as_u64()),
        (Some(3), Some(30))
    );
}

#[tokio::test]
async fn with_redis_the_limiter_counts_in_redis_and_a_wrong_url_fails_the_start() {
    let prefix = format!("pc_test_{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(|c| {
        c.redis_url = Some(redis_url().into());
        c.redis_prefix = prefix.clone();
        c.rate_limit.credentials = Window {
            limit: 2,
            window_secs: 60,
        };
        c.rate_limit.lockout_violations = 2;
    })
    .await;
    assert_eq!(app.state.protection.backend(), "redis");
    let client = client_credentials_client(&app, &[]).await;
    assert_eq!(cc_token(&app, &client, None).await.status(), 200);
    let r = cc_token(&app, &client, None).await;
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(cc_token(&app, &client, None).await.status(), 429);
    assert_eq!(cc_token(&app, &client, None).await.status(), 429);
    // Two violations locked the address out (the lockout lives in Redis).
    let r = app.get(&app.url("/jwks")).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!(retry > 890 && retry <= 900, "{retry}");

    let (url, _dir) = database_url().await;
    let mut config = test_config(0, url);
    config.redis_url = Some("redis://127.0.0.1:1/".to_string().into());
    let Err(err) = portcullis::startup::open_state(config).await else {
        panic!("a start with an unreachable Redis succeeded");
    };
    assert!(err.to_string().contains("cannot connect to Redis"), "{err}");
}

#[tokio::test]
async fn cors_allows_only_the_origins_clients_registered() {
    let app = spawn_app().await;
    let spa = client_credentials_client(&app, &["https://app.example"]).await;
    let other = client_credentials_client(&app, &[]).await;
    let preflight = |origin: &'static str, path: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let r = preflight("https://app.example", "/token").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(header(&r, "access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert!(header(&r, "access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
    // Browser clients send DPoP proofs and read the server's nonces (RFC 9449).
    assert!(header(&r, "access-control-allow-headers")
        .unwrap()
        .contains("DPoP"));
    assert_eq!(header(&r, "access-control-max-age"), Some("86400"));
    let r = preflight("https://evil.example", "/token").await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(header(&r, "access-control-allow-origin").is_none());
    let r = preflight("https://app.example", "/api/v1/auth/login")
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );

    let token = |client: &TestClient, origin: &'static str| {
        app.http
            .post(app.url("/token"))
            .header("origin", origin)
            .basic_auth(&client.id, client.secret.as_deref())
            .form(&[("grant_type", "client_credentials"), ("scope", "api")])
            .send()
    };
    let r = token(&spa, "https://app.example").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(header(&r, "access-control-expose-headers")
        .unwrap()
        .contains("X-RateLimit-Remaining"));
    assert!(header(&r, "vary").unwrap().contains("Origin"));
    // The client that made the request decides, not another client of the tenant.
    let r = token(&other, "https://app.example").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "access-control-allow-origin").is_none());
    let r = token(&spa, "https://evil.example").await.unwrap();
    assert!(header(&r, "access-control-allow-origin").is_none());
    // Revocation and introspection follow the same rule.
    let r = app
        .http
        .post(app.url("/revoke"))
        .header("origin", "https://app.example")
        .basic_auth(&spa.id, spa.secret.as_deref())
        .form(&[("token", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    // The JSON API: any client of the tenant registering the origin.
    let r = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("origin", "https://app.example")
        .json(&json!({"email": "x@acme.test", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );

    // Nothing is allowed by default: another tenant has no registered origin.
    let other_tenant = app.create_tenant("globex").await;
    let r = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/t/{}/token", app.address, other_tenant.slug),
        )
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_https_adds_hsts() {
    let app = spawn_app_with(|c| {
        c.public_url = "https://id.example.com".into();
        c.rate_limit.public = Window {
            limit: 1,
            window_secs: 60,
        };
    })
    .await;
    let responses = [
        app.get(&format!(
            "{}/t/acme/.well-known/openid-configuration",
            app.address
        ))
        .await,
        app.get(&format!("{}/t/acme/jwks", app.address)).await, // 429
        app.get(&format!("{}/nope", app.address)).await,
        app.get(&format!("{}/t/acme/login", app.address)).await,
        app.get(&format!("{}/health", app.address)).await,
    ];
    assert_eq!(responses[1].status(), 429);
    for r in &responses {
        let csp = header(r, "content-security-policy").unwrap();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(header(r, "x-frame-options"), Some("DENY"));
        assert_eq!(header(r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(r, "referrer-policy"), Some("no-referrer"));
        assert!(header(r, "strict-transport-security")
            .unwrap()
            .starts_with("max-age="));
        assert!(header(r, "x-request-id").is_some());
    }
    let plain = spawn_app().await;
    let r = plain.get(&plain.url("/jwks")).await;
    assert!(header(&r, "strict-transport-security").is_none());
}

#[tokio::test]
async fn metrics_count_requests_sign_ins_tokens_and_rejections() {
    let app = spawn_app_with(|c| {
        c.rate_limit.public = Window {
            limit: 1,
            window_secs: 60,
        };
    })
    .await;
    app.create_user("ana@acme.test").await;
    app.login("ana@acme.test").await;
    let client = client_credentials_client(&app, &[]).await;
    assert_eq!(cc_token(&app, &client, None).await.status(), 200);
    app.get(&app.url("/jwks")).await;
    assert_eq!(app.get(&app.url("/jwks")).await.status(), 429);
    let r = app.get(&format!("{}/metrics", app.address)).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    for line in [
        r#"portcullis_http_requests_total{route="/t/{tenant}/token",method="POST",status="200"} 1"#,
        r#"portcullis_http_requests_total{route="/t/{tenant}/jwks",method="GET",status="429"} 1"#,
        r#"portcullis_tokens_issued_total{grant_type="client_credentials"} 1"#,
        r#"portcullis_tokens_issued_total{grant_type="password"} 1"#,
        r#"portcullis_signins_total{result="success"} 1"#,
        r#"portcullis_rate_limit_rejections_total{group="public",reason="limited"} 1"#,
        r#"portcullis_http_request_duration_seconds_bucket{le="+Inf",route="/t/{tenant}/token"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(text.contains("process_resident_memory_bytes "));

    let locked =
        spawn_app_with(|c| c.metrics_token = Some("s3cret-scrape".to_string().into())).await;
    let url = format!("{}/metrics", locked.address);
    assert_eq!(locked.get(&url).await.status(), 401);
    let r = locked
        .http
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = locked
        .http
        .get(&url)
        .bearer_auth("s3cret-scrape")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn percent_encoded_paths_count_as_the_endpoint_they_reach() {
    let app = spawn_app_with(|c| {
        c.rate_limit.credentials = Window {
            limit: 2,
            window_secs: 60,
        };
    })
    .await;
    let client = client_credentials_client(&app, &[]).await;
    let encoded = format!("{}/t/acme/%74oken", app.address);
    for expected in [200, 200, 429] {
        let r = app
            .http
            .post(&encoded)
            .basic_auth(&client.id, client.secret.as_deref())
            .form(&[("grant_type", "client_credentials"), ("scope", "api")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected);
    }
    assert_eq!(cc_token(&app, &client, None).await.status(), 429);
}

#[tokio::test]
async fn every_forwarded_for_line_is_read_and_a_proxy_without_one_is_not_limited() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.rate_limit.credentials = Window {
            limit: 1,
            window_secs: 60,
        };
    })
    .await;
    let client = client_credentials_client(&app, &[]).await;
    // The client forges a first line; the proxy appends the real address in a second one.
    let send = |forged: &'static str| {
        app.http
            .post(app.url("/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .header("x-forwarded-for", forged)
            .header("x-forwarded-for", "203.0.113.50")
            .form(&[("grant_type", "client_credentials"), ("scope", "api")])
            .send()
    };
    assert_eq!(send("198.51.100.1").await.unwrap().status(), 200);
    assert_eq!(send("198.51.100.2").await.unwrap().status(), 429);
    // A non-ASCII value does not hide the hops after it.
    let r = app
        .http
        .post(app.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .header(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_bytes(b"\x80, 203.0.113.50").unwrap(),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", "api")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Requests of the proxy itself (no client address) are never counted or locked out.
    for _ in 0..3 {
        assert_eq!(cc_token(&app, &client, None).await.status(), 200);
    }
}

#[tokio::test]
async fn a_tenant_window_stricter_than_the_servers_does_not_lock_addresses_out() {
    let app = spawn_app_with(|c| c.rate_limit.lockout_violations = 2).await;
    let mut settings = app.tenant.settings.clone();
    settings.rate_limits.insert(
        portcullis::protection::Group::Credentials,
        Window {
            limit: 1,
            window_secs: 3600,
        },
    );
    portcullis::tenants::update_settings(&app.state.pool, &app.tenant, &settings)
        .await
        .unwrap();
    app.state.providers.invalidate("acme");
    let client = client_credentials_client(&app, &[]).await;
    assert_eq!(cc_token(&app, &client, None).await.status(), 200);
    for _ in 0..4 {
        assert_eq!(cc_token(&app, &client, None).await.status(), 429);
    }
    // Still only limited at this tenant's token endpoint, not locked out.
    assert_eq!(app.get(&app.url("/jwks")).await.status(), 200);
}
