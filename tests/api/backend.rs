use crate::helpers::{backend, spawn_app};

#[tokio::test]
async fn the_selected_backend_is_reported_and_ready() {
    let b = backend();
    if b != "postgres" {
        println!("PostgreSQL suite skipped: set PORTCULLIS_TEST_DATABASE=postgres to run it (running on {b})");
    }
    let app = spawn_app().await;
    assert_eq!(
        app.state.pool.backend(),
        if b == "postgres" {
            "postgres"
        } else {
            "sqlite"
        }
    );
    let r = app.get(&format!("{}/ready", app.address)).await;
    assert_eq!(r.status(), 200);
    let health: serde_json::Value = app
        .get(&format!("{}/health", app.address))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(health, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_paths_and_tenants_answer_a_json_404() {
    let app = spawn_app().await;
    for path in [
        "/nope",
        "/t/unknown-tenant/.well-known/openid-configuration",
        "/t/UPPER/jwks",
    ] {
        let r = app.get(&format!("{}{path}", app.address)).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
}
