//! Probes and request tracing.

use actix_web::test::TestRequest;

use crate::scim::Directory;
use crate::support::{request, TestApp};

#[actix_web::test]
async fn readiness_reports_each_dependency_and_turns_503_when_the_database_goes() {
    let dir = Directory::new().await;
    let app = &dir.app;
    let (status, body) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["queue"]["status"], "ok");

    // Dropping the database ends every connection to it: the app must say so, not hang or crash.
    app.db.drop_db().await;
    let (status, body) = app.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"]["status"], "unavailable");
    assert!(body["checks"]["database"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let (status, _) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200, "liveness does not depend on the database");
    let (status, problem) = app
        .call(
            "GET",
            &format!("/api/v1/orgs/{}", uuid::Uuid::now_v7()),
            Some(&app.tokens.platform()),
            None,
        )
        .await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "https://orgsync.dev/problems/unavailable");
    // The IdP is told the same, in SCIM's words, and when to come back.
    let path = format!("/scim/v2/{}/Users", dir.conn);
    let scim = app
        .send(request("GET", &path, Some(&dir.token), None))
        .await;
    assert_eq!(scim.status(), 503);
    assert_eq!(scim.headers().get("retry-after").unwrap(), "5");
    let error: serde_json::Value = actix_web::test::read_body_json(scim).await;
    assert_eq!(
        error["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
}

#[actix_web::test]
async fn every_response_carries_a_request_id_and_a_sane_caller_id_is_kept() {
    let app = TestApp::spawn().await;
    let generated = app.send(TestRequest::get().uri("/healthz")).await;
    let id = generated
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    // And the server's own time, so a client can tell it from the network's.
    let timing = generated
        .headers()
        .get("server-timing")
        .unwrap()
        .to_str()
        .unwrap();
    let ms: f64 = timing.strip_prefix("app;dur=").unwrap().parse().unwrap();
    assert!((0.0..10_000.0).contains(&ms), "{timing}");

    for (sent, kept) in [("trace-abc_123", true), ("bad id with spaces", false)] {
        let response = app
            .send(
                TestRequest::get()
                    .uri("/healthz")
                    .insert_header(("x-request-id", sent)),
            )
            .await;
        let echoed = response
            .headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(echoed == sent, kept, "{sent} → {echoed}");
    }
    app.finish().await;
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_report_jobs_queue_and_pool() {
    let app = TestApp::spawn().await;
    let token = app.tokens.platform();
    for _ in 0..3 {
        app.call("GET", "/healthz", None, None).await;
    }
    let missing = format!("/api/v1/orgs/{}", uuid::Uuid::now_v7());
    assert_eq!(app.call("GET", &missing, Some(&token), None).await.0, 404);
    let response = app.send(TestRequest::get().uri("/metrics")).await;
    assert_eq!(response.status().as_u16(), 200);
    let text = String::from_utf8(actix_web::test::read_body(response).await.to_vec()).unwrap();
    for expected in [
        r#"orgsync_http_requests_total{method="GET",route="/healthz",status="200"} 3"#,
        r#"orgsync_http_requests_total{method="GET",route="/api/v1/orgs/{org}",status="404"} 1"#,
        "orgsync_http_request_duration_seconds_bucket",
        r#"orgsync_sync_jobs{state="queued"} 0"#,
        "orgsync_queue_depth",
        r#"orgsync_db_pool_connections{state="open"}"#,
        "orgsync_directory_pending_events 0",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    app.finish().await;
}

/// Any token is a valid HTTP method, and metrics are labelled before a
/// request authenticates: made-up methods share one label value instead of
/// adding a series each for the life of the process.
#[actix_web::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn().await;
    for i in 0..50 {
        let method = actix_web::http::Method::from_bytes(format!("PROBE{i}").as_bytes()).unwrap();
        let response = app
            .send(TestRequest::default().method(method).uri("/healthz"))
            .await;
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let response = app.send(TestRequest::get().uri("/metrics")).await;
    let text = String::from_utf8(actix_web::test::read_body(response).await.to_vec()).unwrap();
    assert!(
        !text.contains("PROBE"),
        "a made-up method became a label:\n{text}"
    );
    let methods: std::collections::BTreeSet<&str> = text
        .split("method=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    assert!(methods.len() <= 3, "{methods:?}");
    app.finish().await;
}
