//! Federation against independent implementations started by the test: the Node.js
//! `oidc-provider` (standing in for Google and enterprise OIDC) and a pysaml2 identity
//! provider signing real SAML responses (tests/peers; `.ci/dev test` installs them).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use regex::Regex;
use serde_json::{json, Value};

use crate::helpers::{
    jwt_claims, param, parse_form, query_of, spawn_app, unescape, ClientOptions, TestApp,
    TestClient, REDIRECT_URI,
};

/// A peer process, killed when dropped.
pub(crate) struct Peer {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_peer(mut cmd: Command, what: &str) -> Peer {
    let root = env!("CARGO_MANIFEST_DIR");
    cmd.current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null());
    // A peer normally answers within seconds; a start that gives no LISTENING line within 60 s
    // is retried once (seen rarely on a loaded 2-core machine), then fails the test with what
    // became of the process.
    let mut last = String::new();
    for _ in 0..2 {
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start the {what} peer ({e}); run `bash .ci/dev test`")
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The LISTENING line, skipping anything the runtime prints before it.
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.starts_with("LISTENING ") => break,
                    Ok(_) => continue,
                }
            }
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_default();
        if let Some(base) = line.trim().strip_prefix("LISTENING ").map(str::to_string) {
            return Peer { child, base };
        }
        let exited = child.try_wait().ok().flatten();
        let _ = child.kill();
        let _ = child.wait();
        last = match exited {
            Some(status) => format!("it exited ({status}) before LISTENING: {line:?}"),
            None => "no LISTENING line within 60 s".to_string(),
        };
    }
    panic!("the {what} peer did not start: {last}; run `bash .ci/dev test`");
}

pub(crate) const UPSTREAM_CLIENT: &str = "portcullis-test";
pub(crate) const UPSTREAM_SECRET: &str = "upstream-secret-0123456789";

pub(crate) fn oidc_peer(app: &TestApp) -> Peer {
    let mut cmd = Command::new("node");
    cmd.arg("tests/peers/oidc/upstream.mjs")
        .env("CLIENT_ID", UPSTREAM_CLIENT)
        .env("CLIENT_SECRET", UPSTREAM_SECRET)
        .env("REDIRECT_URI", app.url("/federation/oidc/callback"));
    start_peer(cmd, "OIDC (oidc-provider)")
}

pub(crate) fn saml_peer() -> Peer {
    let mut cmd = Command::new("python3");
    cmd.args(["tests/peers/saml/idp.py", "--port", "0"]);
    start_peer(cmd, "SAML (pysaml2)")
}

/// An administrator's first-party token.
pub(crate) async fn admin_token(app: &TestApp) -> String {
    app.create_user_with_roles("root@admin.test", &["admin"])
        .await;
    app.login("root@admin.test").await
}

