//! Partial failure: one org whose sync fails does not hold back the others
//! drawing on the same directory, and tenants see a stable summary of the
//! failure, never the raw cause.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::scim::Directory;
use crate::support::TestApp;

async fn admin(
    dir: &Directory,
    method: &str,
    org: &str,
    rest: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let token = dir.app.tokens.platform();
    dir.app
        .call(
            method,
            &format!("/api/v1/orgs/{org}{rest}"),
            Some(&token),
            body,
        )
        .await
}

async fn scim_child(dir: &Directory, slug: &str) -> String {
    let (_, child) = admin(
        dir,
        "POST",
        &dir.org,
        "/children",
        Some(json!({"name": slug, "slug": slug})),
    )
    .await;
    let child = child["id"].as_str().unwrap().to_owned();
    let (status, switched) = admin(
        dir,
        "PUT",
        &child,
        "/provisioning",
        Some(json!({"mode": "scim"})),
    )
    .await;
    assert_eq!(status, 200, "{switched}");
    child
}

#[actix_web::test]
async fn a_failing_org_does_not_stop_its_siblings_and_tenants_see_no_raw_cause() {
    let dir = Directory::on(TestApp::spawn_with(|s| s.worker.max_attempts = 1).await).await;
    dir.user("first@example.com").await;
    let broken = scim_child(&dir, "broken").await;
    let healthy = [
        scim_child(&dir, "healthy-a").await,
        scim_child(&dir, "healthy-b").await,
    ];
    // A corrupt settings row: reading it fails with an internal error that
    // names the row; the tenant must never see that text.
    dir.app
        .runtime
        .db
        .connection()
        .execute_unprepared(&format!(
            "INSERT INTO org_membership_settings (org_id, group_mappings, deprovision, updated_at) \
             VALUES ('{broken}', 'not json', 'remove', now())"
        ))
        .await
        .unwrap();

    let second = dir.user("second@example.com").await;
    for org in &healthy {
        let mut found = false;
        for _ in 0..200 {
            let (_, page) = admin(&dir, "GET", org, "/members", None).await;
            if page["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["directory_user_id"] == second.as_str())
            {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            found,
            "{org} did not get the new user while its sibling fails"
        );
    }

    let (status, run) = admin(
        &dir,
        "POST",
        &broken,
        "/syncs",
        Some(json!({"cascade": false})),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let path = format!("/syncs/{}", run["id"].as_str().unwrap());
    let mut finished = Value::Null;
    for _ in 0..200 {
        let (_, current) = admin(&dir, "GET", &broken, &path, None).await;
        if current["status"] == "failed" {
            finished = current;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = finished["jobs"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.starts_with("internal:"), "{finished}");
    assert!(
        !error.contains("corrupt") && !error.contains("not json"),
        "{error}"
    );
    let (_, status_view) = admin(&dir, "GET", &broken, "/sync-status", None).await;
    let shown = status_view.to_string();
    assert!(!shown.contains("corrupt"), "{shown}");
    dir.app.finish().await;
}
