//! SAML against SimpleSAMLphp (Debian's package under `php -S`, tests/peers/simplesamlphp):
//! an independent IdP that reads Portcullis's SP metadata with its own parser and enforces
//! what it declares — signed AuthnRequests, the encryption certificate, NameID formats,
//! signed logout messages. The same Single Logout and encrypted-assertion tests run against
//! the pysaml2 peer (tests/peers/saml), whose negative modes live in `federation.rs`.

use std::path::PathBuf;
use std::process::Command;

use regex::Regex;
use serde_json::{json, Value};

use crate::federation::{
    admin_token, audit_events, configure, location, redeem, saml_form, saml_peer, saml_round_trip,
    sso_login_redirect, start_from_sign_in, start_peer, test_connection, url_encode, Peer,
};
use crate::helpers::{jwt_claims, spawn_app, unescape, ClientOptions, TestApp};

/// The SimpleSAMLphp peer and its working directory (removed when dropped).
struct Ssp {
    peer: Peer,
    dir: PathBuf,
}

impl Drop for Ssp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Ssp {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("pc-ssp-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg("tests/peers/simplesamlphp/idp.py")
            .env("SSP_PEER_DIR", &dir);
        let peer = start_peer(cmd, "SAML (SimpleSAMLphp)");
        Self { peer, dir }
    }

    fn metadata_url(&self) -> String {
        format!("{}/saml2/idp/metadata.php", self.peer.base)
    }

    /// The SP metadata the IdP loads (through its own metadata parser) from now on.
    fn trust_sp(&self, url: &str) {
        std::fs::write(self.dir.join("sp-url"), url).unwrap();
    }

    fn options(&self, o: Value) {
        std::fs::write(self.dir.join("options.json"), o.to_string()).unwrap();
    }
}

