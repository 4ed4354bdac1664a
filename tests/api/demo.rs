use crate::helpers::*;

#[tokio::test]
async fn the_demo_walks_a_newcomer_through_a_complete_sign_in_and_shows_the_id_token() {
    let (app, creds) = spawn_demo_app().await;
    assert_eq!(creds.demo_url, format!("{}/demo", app.address));
    let browser = app.new_browser();
    let page = browser
        .get(&creds.demo_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with Portcullis"));
    let callback = format!("{}/demo/callback", app.address);
    let location = drive_forms(
        &browser,
        &format!("{}/demo/login", app.address),
        &creds.email,
        &creds.password,
        &callback,
    )
    .await;
    let r = browser.get(&location).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = unescape(&r.text().await.unwrap());
    assert!(html.contains("ID token claims"), "{html}");
    assert!(html.contains(&format!("\"iss\": \"{}\"", creds.issuer)));
    assert!(html.contains("\"email\": \"demo@example.com\""));
    assert!(html.contains("Userinfo"));
}
