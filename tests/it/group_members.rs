//! Concurrent membership PATCHes of one group, as Entra ID and Okta send
//! them (one change per request, many at once): none is lost, the count and
//! version stay exact, and `If-Match` still refuses a stale version.

use futures::StreamExt;
use serde_json::{json, Value};

use crate::fixtures::{connect_directory, count, seed_users};
use crate::json::{items, strings};
use crate::scim::{patch, Directory};
use crate::support::request;

async fn group_state(dir: &Directory, gid: &str) -> (Vec<String>, i64) {
    let (status, group) = dir.scim("GET", &format!("/Groups/{gid}"), None).await;
    assert_eq!(status, 200, "{group}");
    let mut members: Vec<String> = strings(&group["members"], "value")
        .into_iter()
        .map(str::to_owned)
        .collect();
    members.sort();
    let version = group["meta"]["version"]
        .as_str()
        .unwrap()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .unwrap();
    (members, version)
}

/// The directory's user ids, sorted.
async fn user_ids(dir: &Directory) -> Vec<String> {
    use sea_orm::ConnectionTrait;
    dir.app
        .runtime
        .db
        .connection()
        .query_all(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT id::text AS id FROM directory_users WHERE connection_id = '{}' ORDER BY id::text",
                dir.conn
            ),
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "id").unwrap())
        .collect()
}

/// Member deltas not yet folded into their groups' rows.
async fn pending_deltas(dir: &Directory) -> i64 {
    let query = "SELECT count(*) AS n FROM directory_group_deltas".to_owned();
    count(&dir.app.runtime.db, query).await
}

/// The status of a SCIM request sent with an `If-Match` header.
async fn with_if_match(
    dir: &Directory,
    method: &str,
    path: &str,
    if_match: &str,
    body: Option<Value>,
) -> u16 {
    let req = request(
        method,
        &format!("/scim/v2/{}{path}", dir.conn),
        Some(&dir.token),
        body,
    )
    .insert_header(("if-match", if_match));
    dir.app.send(req).await.status().as_u16()
}

/// The member count the admin API reports for the group (the stored count,
/// not the rows counted again).
async fn stored_count(dir: &Directory, gid: &str) -> i64 {
    let path = format!("/connections/{}/directory/groups", dir.conn);
    let (status, groups) = dir.admin("GET", &path, None).await;
    assert_eq!(status, 200, "{groups}");
    items(&groups["data"]).find(|g| g["id"] == gid).unwrap()["member_count"]
        .as_i64()
        .unwrap()
}