/// SimpleSAMLphp's auto-post form: action and hidden fields.
fn post_form(html: &str) -> (String, Vec<(String, String)>) {
    let action = Regex::new(r#"<form[^>]*action="([^"]*)""#)
        .unwrap()
        .captures(html)
        .map(|c| unescape(&c[1]))
        .unwrap_or_default();
    let fields = Regex::new(r#"<input[^>]*name="([^"]+)"[^>]*value="([^"]*)""#)
        .unwrap()
        .captures_iter(html)
        .map(|c| (c[1].to_string(), unescape(&c[2])))
        .collect();
    (action, fields)
}

/// SimpleSAMLphp's error page, reduced to its cause.
fn ssp_error(status: reqwest::StatusCode, html: &str) -> String {
    let cause = html
        .split("Caused by: ")
        .nth(1)
        .and_then(|c| c.split('\n').next())
        .unwrap_or(html);
    format!("HTTP {status}: {}", unescape(cause))
}

/// Follows an AuthnRequest redirect to SimpleSAMLphp, signs in as `user` on its login form
/// and returns its auto-post form (ACS action and fields), or the IdP's error page.
async fn ssp_sign_in(to_idp: &str, user: &str) -> Result<(String, Vec<(String, String)>), String> {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    ssp_sign_in_with(&browser, to_idp, user).await
}

/// [`ssp_sign_in`] in a given browser (which keeps the IdP's session cookie); signs in on
/// the login form only if the IdP shows one.
async fn ssp_sign_in_with(
    browser: &reqwest::Client,
    to_idp: &str,
    user: &str,
) -> Result<(String, Vec<(String, String)>), String> {
    let action_re = Regex::new(r#"<form[^>]*action="([^"]*)""#).unwrap();
    let hidden_re = Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)""#).unwrap();
    let mut next = to_idp.to_string();
    for _ in 0..8 {
        let r = browser.get(&next).send().await.unwrap();
        if r.status().is_redirection() {
            next = location(&r);
            continue;
        }
        let url = r.url().clone();
        let status = r.status();
        let html = r.text().await.unwrap();
        if html.contains("name=\"SAMLResponse\"") {
            return Ok(post_form(&html));
        }
        if !html.contains("name=\"password\"") {
            return Err(ssp_error(status, &html));
        }
        let action = action_re
            .captures(&html)
            .map(|c| unescape(&c[1]))
            .unwrap_or_default();
        let action = url.join(&action).unwrap().to_string();
        let mut fields: Vec<(String, String)> = hidden_re
            .captures_iter(&html)
            .map(|c| (c[1].to_string(), unescape(&c[2])))
            .collect();
        fields.push(("username".into(), user.into()));
        fields.push(("password".into(), "password".into()));
        let r = browser.post(&action).form(&fields).send().await.unwrap();
        if r.status().is_redirection() {
            next = location(&r);
            continue;
        }
        let status = r.status();
        let html = r.text().await.unwrap();
        if html.contains("name=\"SAMLResponse\"") {
            return Ok(post_form(&html));
        }
        return Err(ssp_error(status, &html));
    }
    Err("SimpleSAMLphp never answered with a SAMLResponse".into())
}

/// The IdP's answer posted to our ACS from a browser without our cookies (cross-site).
async fn post_to_acs(app: &TestApp, form: (String, Vec<(String, String)>)) -> reqwest::Response {
    let (action, fields) = form;
    assert_eq!(action, app.url("/saml/acs"));
    app.new_browser()
        .post(&action)
        .form(&fields)
        .send()
        .await
        .unwrap()
}

fn saml_response_xml(fields: &[(String, String)]) -> String {
    let b64 = &fields.iter().find(|(k, _)| k == "SAMLResponse").unwrap().1;
    let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    String::from_utf8(portcullis::crypto::b64_decode(&compact).unwrap()).unwrap()
}

/// API sign-in through the connection (`GET /auth/sso/login`): the first-party token.
async fn api_sign_in(app: &TestApp, user: &str) -> Result<Value, (String, String)> {
    let form = ssp_sign_in(&sso_login_redirect(app).await, user)
        .await
        .map_err(|e| (String::new(), e))?;
    let xml = saml_response_xml(&form.1);
    let r = post_to_acs(app, form).await;
    if r.status() == 200 {
        Ok(r.json().await.unwrap())
    } else {
        Err((xml, r.text().await.unwrap()))
    }
}

#[tokio::test]
async fn simplesamlphp_signs_in_with_signed_requests_encrypted_assertions_and_rollover() {
    let app = spawn_app().await;
    let ssp = Ssp::start();
    ssp.trust_sp(&app.url("/saml/metadata"));
    let token = admin_token(&app).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "name": "SimpleSAMLphp", "metadata_url": ssp.metadata_url(),
               "domains": ["example.com"],
               "attribute_mapping": {"email": "email", "name": "displayName", "roles": "groups",
                                     "role_values": {"admins": "admin"}}}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let conn: Value = r.json().await.unwrap();
    let conn_id = conn["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(conn["data"]["sign_authn_requests"], true);
    assert_eq!(conn["data"]["want_assertions_signed"], true);

    // SP-initiated from the sign-in page: the IdP's metadata does not ask for signed
    // requests, ours says AuthnRequestsSigned="true", so the request is signed (§3.4.4.1).
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let to_idp = start_from_sign_in(&app, &browser, &client, ("email", "alice@example.com")).await;
    assert!(
        to_idp.starts_with(&format!(
            "{}/saml2/idp/SSOService.php?SAMLRequest=",
            ssp.peer.base
        )),
        "{to_idp}"
    );
    assert!(to_idp.contains("&SigAlg=") && to_idp.contains("&Signature="));
    let form = ssp_sign_in(&to_idp, "alice").await.unwrap();
    let xml = saml_response_xml(&form.1);
    assert!(!xml.contains("EncryptedAssertion"));
    let r = post_to_acs(&app, form).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let tokens = redeem(&app, &client, &location(&r)).await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    let info = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["name"], "Alice Example");
    assert_eq!(info["preferred_username"], "alice", "SAML uid");
    assert_eq!(id["amr"], json!(["fed"]));
    let access = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert!(access["roles"]
        .as_array()
        .unwrap()
        .contains(&json!("admin")));
    let sub = id["sub"].as_str().unwrap().to_string();
    // NameID negotiated from the IdP metadata: persistent (a pseudonym, not the address).
    assert!(
        xml.contains("Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent\""),
        "{xml}"
    );

    // Encrypted assertions (SimpleSAMLphp encrypts to the certificate our metadata marks
    // use="encryption"); the same persistent subject signs in as the same user.
    ssp.options(json!({"encrypt": true}));
    let form = ssp_sign_in(&sso_login_redirect(&app).await, "alice")
        .await
        .unwrap();
    let xml = saml_response_xml(&form.1);
    assert!(xml.contains("EncryptedAssertion"), "{xml}");
    assert!(
        !xml.contains("alice@example.com"),
        "the assertion is not in clear"
    );
    let r = post_to_acs(&app, form).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    let me = jwt_claims(body["data"]["token"].as_str().unwrap());
    assert_eq!(me["sub"], sub.as_str());

    // Encrypted, signed only inside (the assertion): accepted.
    ssp.options(json!({"encrypt": true, "sign_response": false}));
    api_sign_in(&app, "alice").await.unwrap();
    // Asked not to sign assertions, SimpleSAMLphp still signs them for us: our metadata
    // says WantAssertionsSigned="true" and it honours the SP's declaration (a Response-only
    // signature is refused by the pysaml2 suite's `response_only` mode).
    ssp.options(json!({"sign_assertion": false}));
    let form = ssp_sign_in(&sso_login_redirect(&app).await, "alice")
        .await
        .unwrap();
    let xml = saml_response_xml(&form.1);
    assert_eq!(xml.matches("<ds:Signature ").count(), 2, "{xml}");
    let r = post_to_acs(&app, form).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Certificate rollover: the IdP publishes its next certificate, "Test connection"
    // stores the new metadata, then the IdP signs with the new key.
    ssp.options(json!({"key": "A", "publish": ["A", "B"], "encrypt": true}));
    let report = test_connection(&app, &token, &conn_id).await;
    assert_eq!(report["data"]["ok"], true, "{report}");
    assert!(
        report.to_string().contains("2 signing certificates"),
        "{report}"
    );
    api_sign_in(&app, "alice").await.unwrap();
    ssp.options(json!({"key": "B", "publish": ["B"], "encrypt": true}));
    api_sign_in(&app, "alice").await.unwrap();
    // A key the stored metadata never published is refused.
    let rogue = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=rogue", "-keyout"])
        .arg(ssp.dir.join("cert/C.key"))
        .arg("-out")
        .arg(ssp.dir.join("cert/C.crt"))
        .output()
        .unwrap();
    assert!(rogue.status.success());
    ssp.options(json!({"key": "C", "publish": ["C"]}));
    let (_, page) = api_sign_in(&app, "alice").await.unwrap_err();
    assert!(page.contains("(signature_invalid)"), "{page}");

    let failures = audit_events(&app, &token, "federation.failure").await;
    let reasons: Vec<&str> = failures
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"signature_invalid"), "{reasons:?}");
}