pub(crate) async fn configure(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/sso/configure"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The Location of a redirect, resolved against the request's URL.
pub(crate) fn location(r: &reqwest::Response) -> String {
    r.url()
        .join(r.headers()["location"].to_str().unwrap())
        .unwrap()
        .to_string()
}

fn authorize_url(app: &TestApp, client: &TestClient) -> String {
    format!(
        "{}?{}",
        app.url("/authorize"),
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "openid profile email"),
            ("state", "st-fed"),
            ("nonce", "n-fed"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
            ),
            ("code_challenge_method", "S256"),
        ])
        .unwrap()
    )
}
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Starts an authorization request and presses "Continue with Google" (`connection`) or
/// "Single sign-on" with `email` on the sign-in page; returns the upstream URL.
pub(crate) async fn start_from_sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    client: &TestClient,
    button: (&str, &str),
) -> String {
    let r = browser
        .get(authorize_url(app, client))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let page = browser
        .get(location(&r))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = parse_form(&page); // the last form: Google's when it is shown
    let mut fields = form.hidden.clone();
    fields.push((button.0.into(), button.1.into()));
    let action = unescape(
        &Regex::new(r#"formaction="([^"]+)""#)
            .unwrap()
            .captures(&page)
            .map(|c| c[1].to_string())
            .unwrap_or(form.action.clone()),
    );
    let r = browser.post(&action).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    location(&r)
}

/// Signs in at the oidc-provider peer as `login`; returns our callback URL it redirects to.
async fn upstream_sign_in(browser: &reqwest::Client, upstream: &str, login: &str) -> String {
    let form_action = Regex::new(r#"<form[^>]*action="([^"]+)""#).unwrap();
    let hidden_input =
        Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)""#).unwrap();
    let mut next = upstream.to_string();
    for _ in 0..6 {
        let r = browser.get(&next).send().await.unwrap();
        if r.status().is_redirection() {
            next = location(&r);
            if next.contains("/federation/oidc/callback") {
                return next;
            }
            continue;
        }
        let html = r.text().await.unwrap();
        let action = form_action.captures(&html).unwrap()[1].to_string();
        let hidden: Vec<(String, String)> = hidden_input
            .captures_iter(&html)
            .map(|c| (c[1].to_string(), c[2].to_string()))
            .collect();
        let mut fields = hidden;
        fields.push(("login".into(), login.into()));
        fields.push(("password".into(), "whatever".into()));
        let r = browser.post(&action).form(&fields).send().await.unwrap();
        next = location(&r);
        if next.contains("/federation/oidc/callback") {
            return next;
        }
    }
    panic!("the upstream never redirected back");
}

pub(crate) async fn redeem(app: &TestApp, client: &TestClient, redirect: &str) -> Value {
    let q = query_of(redirect);
    let code = param(&q, "code").unwrap_or_else(|| panic!("no code in {redirect}"));
    assert_eq!(param(&q, "state").as_deref(), Some("st-fed"));
    let r = app
        .token(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// `POST /admin/sso/{id}/test`: the report.
pub(crate) async fn test_connection(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app
        .http
        .post(app.url(&format!("/api/v1/admin/sso/{id}/test")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

pub(crate) async fn audit_events(app: &TestApp, token: &str, event: &str) -> Vec<Value> {
    app.state.audit.flush().await;
    let r = app
        .http
        .get(app.url(&format!("/api/v1/admin/audit?event={event}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn google_sign_in_with_an_independent_oidc_provider() {
    let app = spawn_app().await;
    let peer = oidc_peer(&app);
    let token = admin_token(&app).await;
    // Configuration: the upstream's discovery is checked; the secret is never shown back.
    let r = configure(
        &app,
        &token,
        json!({"protocol": "oidc", "provider": "google", "issuer": peer.base,
               "client_id": UPSTREAM_CLIENT, "client_secret": UPSTREAM_SECRET}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let conn: Value = r.json().await.unwrap();
    assert_eq!(conn["data"]["provider"], "google");
    assert_eq!(conn["data"]["client_secret_set"], true);
    assert!(!conn.to_string().contains(UPSTREAM_SECRET));
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;

    let browser = app.new_browser();
    let upstream = start_from_sign_in(&app, &browser, &client, ("connection", "google")).await;
    assert!(upstream.starts_with(&peer.base), "{upstream}");
    let q = query_of(&upstream);
    assert_eq!(param(&q, "code_challenge_method").as_deref(), Some("S256"));
    assert!(param(&q, "nonce").is_some() && param(&q, "state").is_some());
    let callback = upstream_sign_in(&browser, &upstream, "alice@example.com").await;
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let tokens = redeem(&app, &client, &location(&r)).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["fed"]));
    let info = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], true);
    // The upstream's profile claims provisioned the user.
    assert_eq!(info["given_name"], "Alice", "{info}");
    let sub = id["sub"].as_str().unwrap().to_string();

    // The callback is single use.
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("(replayed)"));

    // The same upstream subject signs in again as the same (linked) user, without a new
    // upstream login prompt mattering: a fresh browser.
    let browser2 = app.new_browser();
    let upstream = start_from_sign_in(&app, &browser2, &client, ("connection", "google")).await;
    let callback = upstream_sign_in(&browser2, &upstream, "alice@example.com").await;
    let r = browser2.get(&callback).send().await.unwrap();
    let tokens = redeem(&app, &client, &location(&r)).await;
    assert_eq!(jwt_claims(tokens["id_token"].as_str().unwrap())["sub"], sub);

    // Login CSRF: a callback URL delivered to another browser is refused.
    let attacker = app.new_browser();
    let upstream = start_from_sign_in(&app, &attacker, &client, ("connection", "google")).await;
    let callback = upstream_sign_in(&attacker, &upstream, "mallory@example.com").await;
    let victim = app.new_browser();
    let r = victim.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("(browser_mismatch)"));

    // The user cancels at the upstream: a clear page, and the relying party gets
    // access_denied with its state.
    let browser3 = app.new_browser();
    let upstream = start_from_sign_in(&app, &browser3, &client, ("connection", "google")).await;
    let r = browser3.get(&upstream).send().await.unwrap();
    let mut next = format!("{}/abort", location(&r));
    let callback = loop {
        let r = browser3.get(&next).send().await.unwrap();
        next = location(&r);
        if next.contains("/federation/oidc/callback") {
            break next;
        }
    };
    let r = browser3.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("was cancelled") && page.contains("(cancelled)"),
        "{page}"
    );
    let back = unescape(
        &Regex::new(r#"<a class="button" href="([^"]+)""#)
            .unwrap()
            .captures(&page)
            .unwrap()[1]
            .replace("&#38;", "&")
            .replace("&amp;", "&"),
    );
    let q = query_of(&back);
    assert!(back.starts_with(REDIRECT_URI));
    assert_eq!(param(&q, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&q, "state").as_deref(), Some("st-fed"));

    // Audit: sign-ins with the upstream's identifiers, failures with their reasons.
    let signins = audit_events(&app, &token, "federation.signin").await;
    assert_eq!(signins.len(), 2); // alice twice; the forged callback never completes
    assert_eq!(signins[0]["details"]["upstream_issuer"], peer.base.as_str());
    let failures = audit_events(&app, &token, "federation.failure").await;
    let reasons: Vec<&str> = failures
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    for want in ["replayed", "browser_mismatch", "cancelled"] {
        assert!(reasons.contains(&want), "{reasons:?}");
    }
}

#[tokio::test]
async fn oidc_upstream_links_by_verified_email_only_when_allowed() {
    let app = spawn_app().await;
    let peer = oidc_peer(&app);
    let token = admin_token(&app).await;
    let existing = app.create_user("erin@example.org").await;
    app.create_user("unverified-dan@example.org").await;
    app.create_user("gina@example.net").await;
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    // Google: no linking to existing accounts.
    let r = configure(
        &app,
        &token,
        json!({"provider": "google", "issuer": peer.base,
               "client_id": UPSTREAM_CLIENT, "client_secret": UPSTREAM_SECRET}),
    )
    .await;
    assert_eq!(r.status(), 201);
    // Enterprise OIDC for example.org, linking by verified e-mail, groups → roles.
    let r = configure(
        &app,
        &token,
        json!({"protocol": "oidc", "name": "Example Org", "issuer": peer.base,
               "client_id": UPSTREAM_CLIENT, "client_secret": UPSTREAM_SECRET,
               "domains": ["example.org"], "link_by_email": true,
               "attribute_mapping": {"roles": "groups", "role_values": {"engineering": "admin"}}}),
    )
    .await;
    assert_eq!(r.status(), 201);

    let flow = |login: &'static str, button: (&'static str, &'static str)| {
        let app = &app;
        let client = &client;
        async move {
            let browser = app.new_browser();
            let upstream = start_from_sign_in(app, &browser, client, button).await;
            let callback = upstream_sign_in(&browser, &upstream, login).await;
            browser.get(&callback).send().await.unwrap()
        }
    };
    // Existing account, Google (no linking): not taken over; the person is offered to
    // link it after signing in with the existing method.
    let r = flow("gina@example.net", ("connection", "google")).await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(page.contains("Link your sign-in method"), "{page}");
    assert!(page.contains("gina@example.net"));
    // Existing account, upstream says the address is not verified: the same.
    let r = flow(
        "unverified-dan@example.org",
        ("email", "unverified-dan@example.org"),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("Link your sign-in method"));
    // Verified address and linking allowed: the existing account, with mapped roles.
    let r = flow("erin@example.org", ("email", "erin@example.org")).await;
    assert_eq!(r.status(), 302);
    let tokens = redeem(&app, &client, &location(&r)).await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["sub"],
        existing
    );
    let access = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert!(access["roles"]
        .as_array()
        .unwrap()
        .contains(&json!("admin")));

    // Home-realm discovery: a domain without a connection stays on the sign-in page.
    let browser = app.new_browser();
    let r = browser
        .get(authorize_url(&app, &client))
        .send()
        .await
        .unwrap();
    let page = browser
        .get(location(&r))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Continue with Google") && page.contains("Single sign-on"));
    let form = parse_form(&page);
    let mut fields = form.hidden.clone();
    fields.push(("email".into(), "someone@nowhere.test".into()));
    let r = browser
        .post(app.url("/federation/start"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("not set up for this e-mail domain"));
}

#[tokio::test]
async fn sso_login_api_returns_first_party_tokens() {
    let app = spawn_app().await;
    let peer = oidc_peer(&app);
    let token = admin_token(&app).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "oidc", "name": "Corp", "issuer": peer.base,
               "client_id": UPSTREAM_CLIENT, "client_secret": UPSTREAM_SECRET,
               "domains": ["corp.example"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    // Bad configurations are refused with the reason, and nothing is stored.
    for (body, needle) in [
        (
            json!({"protocol": "oidc", "issuer": "http://203.0.113.9", "client_id": "x", "client_secret": "y"}),
            "https",
        ),
        (
            json!({"protocol": "oidc", "issuer": format!("{}/nope", peer.base), "client_id": "x", "client_secret": "y"}),
            "discovery failed",
        ),
        (
            json!({"protocol": "oidc", "issuer": peer.base}),
            "client_id",
        ),
        (json!({"protocol": "ws-fed"}), "protocol"),
        (
            json!({"protocol": "oidc", "issuer": peer.base, "client_id": "x", "client_secret": "y", "domains": ["corp.example"]}),
            "already belongs",
        ),
    ] {
        let r = configure(&app, &token, body).await;
        assert_eq!(r.status(), 422);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "VALIDATION_FAILED");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{e}"
        );
    }
    let list: Value = app
        .http
        .get(app.url("/api/v1/admin/sso"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Permission: a plain user cannot configure.
    app.create_user("plain@corp.example").await;
    let plain = app.login("plain@corp.example").await;
    let r = configure(&app, &plain, json!({"protocol": "oidc"})).await;
    assert_eq!(r.status(), 403);

    let browser = app.new_browser();
    let r = browser
        .get(format!(
            "{}/api/v1/auth/sso/login?tenant={}&domain=corp.example",
            app.address, app.tenant.slug
        ))
        .send()
        .await
        .unwrap();
    // At the root without a default tenant: redirected under the tenant's issuer.
    assert_eq!(r.status(), 302);
    let r = browser.get(location(&r)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let callback = upstream_sign_in(&browser, &location(&r), "zoe@corp.example").await;
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let access = body["data"]["token"].as_str().unwrap();
    assert!(body["data"]["refresh_token"].as_str().is_some());
    let me: Value = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["email"], "zoe@corp.example");
    assert_eq!(jwt_claims(access)["amr"], json!(["fed"]));

    // "Test connection".
    let id = list["data"][0]["id"].as_str().unwrap();
    let r = test_connection(&app, &token, id).await;
    assert_eq!(r["data"]["ok"], true, "{r}");
}

/// The SAML peer's auto-post form: ACS action, SAMLResponse, RelayState.
pub(crate) fn saml_form(html: &str) -> (String, Vec<(String, String)>) {
    let action = Regex::new(r#"<form method="post" action="([^"]+)""#)
        .unwrap()
        .captures(html)
        .unwrap()[1]
        .replace("&amp;", "&");
    let fields = Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)""#)
        .unwrap()
        .captures_iter(html)
        .map(|c| {
            (
                c[1].to_string(),
                c[2].replace("&amp;", "&").replace("&quot;", "\""),
            )
        })
        .collect();
    (action, fields)
}

/// Follows an AuthnRequest redirect to the IdP with `mode` and posts its answer to the ACS
/// from a browser without our cookies (the IdP's POST is cross-site).
pub(crate) async fn saml_round_trip(
    app: &TestApp,
    to_idp: &str,
    user: &str,
    mode: &str,
) -> (reqwest::Response, Vec<(String, String)>) {
    let idp = app.new_browser();
    let r = idp
        .get(format!("{to_idp}&user={user}&mode={mode}"))
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    let (action, fields) = saml_form(&html);
    assert_eq!(action, app.url("/saml/acs"), "{html}");
    let r = app
        .new_browser()
        .post(&action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    (r, fields)
}

pub(crate) async fn sso_login_redirect(app: &TestApp) -> String {
    let r = app
        .new_browser()
        .get(app.url("/api/v1/auth/sso/login?domain=example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    location(&r)
}

#[tokio::test]
async fn saml_sign_in_with_an_independent_identity_provider() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let token = admin_token(&app).await;

    // SP metadata.
    let md = app
        .http
        .get(app.url("/saml/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(md.status(), 200);
    let md = md.text().await.unwrap();
    assert!(md.contains(&format!("entityID=\"{}\"", app.url("/saml/metadata"))));
    assert!(md.contains(&format!("Location=\"{}\"", app.url("/saml/acs"))));
    assert!(md.contains("X509Certificate"));
    // What the metadata declares is what the SP does (signed requests, signed assertions),
    // with a separate encryption key.
    assert!(md.contains(r#"AuthnRequestsSigned="true""#), "{md}");
    assert!(md.contains(r#"WantAssertionsSigned="true""#), "{md}");
    assert!(md.contains(r#"<md:KeyDescriptor use="signing">"#));
    assert!(md.contains(r#"<md:KeyDescriptor use="encryption">"#));
    let certs: Vec<String> = Regex::new(r"<ds:X509Certificate>([^<]+)</ds:X509Certificate>")
        .unwrap()
        .captures_iter(&md)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(certs.len(), 2);
    assert_ne!(
        certs[0], certs[1],
        "signing and encryption keys are separate"
    );
    // A connection that is not there has no metadata.
    let r = app
        .http
        .get(app.url("/saml/metadata?connection=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Bad metadata is refused, not stored.
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_xml": "<nope/>"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let idp_md = reqwest::get(format!("{}/metadata", idp.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let no_certs = Regex::new(r"(?s)<(\w+:)?KeyDescriptor.*?</(\w+:)?KeyDescriptor>")
        .unwrap()
        .replace_all(&idp_md, "")
        .to_string();
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_xml": no_certs}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no signing certificate"),
        "{e}"
    );
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_url": "http://127.0.0.1:9/metadata"}),
    )
    .await;
    assert_eq!(r.status(), 422);

    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "name": "Acme IdP", "metadata_url": format!("{}/metadata", idp.base),
               "domains": ["example.com"],
               "attribute_mapping": {"email": "email", "name": "displayName", "roles": "groups",
                                     "role_values": {"admins": "admin"}}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let conn: Value = r.json().await.unwrap();
    let conn_id = conn["data"]["id"].as_str().unwrap().to_string();

    // SP-initiated from the sign-in page; the ACS POST carries none of our cookies.
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let to_idp = start_from_sign_in(&app, &browser, &client, ("email", "alice@example.com")).await;
    assert!(
        to_idp.starts_with(&format!("{}/sso?SAMLRequest=", idp.base)),
        "{to_idp}"
    );
    assert!(
        to_idp.contains("&Signature="),
        "the IdP wants signed requests"
    );
    let (r, _) = saml_round_trip(&app, &to_idp, "alice@example.com", "ok").await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let tokens = redeem(&app, &client, &location(&r)).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    let info = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(id["amr"], json!(["fed"]));
    let access = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert!(access["roles"]
        .as_array()
        .unwrap()
        .contains(&json!("admin")));

    // Signed only the assertion, and by the IdP's second certificate.
    for mode in ["assertion_only", "rollover"] {
        let (r, _) = saml_round_trip(
            &app,
            &sso_login_redirect(&app).await,
            "alice@example.com",
            mode,
        )
        .await;
        assert_eq!(r.status(), 200, "{mode}: {}", r.text().await.unwrap());
        let body: Value = r.json().await.unwrap();
        assert!(body["data"]["token"].is_string(), "{mode}");
    }

    // Each forged or unfit response fails for its own reason.
    for (mode, reason) in [
        ("unsigned", "unsigned"),
        // WantAssertionsSigned="true": a signed Response around an unsigned assertion is
        // not enough for this connection.
        ("response_only", "assertion_unsigned"),
        ("rogue", "signature_invalid"),
        ("expired", "expired"),
        ("wrong_audience", "audience_mismatch"),
        ("wrong_destination", "destination_mismatch"),
        ("wrong_in_response_to", "in_response_to_mismatch"),
        ("xsw", "multiple_assertions"),
        ("xsw2", "multiple_assertions"),
    ] {
        let (r, _) = saml_round_trip(
            &app,
            &sso_login_redirect(&app).await,
            "alice@example.com",
            mode,
        )
        .await;
        assert_eq!(r.status(), 400, "{mode}");
        let page = r.text().await.unwrap();
        assert!(page.contains(&format!("({reason})")), "{mode}: {page}");
        assert!(!page.contains("mallory"), "{mode}");
    }

    // Replay of an accepted response.
    let (r, fields) = saml_round_trip(
        &app,
        &sso_login_redirect(&app).await,
        "alice@example.com",
        "ok",
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = app
        .new_browser()
        .post(app.url("/saml/acs"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("(replayed)"));

    // Unsolicited responses are refused unless the connection allows them.
    let idp_initiated = format!(
        "{}/idp-initiated?sp={}",
        idp.base,
        url_encode(&app.url("/saml/metadata"))
    );
    let html = app
        .new_browser()
        .get(format!("{idp_initiated}&user=alice@example.com"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, fields) = saml_form(&html);
    let r = app
        .new_browser()
        .post(&action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("(unsolicited)"));

    // Audit of failures with reasons and the connection; test connection.
    let failures = audit_events(&app, &token, "federation.failure").await;
    let reasons: Vec<&str> = failures
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    for want in [
        "unsigned",
        "assertion_unsigned",
        "signature_invalid",
        "expired",
        "audience_mismatch",
        "destination_mismatch",
        "in_response_to_mismatch",
        "multiple_assertions",
        "replayed",
        "unsolicited",
    ] {
        assert!(reasons.contains(&want), "{want} not in {reasons:?}");
    }
    let signins = audit_events(&app, &token, "federation.signin").await;
    assert!(signins
        .iter()
        .all(|e| e["details"]["connection"] == conn_id.as_str()));
    assert_eq!(
        signins[0]["details"]["upstream_subject"],
        "alice@example.com"
    );
    let r = test_connection(&app, &token, &conn_id).await;
    assert_eq!(r["data"]["ok"], true, "{r}");
    let names: Vec<&str> = r["data"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["metadata_fetch", "metadata", "certificates", "sso_endpoint"]
    );
}

#[tokio::test]
async fn saml_idp_initiated_when_enabled() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let token = admin_token(&app).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_url": format!("{}/metadata", idp.base),
               "allow_idp_initiated": true}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let browser = app.new_browser();
    let html = browser
        .get(format!(
            "{}/idp-initiated?sp={}&user=ivy@example.com",
            idp.base,
            url_encode(&app.url("/saml/metadata"))
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, fields) = saml_form(&html);
    let r = browser.post(&action).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), app.url("/account"));
    let r = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("ivy@example.com"));
    // A response answering some request is not unsolicited.
    let r = browser
        .get(format!(
            "{}/idp-initiated?sp={}&user=ivy@example.com&mode=wrong_in_response_to",
            idp.base,
            url_encode(&app.url("/saml/metadata"))
        ))
        .send()
        .await
        .unwrap();
    let (action, fields) = saml_form(&r.text().await.unwrap());
    let r = app
        .new_browser()
        .post(&action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("(in_response_to_mismatch)"));
}

pub(crate) fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn the_second_factor_follows_a_federated_sign_in_when_the_connection_applies_it() {
    let app = spawn_app().await;
    let peer = oidc_peer(&app);
    let token = admin_token(&app).await;
    let user = app.create_user("mia@example.org").await;
    let secret = crate::mfa::enroll(&app, &user).await;
    crate::mfa::set_policy(&app, portcullis::tenants::MfaPolicy::Optional).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "oidc", "name": "Org", "issuer": peer.base,
               "client_id": UPSTREAM_CLIENT, "client_secret": UPSTREAM_SECRET,
               "domains": ["example.org"], "link_by_email": true, "apply_mfa_policy": true}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let upstream = start_from_sign_in(&app, &browser, &client, ("email", "mia@example.org")).await;
    let callback = upstream_sign_in(&browser, &upstream, "mia@example.org").await;
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let mfa = location(&r);
    assert!(mfa.starts_with(&app.url("/mfa?request=")), "{mfa}");
    let page = browser
        .get(&mfa)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Authentication code"));
    let form = parse_form(&page);
    let mut fields = form.hidden.clone();
    fields.push(("code".into(), crate::mfa::code_at(&secret, 0)));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let tokens = redeem(&app, &client, &location(&r)).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], user);
    assert_eq!(id["amr"], json!(["fed", "otp"]));
    assert_eq!(id["acr"], "2");
}

/// The account page's "Linked sign-in methods" section: names and the CSRF token.
async fn account_page(app: &TestApp, browser: &reqwest::Client) -> (String, String) {
    let r = browser.get(app.url("/account")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let csrf = Regex::new(r#"name="csrf_token" value="([^"]+)""#)
        .unwrap()
        .captures(&page)
        .unwrap()[1]
        .to_string();
    (page, csrf)
}

#[tokio::test]
async fn a_person_whose_address_exists_links_the_new_method_after_signing_in() {
    let app = spawn_app().await;
    let peer = oidc_peer(&app);
    let token = admin_token(&app).await;
    let gina = app.create_user("gina@example.net").await;
    let r = configure(
        &app,
        &token,
        json!({"provider": "google", "issuer": peer.base,
               "client_id": UPSTREAM_CLIENT, "client_secret": UPSTREAM_SECRET}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let google: Value = r.json().await.unwrap();
    let google_id = google["data"]["id"].as_str().unwrap().to_string();
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;

    // Google says gina@example.net; the account exists and Google may not take it over.
    let browser = app.new_browser();
    let upstream = start_from_sign_in(&app, &browser, &client, ("connection", "google")).await;
    let callback = upstream_sign_in(&browser, &upstream, "gina@example.net").await;
    let r = browser
        .get(&callback)
        .header("accept-language", "pt-BR")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(page.contains("Vincule seu método de login"), "{page}");
    assert!(page.contains("Entrar para vincular"));
    let action = unescape(
        &Regex::new(r#"<a class="button" href="([^"]+)""#)
            .unwrap()
            .captures(&page)
            .unwrap()[1],
    );
    assert!(action.starts_with(&app.url("/login?request=")), "{action}");

    // The sign-in page of the same request; the password links Google, and the request
    // continues to the application.
    let page = browser
        .get(&action)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = Regex::new(r#"(?s)<form method="post" action="[^"]*/login".*?</form>"#)
        .unwrap()
        .find(&page)
        .unwrap()
        .as_str()
        .to_string();
    let form = parse_form(&form);
    let mut fields = form.hidden.clone();
    fields.push(("email".into(), "gina@example.net".into()));
    fields.push(("password".into(), crate::helpers::PASSWORD.into()));
    let r = browser
        .post(&form.action)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let cleared = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("portcullis_link=;"));
    assert!(cleared, "the link cookie is cleared");
    let tokens = redeem(&app, &client, &location(&r)).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], gina);
    assert_eq!(id["amr"], json!(["pwd"]));

    // From now on Google signs gina in, in a fresh browser.
    let fresh = app.new_browser();
    let upstream = start_from_sign_in(&app, &fresh, &client, ("connection", "google")).await;
    let callback = upstream_sign_in(&fresh, &upstream, "gina@example.net").await;
    let r = fresh.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let tokens = redeem(&app, &client, &location(&r)).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], gina);
    assert_eq!(id["amr"], json!(["fed"]));

    // The account page lists it; unlinking it (gina has a password) works…
    let (page, csrf) = account_page(&app, &browser).await;
    assert!(page.contains("Linked sign-in methods"));
    assert!(page.contains("Google · linked"), "{page}");
    let r = browser
        .post(app.url("/account/linked/remove"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("connection", google_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("The sign-in method was unlinked."));
    assert!(page.contains("Link Google"), "{page}");
    // …a forged form changes nothing…
    let r = browser
        .post(app.url("/account/linked/remove"))
        .form(&[("csrf_token", "forged"), ("connection", google_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // …and "Link Google" from the account page links it again, without a new password.
    let (_, csrf) = account_page(&app, &browser).await;
    let r = browser
        .post(app.url("/account/linked/add"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("connection", google_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let callback = upstream_sign_in(&browser, &location(&r), "gina@example.net").await;
    let r = browser.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Google is now linked to your account."));

    // A user Google created (no password) cannot remove their only way to sign in.
    let newbie = app.new_browser();
    let upstream = start_from_sign_in(&app, &newbie, &client, ("connection", "google")).await;
    let callback = upstream_sign_in(&newbie, &upstream, "newbie@example.com").await;
    assert_eq!(newbie.get(&callback).send().await.unwrap().status(), 302);
    let (_, csrf) = account_page(&app, &newbie).await;
    let r = newbie
        .post(app.url("/account/linked/remove"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("connection", google_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("This is the only way to sign in to this account"));

    let linked = audit_events(&app, &token, "federation.linked").await;
    let channels: Vec<&str> = linked
        .iter()
        .map(|e| e["details"]["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels.len(), 2, "{channels:?}");
    assert!(channels.contains(&"sign_in") && channels.contains(&"account"));
    assert!(
        linked.iter().all(|e| e["actor"] == gina.as_str()),
        "{linked:?}"
    );
    let unlinked = audit_events(&app, &token, "federation.unlinked").await;
    assert_eq!(unlinked.len(), 1);
}
