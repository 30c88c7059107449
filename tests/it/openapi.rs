//! The OpenAPI document matches what the server serves.

use std::collections::BTreeSet;

use crate::support::TestApp;

#[actix_web::test]
async fn the_openapi_document_covers_exactly_the_routes_served() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let registered: BTreeSet<(String, String)> = orgsync_api::http::route_docs()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    assert_eq!(documented, registered);
    assert!(registered.len() >= 45, "{}", registered.len());

    // Every documented route is really served: a request reaches a handler,
    // never the router's "no such route".
    let token = app.tokens.platform();
    let id = uuid::Uuid::now_v7().to_string();
    for (method, path) in &registered {
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { id.as_str() } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let (_, body) = app
            .call(method, &concrete, Some(&token), Some(serde_json::json!({})))
            .await;
        assert_ne!(body["detail"], "no such route", "{method} {path}");
    }
    let (status, html) = app.call("GET", "/docs", None, None).await;
    assert_eq!(status, 200);
    let html = html.as_str().unwrap();
    assert!(html.contains("/api/v1/openapi.json"));
    // The third-party script is pinned and integrity-checked, never "latest".
    assert!(html.contains("integrity=\"sha384-"), "{html}");
    assert!(!html.contains("latest"), "{html}");
    app.finish().await;
}

/// What schemathesis (`scripts/schemathesis`) found: the document promised
/// JSON where the server rightly answers nothing, CSV or Prometheus text.
#[actix_web::test]
async fn the_document_names_the_media_types_the_server_answers_with() {
    let app = TestApp::spawn().await;
    let (_, doc) = app.call("GET", "/api/v1/openapi.json", None, None).await;
    let paths = &doc["paths"];
    let deleted = &paths["/api/v1/orgs/{org}"]["delete"]["responses"]["204"];
    assert!(deleted.get("content").is_none(), "{deleted}");
    let csv = &paths["/api/v1/orgs/{org}/members.csv"]["get"]["responses"]["200"]["content"];
    assert!(csv.get("text/csv").is_some(), "{csv}");
    let rotated =
        &paths["/api/v1/orgs/{org}/connections/{conn}/directory-sync/token"]["post"]["responses"];
    assert!(rotated.get("201").is_some(), "{rotated}");
    app.finish().await;
}