#[tokio::test]
async fn unsigned_requests_are_a_per_connection_choice_that_the_metadata_states() {
    let app = spawn_app().await;
    let ssp = Ssp::start();
    let token = admin_token(&app).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_url": ssp.metadata_url(),
               "domains": ["example.com"], "sign_authn_requests": false,
               "want_assertions_signed": false,
               "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let conn: Value = r.json().await.unwrap();
    let conn_id = conn["data"]["id"].as_str().unwrap().to_string();
    let to_idp = sso_login_redirect(&app).await;
    assert!(!to_idp.contains("Signature="), "{to_idp}");

    // An IdP given the tenant's metadata (AuthnRequestsSigned="true") refuses the unsigned
    // request — exactly what a strict IdP does when the declaration is not kept.
    ssp.trust_sp(&app.url("/saml/metadata"));
    let err = ssp_sign_in(&to_idp, "bob").await.unwrap_err();
    assert!(err.contains("no signature found on message"), "{err}");

    // The connection's own metadata says what it does, and the IdP accepts it.
    let md_url = app.url(&format!("/saml/metadata?connection={conn_id}"));
    let md = reqwest::get(&md_url).await.unwrap().text().await.unwrap();
    assert!(md.contains(r#"AuthnRequestsSigned="false""#), "{md}");
    assert!(md.contains(r#"WantAssertionsSigned="false""#), "{md}");
    assert!(md.contains(
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"
    ));
    assert!(!md.contains("nameid-format:persistent"));
    ssp.trust_sp(&md_url);
    // Response-only signatures are accepted by this connection's choice.
    ssp.options(json!({"sign_assertion": false}));
    let form = ssp_sign_in(&sso_login_redirect(&app).await, "bob")
        .await
        .unwrap();
    let xml = saml_response_xml(&form.1);
    assert!(
        xml.contains(
            r#"Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">bob@example.com<"#
        ),
        "{xml}"
    );
    let r = post_to_acs(&app, form).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    // Settings that cannot work are refused with the reason.
    for (body, needle) in [
        (
            json!({"protocol": "saml2", "metadata_url": ssp.metadata_url(),
                   "name_id_format": "urn:example:custom"}),
            "name_id_format must be one of",
        ),
        (
            json!({"protocol": "oidc", "issuer": "http://127.0.0.1:9", "client_id": "x",
                   "client_secret": "y", "sign_authn_requests": false}),
            "are for saml2",
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
}

#[tokio::test]
async fn an_idp_is_chosen_by_entity_id_from_federation_metadata() {
    let app = spawn_app().await;
    let ssp = Ssp::start();
    ssp.trust_sp(&app.url("/saml/metadata"));
    let token = admin_token(&app).await;
    let one = reqwest::get(ssp.metadata_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let one = one.trim_start_matches("<?xml version=\"1.0\"?>").trim();
    // A second IdP beside it (another entity id), and an SP entry, as aggregates have.
    let other = one.replace(&ssp.metadata_url(), "https://idp.other.example/metadata");
    let sp_entry = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sp.example/metadata"><md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://sp.example/acs" index="0"/></md:SPSSODescriptor></md:EntityDescriptor>"#;
    let aggregate = format!(
        r#"<?xml version="1.0"?>
<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" Name="urn:example:federation">
{sp_entry}
{other}
{one}
</md:EntitiesDescriptor>"#
    );
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_xml": aggregate, "domains": ["example.com"]}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("describes 2 identity providers: give idp_entity_id"),
        "{e}"
    );
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_xml": aggregate, "domains": ["example.com"],
               "idp_entity_id": "https://nowhere.example/idp"}),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_xml": aggregate, "domains": ["example.com"],
               "idp_entity_id": ssp.metadata_url()}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let conn: Value = r.json().await.unwrap();
    assert_eq!(conn["data"]["idp_entity_id"], ssp.metadata_url().as_str());
    let body = api_sign_in(&app, "alice").await.unwrap();
    assert!(body["data"]["token"].is_string());
}

/// Follows redirects in `browser` from `start` until a page answers; calls `seen` with every
/// URL on the way (before it is requested). Returns the last URL and its response; a
/// redirect off the loopback host (a relying party's address) is not followed: its
/// target and the redirect are returned.
async fn follow(
    browser: &reqwest::Client,
    start: &str,
    mut seen: impl FnMut(&str),
) -> (String, reqwest::Response) {
    let mut next = start.to_string();
    for _ in 0..10 {
        seen(&next);
        let r = browser.get(&next).send().await.unwrap();
        if !r.status().is_redirection() {
            return (next, r);
        }
        next = location(&r);
        if !next.starts_with("http://127.0.0.1") {
            return (next, r);
        }
    }
    panic!("redirect loop from {start}");
}

/// Whether the browser still has a Portcullis session (the account page opens).
async fn signed_in(app: &TestApp, browser: &reqwest::Client) -> bool {
    let r = browser.get(app.url("/account")).send().await.unwrap();
    r.status() == 200
}

/// Signs in through SimpleSAMLphp from the sign-in page, in `browser` (both sides' cookies
/// kept); returns the tokens.
async fn browser_sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    client: &crate::helpers::TestClient,
    user: &str,
) -> Value {
    let to_idp = start_from_sign_in(app, browser, client, ("email", "alice@example.com")).await;
    let (action, fields) = ssp_sign_in_with(browser, &to_idp, user).await.unwrap();
    assert_eq!(action, app.url("/saml/acs"));
    let r = browser.post(&action).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    redeem(app, client, &location(&r)).await
}

#[tokio::test]
async fn simplesamlphp_single_logout_in_both_directions() {
    let app = spawn_app().await;
    let ssp = Ssp::start();
    ssp.trust_sp(&app.url("/saml/metadata"));
    let token = admin_token(&app).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_url": ssp.metadata_url(), "domains": ["example.com"]}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let md = reqwest::get(app.url("/saml/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        md.contains(&format!(
            r#"<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{}"/>"#,
            app.url("/saml/slo")
        )),
        "{md}"
    );
    let rp_done = "https://rp.example/signed-out".to_string();
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            post_logout: vec![rp_done.clone()],
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();

    // SP-initiated: /logout ends our session, then sends a signed LogoutRequest to the IdP,
    // which validates it (validate.logout), ends its session and answers with a signed
    // LogoutResponse; the browser lands where the relying party asked.
    let tokens = browser_sign_in(&app, &browser, &client, "alice").await;
    assert!(signed_in(&app, &browser).await);
    let logout = format!(
        "{}?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
        app.url("/logout"),
        tokens["id_token"].as_str().unwrap(),
        crate::federation::url_encode(&rp_done)
    );
    let r = browser.get(&logout).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let to_idp = location(&r);
    assert!(
        to_idp.starts_with(&format!(
            "{}/saml2/idp/SingleLogoutService.php?SAMLRequest=",
            ssp.peer.base
        )),
        "{to_idp}"
    );
    assert!(
        to_idp.contains("&RelayState=")
            && to_idp.contains("&SigAlg=")
            && to_idp.contains("&Signature=")
    );
    assert!(
        !signed_in(&app, &browser).await,
        "signed out here before the IdP answers"
    );
    let mut back_at_slo = None;
    let (last, r) = follow(&browser, &to_idp, |u| {
        if u.starts_with(&app.url("/saml/slo?SAMLResponse=")) {
            back_at_slo = Some(u.to_string());
        }
    })
    .await;
    let _ = r;
    assert!(
        back_at_slo.is_some(),
        "the IdP answered at our SLO endpoint"
    );
    assert_eq!(last, format!("{rp_done}?state=bye"));
    // The IdP's session ended too: signing in again asks for the password.
    let to_idp = start_from_sign_in(&app, &browser, &client, ("email", "alice@example.com")).await;
    let r = browser.get(&to_idp).send().await.unwrap();
    let (_, page) = follow(&browser, &location(&r), |_| {}).await;
    assert!(page.text().await.unwrap().contains("name=\"password\""));
    // The LogoutResponse is single use.
    let r = browser.get(back_at_slo.unwrap()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("(unknown_logout)"));

    // IdP-initiated: SimpleSAMLphp's logout sends a signed LogoutRequest to our SLO
    // endpoint; the session it names ends, and our signed LogoutResponse satisfies it.
    browser_sign_in(&app, &browser, &client, "alice").await;
    assert!(signed_in(&app, &browser).await);
    let return_to = format!("{}/saml2/idp/metadata.php", ssp.peer.base);
    let start = format!(
        "{}/saml2/idp/SingleLogoutService.php?ReturnTo={}",
        ssp.peer.base,
        crate::federation::url_encode(&return_to)
    );
    // Stop at our endpoint first to try what an attacker could send instead.
    let mut request_at_slo = None;
    let mut next = start.clone();
    for _ in 0..10 {
        if next.starts_with(&app.url("/saml/slo?SAMLRequest=")) {
            request_at_slo = Some(next.clone());
            break;
        }
        let r = browser.get(&next).send().await.unwrap();
        assert!(r.status().is_redirection(), "{}", r.text().await.unwrap());
        next = location(&r);
    }
    let request_at_slo = request_at_slo.expect("the IdP sent a LogoutRequest to our SLO endpoint");
    let unsigned = Regex::new(r"&SigAlg=[^&]*&Signature=[^&]*")
        .unwrap()
        .replace(&request_at_slo, "");
    let forged = Regex::new(r"&Signature=[^&]*")
        .unwrap()
        .replace(&request_at_slo, "&Signature=AAAA");
    for (url, reason) in [
        (unsigned.to_string(), "unsigned"),
        (forged.to_string(), "signature_invalid"),
    ] {
        let r = app.new_browser().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let page = r.text().await.unwrap();
        assert!(page.contains(&format!("({reason})")), "{reason}: {page}");
    }
    assert!(
        signed_in(&app, &browser).await,
        "refused requests end nothing"
    );
    let (last, r) = follow(&browser, &request_at_slo, |_| {}).await;
    assert_eq!(last, return_to, "the IdP accepted our LogoutResponse");
    assert_eq!(r.status(), 200);
    assert!(
        !signed_in(&app, &browser).await,
        "the IdP's LogoutRequest ended our session"
    );
    // A replayed LogoutRequest is refused.
    let r = app.new_browser().get(&request_at_slo).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("(replayed)"));

    let signouts = audit_events(&app, &token, "signout").await;
    assert!(
        signouts
            .iter()
            .any(|e| e["details"]["channel"] == "saml-slo"),
        "{signouts:?}"
    );
    let failed = audit_events(&app, &token, "federation.logout_failed").await;
    let reasons: Vec<&str> = failed
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    for r in [
        "unsigned",
        "signature_invalid",
        "replayed",
        "unknown_logout",
    ] {
        assert!(reasons.contains(&r), "{reasons:?}");
    }
}

