//! Steps many tests share: admin calls on any org of a [`Directory`]'s
//! tree, switching an org to SCIM, connecting an org's own IdP, waiting for a
//! run.

use std::time::Duration;

use serde_json::{json, Value};

use crate::scim::Directory;

/// An admin API call on `org` (any org of the tree) with a platform token.
pub(crate) async fn admin(
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

/// `n` directory users `{prefix}{i}@example.com`; their ids.
pub(crate) async fn users(dir: &Directory, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(dir.user(&format!("{prefix}{i}@example.com")).await);
    }
    ids
}

/// `org`'s members by email: (email, member).
pub(crate) async fn members_by_email(
    dir: &Directory,
    org: &str,
) -> std::collections::BTreeMap<String, Value> {
    let (status, page) = admin(dir, "GET", org, "/members?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap().to_owned(), m.clone()))
        .collect()
}

pub(crate) async fn member_count(dir: &Directory, org: &str) -> usize {
    let (status, page) = admin(dir, "GET", org, "/members?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().len()
}

/// Waits (10 s at most) until `org` has `expected` members, and asserts it.
pub(crate) async fn wait_for_members(dir: &Directory, org: &str, expected: usize) {
    for _ in 0..200 {
        if member_count(dir, org).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(member_count(dir, org).await, expected);
}

/// Switches `org` to SCIM with its preview's confirmation.
pub(crate) async fn switch_to_scim(dir: &Directory, org: &str) {
    let (_, preview) = admin(
        dir,
        "POST",
        org,
        "/provisioning/preview",
        Some(json!({"mode": "scim"})),
    )
    .await;
    let (status, switched) = admin(
        dir,
        "PUT",
        org,
        "/provisioning",
        Some(json!({"mode": "scim", "confirm": preview["confirmation"]})),
    )
    .await;
    assert_eq!(status, 200, "{switched}");
}

/// A child of the directory's org named `slug`, in manual mode; its id.
pub(crate) async fn child(dir: &Directory, slug: &str) -> String {
    let (status, child) = admin(
        dir,
        "POST",
        &dir.org,
        "/children",
        Some(json!({"name": slug, "slug": slug})),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    child["id"].as_str().unwrap().to_owned()
}

/// A child of the directory's org, in SCIM mode (drawing on the parent's directory).
pub(crate) async fn scim_child(dir: &Directory, slug: &str) -> String {
    let child = child(dir, slug).await;
    switch_to_scim(dir, &child).await;
    child
}

/// `org`'s own connection with directory sync on: its id and SCIM token.
pub(crate) async fn own_connection(dir: &Directory, org: &str) -> (String, String) {
    let (_, conn) = admin(
        dir,
        "POST",
        org,
        "/connections",
        Some(json!({"name": "Own IdP"})),
    )
    .await;
    let conn = conn["id"].as_str().unwrap().to_owned();
    let (status, sync) = admin(
        dir,
        "PUT",
        org,
        &format!("/connections/{conn}/directory-sync"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{sync}");
    (conn, sync["token"].as_str().unwrap().to_owned())
}

/// Waits (60 s at most) until the run `POST /syncs` answered has finished.
pub(crate) async fn finished_run(dir: &Directory, org: &str, run: &Value) -> Value {
    let path = format!("/syncs/{}", run["id"].as_str().unwrap());
    for _ in 0..1200 {
        let (_, current) = admin(dir, "GET", org, &path, None).await;
        if current["status"] == "succeeded" || current["status"] == "failed" {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {path} did not finish in 60 s");
}
