//! Several instances: two `portcullis serve` processes on different ports over one database
//! and one Redis, as behind a load balancer; and the life of one process (JSON logs with
//! the request id, graceful shutdown).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis::config::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// A `portcullis serve` process; killed when dropped.
struct Instance {
    child: Child,
    address: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    fn terminate(&self) {
        let pid = self.child.id();
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {pid}");
    }

    /// SIGTERM, then the exit status (within 25 s).
    async fn stop(&mut self) -> std::process::ExitStatus {
        self.terminate();
        self.stop_waiting().await
    }

    async fn stop_waiting(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "still running 25 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `portcullis serve` on `port` with the configuration of `config` (database,
/// master key, public URL) plus `env`, and waits for `/ready`.
async fn start(config: &Config, port: u16, env: &[(&str, String)]) -> Instance {
    let dir = std::env::temp_dir().join(format!("portcullis-proc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = {
        use secrecy::ExposeSecret;
        config
            .master_key
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_string()
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.arg("serve")
        .current_dir(&dir)
        .env("PORTCULLIS_DATABASE_URL", &config.database_url)
        .env("PORTCULLIS_MASTER_KEY", key)
        .env("PORTCULLIS_PUBLIC_URL", &config.public_url)
        .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_ARGON2__MEMORY_KIB", "1024")
        .env("PORTCULLIS_ARGON2__ITERATIONS", "1")
        .env("PORTCULLIS_ARGON2__PARALLELISM", "1")
        .env("PORTCULLIS_WORKERS", "2")
        .env("PORTCULLIS_DATABASE_MAX_CONNECTIONS", "5")
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start portcullis serve");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let address = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = probe.get(format!("{address}/ready")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "portcullis serve exited with {status}: {:?}",
                log.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no /ready within 30 s: {:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Instance {
        child,
        address,
        log,
    }
}

/// A database seeded through the domain functions, with the configuration the processes
/// share; the public URL is the "load balancer" (instance A's address).
async fn seeded(public_port: u16) -> (TestApp, Option<TempDir>) {
    let (url, dir) = database_url().await;
    let mut config = test_config(public_port, url);
    config.public_url = format!("http://127.0.0.1:{public_port}");
    let state = portcullis::startup::open_state(config).await.unwrap();
    let tenant = portcullis::provisioning::create_tenant(
        &state.pool,
        &state.master_key,
        &portcullis::tenants::TenantSlug::parse("acme").unwrap(),
        Some("Acme"),
    )
    .await
    .unwrap();
    let app = TestApp::at(
        String::new(),
        state,
        tenant,
        http_client(Default::default()),
    );
    (app, dir)
}

fn redis_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "PORTCULLIS_RATE_LIMIT__CREDENTIALS__LIMIT",
            "40".to_string(),
        ),
        ("PORTCULLIS_REDIS_URL", redis_url()),
        (
            "PORTCULLIS_REDIS_PREFIX",
            format!("pc_test_{}:", uuid::Uuid::new_v4().simple()),
        ),
    ]
}

async fn refresh(app: &TestApp, client: &TestClient, rt: &str) -> (u16, Value) {
    let r = app
        .token(
            client,
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
        )
        .await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn exchange(app: &TestApp, client: &TestClient, code: &str, verifier: &str) -> Value {
    let r = app
        .token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A client_credentials access token.
async fn cc(app: &TestApp, service: &TestClient) -> String {
    let r = app
        .token(
            service,
            &[("grant_type", "client_credentials"), ("scope", "api")],
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn two_instances_over_one_database_and_one_redis_serve_as_one() {
    let (port_a, port_b) = (free_port(), free_port());
    let (seed, _dir) = seeded(port_a).await;
    seed.create_user("ana@acme.test").await;
    let client = seed
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let service = seed
        .create_client(ClientOptions {
            grants: vec![portcullis::clients::GrantType::ClientCredentials],
            scopes: Some(vec!["api"]),
            ..ClientOptions::default()
        })
        .await;
    let ops_key = seed
        .api_key(Some(&seed.tenant), &["keys:rotate", "keys:read"])
        .await;
    let env = redis_env();
    let instance_a = start(&seed.state.config, port_a, &env).await;
    let instance_b = start(&seed.state.config, port_b, &env).await;
    // One browser (cookies are per host, not per port: the same session on both).
    let browser = http_client(Default::default());
    let a = TestApp::at(
        instance_a.address.clone(),
        seed.state.clone(),
        seed.tenant.clone(),
        browser.clone(),
    );
    let b = TestApp::at(
        instance_b.address.clone(),
        seed.state.clone(),
        seed.tenant.clone(),
        browser.clone(),
    );

    // Sign in on A; B knows the session and answers the authorization without a sign-in.
    let (code_a, verifier_a) = a.code_for(&browser, &client, "ana@acme.test", &[]).await;
    let (code_b, verifier_b) = b.code_for(&browser, &client, "ana@acme.test", &[]).await;
    // A code issued by A is redeemed on B, and the other way round.
    let tokens_1 = exchange(&b, &client, &code_a, &verifier_a).await;
    let tokens_2 = exchange(&a, &client, &code_b, &verifier_b).await;
    assert_eq!(
        jwt_claims(tokens_1["id_token"].as_str().unwrap())["sid"],
        jwt_claims(tokens_2["id_token"].as_str().unwrap())["sid"],
        "one browser session across instances"
    );

    // Concurrent refreshes of one token on A and B: exactly one wins, and the loser's
    // presentation is reuse, which revokes the family — the winner's new token included.
    for tokens in [&tokens_1, &tokens_2] {
        let rt = tokens["refresh_token"].as_str().unwrap();
        let (ra, rb) = tokio::join!(refresh(&a, &client, rt), refresh(&b, &client, rt));
        let (winner, loser) = if ra.0 == 200 { (ra, rb) } else { (rb, ra) };
        assert_eq!(winner.0, 200, "{winner:?} / {loser:?}");
        assert_eq!(loser.0, 400, "{loser:?}");
        assert_eq!(loser.1["error"], "invalid_grant");
        let next = winner.1["refresh_token"].as_str().unwrap();
        let (status, body) = refresh(&b, &client, next).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let (status, _) = refresh(&a, &client, next).await;
        assert_eq!(status, 400);
    }

    // A revocation on A is seen on B at once.
    let at = cc(&a, &service).await;
    assert_eq!(b.introspect(&service, &at).await["active"], true);
    let r = a
        .http
        .post(a.url("/revoke"))
        .basic_auth(&service.id, service.secret.as_deref())
        .form(&[("token", at.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.introspect(&service, &at).await["active"], false);

    // Key rotation on A: B signs with the new key within seconds, and each verifies the
    // other's tokens.
    let kid = |jwt: &str| -> String {
        let header = jwt.split('.').next().unwrap();
        let h: Value =
            serde_json::from_slice(&portcullis::crypto::b64url_decode(header).unwrap()).unwrap();
        h["kid"].as_str().unwrap().to_string()
    };
    let old_kid = kid(&cc(&b, &service).await);
    let r = a
        .http
        .post(a.url("/api/v1/admin/keys/rotate"))
        .header("x-api-key", &ops_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let next_kids: Vec<String> = r.json::<Value>().await.unwrap()["data"]["next_kids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let token_b = loop {
        let t = cc(&b, &service).await;
        if kid(&t) != old_kid {
            break t;
        }
        assert!(Instant::now() < deadline, "B still signs with the old key");
        tokio::time::sleep(Duration::from_millis(700)).await;
    };
    let token_a = cc(&a, &service).await;
    assert_eq!(kid(&token_a), kid(&token_b));
    assert_eq!(a.introspect(&service, &token_b).await["active"], true);
    assert_eq!(b.introspect(&service, &token_a).await["active"], true);
    let jwks_b: Value = b.get(&b.url("/jwks")).await.json().await.unwrap();
    let published: Vec<&str> = jwks_b["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(next_kids.iter().all(|k| published.contains(&k.as_str())));
    assert!(
        published.contains(&old_kid.as_str()),
        "retired key still published"
    );

    // One rate limit across both (Redis): 40 sign-in attempts split over A and B, then 429
    // on either.
    let login = |app: &TestApp, i: usize| {
        let http = app.http.clone();
        let url = app.url("/api/v1/auth/login");
        async move {
            http.post(url)
                .json(&json!({"email": format!("nobody{i}@acme.test"), "password": "Wrong-pass-1"}))
                .send()
                .await
                .unwrap()
        }
    };
    for i in 0..40 {
        let r = login(if i % 2 == 0 { &a } else { &b }, i).await;
        assert_eq!(r.status(), 401, "attempt {i}");
    }
    for app in [&a, &b] {
        let r = login(app, 99).await;
        assert_eq!(r.status(), 429);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "RATE_LIMITED");
        assert_eq!(body["error"]["limit"], 40);
    }
    drop((instance_a, instance_b));
}

#[tokio::test]
async fn background_jobs_run_once_across_instances() {
    let (port_a, port_b) = (free_port(), free_port());
    let (seed, _dir) = seeded(port_a).await;
    let env = vec![
        ("PORTCULLIS_PURGE_INTERVAL_SECS", "2".to_string()),
        ("PORTCULLIS_KEY_ROTATION_SECS", "1".to_string()),
        ("PORTCULLIS_KEY_ROTATION_CHECK_SECS", "2".to_string()),
    ];
    let started = Instant::now();
    let mut a = start(&seed.state.config, port_a, &env).await;
    let mut b = start(&seed.state.config, port_b, &env).await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    // A graceful stop writes the queued audit events.
    assert!(a.stop().await.success());
    assert!(b.stop().await.success());
    let elapsed = started.elapsed().as_secs() as i64;
    let pool = &seed.state.pool;
    let purges = portcullis::storage::jobs::job_runs(pool, "purge")
        .await
        .unwrap();
    let rotation_runs = portcullis::storage::jobs::job_runs(pool, "key_rotation")
        .await
        .unwrap();
    // Each instance checks every 2 s; uncoordinated they would run twice as often.
    let most = elapsed / 2 + 2;
    assert!(
        (2..=most).contains(&purges),
        "{purges} purges in {elapsed} s"
    );
    assert!(
        (2..=most).contains(&rotation_runs),
        "{rotation_runs} rotation runs in {elapsed} s"
    );
    // Every rotation run rotated the tenant's keys exactly once.
    let rotations = portcullis::storage::audit::count_events(pool, "keys.rotated")
        .await
        .unwrap();
    assert!(
        (rotation_runs - 1..=rotation_runs).contains(&rotations),
        "{rotations} rotations for {rotation_runs} runs"
    );
}

/// Answers one HTTP request after `delay`, with a 404.
async fn slow_upstream(delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_terminated_instance_finishes_in_flight_requests_and_logs_json_with_the_request_id() {
    let port = free_port();
    let (seed, _dir) = seeded(port).await;
    let key = seed.api_key(Some(&seed.tenant), &["sso:configure"]).await;
    let env = vec![
        ("PORTCULLIS_LOG_FORMAT", "json".to_string()),
        ("PORTCULLIS_LOG_LEVEL", "info".to_string()),
    ];
    let mut instance = start(&seed.state.config, port, &env).await;
    let http = http_client(Default::default());
    let r = http
        .get(format!("{}/t/acme/jwks", instance.address))
        .header("x-request-id", "req-json-log-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A request that waits 1.5 s on an upstream is in flight when SIGTERM arrives.
    let upstream = slow_upstream(Duration::from_millis(1500)).await;
    let url = format!("{}/t/acme/api/v1/auth/sso/configure", instance.address);
    let in_flight = tokio::spawn({
        let http = http.clone();
        let key = key.clone();
        async move {
            http.post(url)
                .header("x-api-key", key)
                .json(
                    &json!({"provider": "google", "client_id": "c", "client_secret": "s",
                              "issuer": format!("http://127.0.0.1:{upstream}")}),
                )
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    instance.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No new connections once draining.
    assert!(reqwest::Client::new()
        .get(format!("{}/health", instance.address))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_err());
    let r = in_flight
        .await
        .unwrap()
        .expect("the in-flight request got its answer");
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "VALIDATION_FAILED"
    );
    let status = instance.stop_waiting().await;
    assert!(status.success(), "{status}");

    let log = instance.log.lock().unwrap().clone();
    let access = log
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["request_id"] == "req-json-log-1")
        .unwrap_or_else(|| panic!("no JSON access log line with the request id in {log:?}"));
    assert_eq!(access["fields"]["path"], "/t/acme/jwks");
    assert_eq!(access["fields"]["status"], 200);
    assert_eq!(access["span"]["request_id"], "req-json-log-1");
}