#[tokio::test]
async fn pysaml2_encrypted_assertions_and_single_logout_in_both_directions() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let token = admin_token(&app).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_url": format!("{}/metadata", idp.base),
               "domains": ["example.com"]}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let sp = app.url("/saml/metadata");

    // Encrypted to our encryption certificate (AES-256-CBC, RSA-OAEP), assertion signed inside.
    let app_ref = &app;
    let round_trip = |mode: &'static str| async move {
        let to_idp = sso_login_redirect(app_ref).await;
        let (r, fields) = saml_round_trip(app_ref, &to_idp, "alice@example.com", mode).await;
        (saml_response_xml(&fields), r)
    };
    let (xml, r) = round_trip("encrypted").await;
    assert!(
        xml.contains("EncryptedAssertion") && xml.contains("aes256-cbc"),
        "{xml}"
    );
    assert!(
        !xml.contains("alice@example.com"),
        "the assertion is not in clear"
    );
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    assert!(body["data"]["token"].is_string());
    let (_, r) = round_trip("encrypted_unsigned").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("(unsigned)"));

    let rp_done = "https://rp.example/signed-out".to_string();
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            post_logout: vec![rp_done.clone()],
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let sign_in = || async {
        let to_idp =
            start_from_sign_in(&app, &browser, &client, ("email", "alice@example.com")).await;
        let html = browser
            .get(format!("{to_idp}&user=alice@example.com&mode=ok"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (action, fields) = saml_form(&html);
        let r = browser.post(&action).form(&fields).send().await.unwrap();
        assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
        redeem(&app, &client, &location(&r)).await
    };
    let sessions_at_idp = || async {
        reqwest::get(format!("{}/sessions?sp={}", idp.base, url_encode(&sp)))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };

    // SP-initiated: the peer checks our signature, Destination, NameID and SessionIndex
    // against the session it issued, and answers with its signed LogoutResponse.
    let tokens = sign_in().await;
    // The API sign-ins above left their own sessions at the IdP; this one is the newest.
    let held = sessions_at_idp().await;
    let mut lines: Vec<&str> = held.lines().collect();
    assert_eq!(lines.len(), 3, "{held}");
    assert!(lines[2].starts_with("alice@example.com "));
    lines.pop();
    let others: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = browser
        .get(format!(
            "{}?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
            app.url("/logout"),
            tokens["id_token"].as_str().unwrap(),
            url_encode(&rp_done)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to_idp = location(&r);
    assert!(
        to_idp.starts_with(&format!("{}/slo?SAMLRequest=", idp.base)),
        "{to_idp}"
    );
    let (last, r) = follow(&browser, &to_idp, |_| {}).await;
    assert_eq!(
        last,
        format!("{rp_done}?state=bye"),
        "{}",
        r.text().await.unwrap()
    );
    assert_eq!(
        sessions_at_idp().await,
        others,
        "the IdP ended the session the LogoutRequest named, only that one"
    );
    assert!(!signed_in(&app, &browser).await);

    // IdP-initiated: refused unless signed by a published key; then honoured, and the peer
    // accepts our signed LogoutResponse.
    sign_in().await;
    for (mode, reason) in [("unsigned", "unsigned"), ("rogue", "signature_invalid")] {
        let r = browser
            .get(format!(
                "{}/logout-initiated?sp={}&mode={mode}",
                idp.base,
                url_encode(&sp)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let r = browser.get(location(&r)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{mode}");
        assert!(
            r.text().await.unwrap().contains(&format!("({reason})")),
            "{mode}"
        );
        assert!(
            signed_in(&app, &browser).await,
            "a refused request ends nothing"
        );
    }
    let start = format!(
        "{}/logout-initiated?sp={}&mode=ok",
        idp.base,
        url_encode(&sp)
    );
    let (last, r) = follow(&browser, &start, |_| {}).await;
    assert!(
        last.starts_with(&format!("{}/slo?SAMLResponse=", idp.base)),
        "{last}"
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "logged out: urn:oasis:names:tc:SAML:2.0:status:Success\n"
    );
    assert!(
        !signed_in(&app, &browser).await,
        "the IdP's LogoutRequest ended our session"
    );
    assert_eq!(sessions_at_idp().await, others);
}

#[tokio::test]
async fn a_saml_session_that_owed_a_second_factor_still_ends_with_the_idps_logout() {
    let app = spawn_app().await;
    let idp = saml_peer();
    let token = admin_token(&app).await;
    let user = app.create_user("alice@example.com").await;
    let secret = crate::mfa::enroll(&app, &user).await;
    crate::mfa::set_policy(&app, portcullis::tenants::MfaPolicy::Optional).await;
    let r = configure(
        &app,
        &token,
        json!({"protocol": "saml2", "metadata_url": format!("{}/metadata", idp.base),
               "domains": ["example.com"], "link_by_email": true, "apply_mfa_policy": true}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let client = app
        .create_client(ClientOptions {
            skip_consent: true,
            ..ClientOptions::default()
        })
        .await;
    let browser = app.new_browser();
    let to_idp = start_from_sign_in(&app, &browser, &client, ("email", "alice@example.com")).await;
    let html = browser
        .get(format!("{to_idp}&user=alice@example.com&mode=ok"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (action, fields) = saml_form(&html);
    let r = browser.post(&action).form(&fields).send().await.unwrap();
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
    let form = crate::helpers::parse_form(&page);
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
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["amr"],
        json!(["fed", "otp"])
    );
    assert!(signed_in(&app, &browser).await);

    // The upstream session was remembered across the second factor: the IdP's logout finds it.
    let sp = app.url("/saml/metadata");
    let start = format!(
        "{}/logout-initiated?sp={}&mode=ok",
        idp.base,
        url_encode(&sp)
    );
    let (_, r) = follow(&browser, &start, |_| {}).await;
    assert_eq!(
        r.text().await.unwrap(),
        "logged out: urn:oasis:names:tc:SAML:2.0:status:Success\n"
    );
    assert!(!signed_in(&app, &browser).await);
}
