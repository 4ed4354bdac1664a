//! Tenant fairness: a sign-in flood against one tenant, from many addresses behind a trusted
//! proxy, while another tenant's token endpoint is measured. The other tenant keeps
//! answering — no 5xx, no 429 — and its latency is printed (not asserted: figures belong to
//! the closing notes and the benchmark, not to a test's pass/fail).

use std::time::{Duration, Instant};

use portcullis::clients::{self, GrantType, NewClient, RedirectUri};
use portcullis::config::Config;
use serde_json::json;

use crate::helpers::*;

const FLOODERS: usize = 24;
const FLOOD: Duration = Duration::from_secs(5);
const PROBES: usize = 150;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// `n` sequential client_credentials requests of `client` at `issuer`, each from its own
/// address (so the per-address limits of the token endpoint do not count against one).
async fn probe(
    http: &reqwest::Client,
    issuer: &str,
    client: &TestClient,
    n: usize,
    first: usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for i in first..first + n {
        let started = Instant::now();
        let r = http
            .post(format!("{issuer}/token"))
            .basic_auth(&client.id, client.secret.as_deref())
            .header(
                "x-forwarded-for",
                format!("198.51.{}.{}", i / 250, i % 250 + 1),
            )
            .form(&[("grant_type", "client_credentials"), ("scope", "api")])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "the measured tenant answered {status}: {body}");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn summary(l: &[Duration]) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(l, 0.50).as_secs_f64() * 1e3,
        percentile(l, 0.99).as_secs_f64() * 1e3,
        l[l.len() - 1].as_secs_f64() * 1e3
    )
}

#[tokio::test]
async fn a_sign_in_flood_on_one_tenant_leaves_another_tenants_token_endpoint_answering() {
    let app = spawn_app_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        // The cost of a real deployment: the flood is what makes the server busy.
        c.argon2 = Config::default().argon2;
        c.workers = 2;
    })
    .await;
    app.create_user("ana@example.com").await;
    let other = app.create_tenant("other").await;
    let mut new = NewClient::new("Measured service");
    new.redirect_uris = vec![RedirectUri::parse(REDIRECT_URI).unwrap()];
    new.grant_types = vec![GrantType::ClientCredentials];
    new.scopes = vec!["api".into()];
    let (c, secret) = clients::create_client(app.state.clients(), &other, new)
        .await
        .unwrap();
    let measured = TestClient { id: c.id, secret };
    let other_issuer = format!("{}/t/other", app.address);

    let baseline = probe(&app.http, &other_issuer, &measured, PROBES, 0).await;

    // The flood: wrong passwords for a real and for unknown accounts, at the JSON API and
    // the sign-in form, each request from another address.
    let deadline = Instant::now() + FLOOD;
    let mut flood = Vec::new();
    for f in 0..FLOODERS {
        let http = reqwest::Client::new();
        let login = app.url("/api/v1/auth/login");
        flood.push(tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
            let mut i = 0u32;
            while Instant::now() < deadline {
                let email = if i.is_multiple_of(2) {
                    "ana@example.com".to_string()
                } else {
                    format!("nobody{f}-{i}@example.com")
                };
                let r = http
                    .post(&login)
                    .header(
                        "x-forwarded-for",
                        format!("10.{f}.{}.{}", i / 250, i % 250 + 1),
                    )
                    .json(&json!({"email": email, "password": "Wrong-password-1"}))
                    .send()
                    .await
                    .unwrap();
                *statuses.entry(r.status().as_u16()).or_default() += 1;
                i += 1;
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let under_flood = probe(&app.http, &other_issuer, &measured, PROBES, PROBES).await;
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for task in flood {
        for (s, n) in task.await.unwrap() {
            *statuses.entry(s).or_default() += n;
        }
    }
    assert!(
        statuses.keys().all(|s| *s < 500),
        "the flooded tenant answered {statuses:?}"
    );
    eprintln!(
        "fairness: flood of {} sign-ins ({statuses:?}) by {FLOODERS} clients for {FLOOD:?}; \
         other tenant's /token: alone {}; under the flood {}",
        statuses.values().sum::<u32>(),
        summary(&baseline),
        summary(&under_flood)
    );
}