#[actix_web::test]
async fn sixteen_clients_adding_and_removing_a_thousand_members_lose_nothing() {
    let dir = Directory::new().await;
    seed_users(&dir, 1000).await;
    let users = user_ids(&dir).await;
    assert_eq!(users.len(), 1000);
    let (first, second) = users.split_at(500);
    let (status, group) = dir
        .scim(
            "POST",
            "/Groups",
            Some(json!({
                "displayName": "All hands",
                "members": first.iter().map(|u| json!({"value": u})).collect::<Vec<_>>()
            })),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_owned();
    let (_, version_before) = group_state(&dir, &gid).await;

    // 1,000 PATCHes, 16 at a time: the second half joins while the first
    // half leaves, interleaved, plus a rename in the middle of it all.
    let path = format!("/Groups/{gid}");
    let mut requests: Vec<Value> = Vec::new();
    for (leaving, joining) in first.iter().zip(second) {
        requests.push(patch(
            json!([{"op": "add", "path": "members", "value": [{"value": joining}]}]),
        ));
        requests.push(patch(
            json!([{"op": "remove", "path": format!("members[value eq \"{leaving}\"]")}]),
        ));
    }
    requests.insert(
        500,
        patch(json!([{"op": "replace", "path": "displayName", "value": "Everyone"}])),
    );
    // One app serves them all, as one server process would.
    let app =
        actix_web::test::init_service(orgsync_api::http::app(dir.app.runtime.state.clone())).await;
    let scim_path = format!("/scim/v2/{}{path}", dir.conn);
    let statuses: Vec<u16> = futures::stream::iter(requests)
        .map(|body| {
            let (app, scim_path, token) = (&app, &scim_path, &dir.token);
            async move {
                let req = request("PATCH", scim_path, Some(token), Some(body));
                actix_web::test::call_service(app, req.to_request())
                    .await
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 204),
        "a PATCH failed under concurrency: {statuses:?}"
    );

    let (members, version_after) = group_state(&dir, &gid).await;
    assert_eq!(members, second.to_vec(), "members lost or kept by mistake");
    assert_eq!(
        version_after,
        version_before + 1001,
        "every PATCH is one version step"
    );
    assert_eq!(stored_count(&dir, &gid).await, 500);
    let group = dir
        .scim_get(&format!("{path}?excludedAttributes=members"))
        .await;
    assert_eq!(group["displayName"], "Everyone");

    // The directory-changed job folds the pending deltas into the group's
    // row, whatever the org's mode: nothing visible changes.
    let mut pending = i64::MAX;
    for _ in 0..100 {
        pending = pending_deltas(&dir).await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "deltas were never folded");
    let (members, version) = group_state(&dir, &gid).await;
    assert_eq!(members, second.to_vec());
    assert_eq!(version, version_after);
    assert_eq!(stored_count(&dir, &gid).await, 500);

    // A whole-list rewrite locks and recounts.
    let (status, _) = dir
        .scim_patch(&path, json!([{"op": "remove", "path": "members"}]))
        .await;
    assert_eq!(status, 204);
    let (members, version) = group_state(&dir, &gid).await;
    assert!(members.is_empty());
    assert_eq!(version, version_after + 1);
    assert_eq!(stored_count(&dir, &gid).await, 0);
    dir.app.finish().await;
}

#[actix_web::test]
async fn if_match_on_a_group_refuses_a_version_that_member_changes_made_stale() {
    let dir = Directory::new().await;
    let (alice, bob) = (
        dir.user("alice@example.com").await,
        dir.user("bob@example.com").await,
    );
    let (_, group) = dir
        .scim("POST", "/Groups", Some(json!({"displayName": "Eng"})))
        .await;
    let gid = group["id"].as_str().unwrap().to_owned();
    let path = format!("/Groups/{gid}");
    let (_, seen) = group_state(&dir, &gid).await;

    // A member change (no If-Match) moves the version on.
    let add =
        |user: &str| patch(json!([{"op": "add", "path": "members", "value": [{"value": user}]}]));
    assert_eq!(dir.scim("PATCH", &path, Some(add(&alice))).await.0, 204);
    let (_, current) = group_state(&dir, &gid).await;
    assert_eq!(current, seen + 1);

    let stale = format!("W/\"{seen}\"");
    let fresh = format!("W/\"{current}\"");
    assert_eq!(
        with_if_match(&dir, "PATCH", &path, &stale, Some(add(&bob))).await,
        412
    );
    assert_eq!(
        with_if_match(
            &dir,
            "PUT",
            &path,
            &stale,
            Some(json!({"displayName": "Eng"}))
        )
        .await,
        412
    );
    assert_eq!(
        with_if_match(&dir, "DELETE", &path, &stale, None).await,
        412
    );
    let (members, version) = group_state(&dir, &gid).await;
    assert_eq!(
        members,
        vec![alice.clone()],
        "a refused write changed nothing"
    );
    assert_eq!(version, current);

    assert_eq!(
        with_if_match(&dir, "PATCH", &path, &fresh, Some(add(&bob))).await,
        204
    );
    let (members, version) = group_state(&dir, &gid).await;
    assert_eq!(members.len(), 2);
    assert_eq!(version, current + 1);
    assert_eq!(stored_count(&dir, &gid).await, 2);
    dir.app.finish().await;
}

#[actix_web::test]
async fn another_connections_token_cannot_change_a_group_it_does_not_own() {
    let dir = Directory::new().await;
    let (ann, gid) = dir.user_in_group("ann@example.com", "Eng").await;
    let (_, version) = group_state(&dir, &gid).await;

    // A second directory's token, naming the first directory's group.
    let (other, sync) = connect_directory(&dir.app, &dir.org, "Entra").await;
    let token = sync["token"].as_str().unwrap();
    for ops in [
        json!([{"op": "add", "path": "members", "value": [{"value": "intruder"}]}]),
        json!([{"op": "remove", "path": format!("members[value eq \"{ann}\"]")}]),
        json!([{"op": "remove", "path": "members"}]),
    ] {
        let (status, body) = dir
            .app
            .call(
                "PATCH",
                &format!("/scim/v2/{other}/Groups/{gid}"),
                Some(token),
                Some(patch(ops)),
            )
            .await;
        assert_eq!(status, 404, "{body}");
    }
    let (members, after) = group_state(&dir, &gid).await;
    assert_eq!(members, vec![ann], "another directory changed this group");
    assert_eq!(after, version);
    assert_eq!(pending_deltas(&dir).await, 0);
    dir.app.finish().await;
}
