use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn the_committed_openapi_document_is_the_generated_one_and_is_served() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    let generated = portcullis::http::openapi::document();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi.json is stale: run `cargo run -- openapi > openapi.json` and commit it"
    );
    let app = spawn_app().await;
    let served: Value = app
        .get(&format!("{}/openapi.json", app.address))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(served, serde_json::from_str::<Value>(&generated).unwrap());
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    let mut ids: Vec<&str> = served["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| {
            ops.as_object()
                .unwrap()
                .values()
                .map(|op| op["operationId"].as_str().unwrap())
        })
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
    for path in [
        "/t/{tenant}/api/v1/auth/login",
        "/t/{tenant}/api/v1/apikeys",
        "/t/{tenant}/api/v1/admin/audit",
        "/api/v1/admin/tenants",
        "/t/{tenant}/register",
    ] {
        assert!(served["paths"].get(path).is_some(), "{path} is documented");
    }
}
