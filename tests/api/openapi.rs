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

#[test]
fn every_link_names_an_operation_and_its_parameters() {
    let doc: Value = serde_json::from_str(&portcullis::http::openapi::document()).unwrap();
    let mut operations = std::collections::HashMap::new();
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            operations.insert(op["operationId"].as_str().unwrap().to_string(), op.clone());
        }
    }
    let mut links = 0;
    for op in operations.values() {
        for response in op["responses"].as_object().unwrap().values() {
            let Some(map) = response.get("links").and_then(Value::as_object) else {
                continue;
            };
            for (name, link) in map {
                let target = &operations[link["operationId"].as_str().unwrap()];
                let params: Vec<&str> = target["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                for param in link["parameters"].as_object().unwrap().keys() {
                    assert!(params.contains(&param.as_str()), "{name}: {param}");
                }
                links += 1;
            }
        }
    }
    assert!(links >= 16, "create → get/delete links: {links}");
    // What the server does for a class of operations is stated on each of them.
    let login = &doc["paths"]["/t/{tenant}/api/v1/auth/login"]["post"]["responses"];
    for status in ["422", "404", "403", "429"] {
        assert!(login.get(status).is_some(), "login documents {status}");
    }
    let register = &doc["paths"]["/t/{tenant}/register"]["post"]["responses"];
    assert_eq!(
        register["404"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/OAuthErrorBody"
    );
}
