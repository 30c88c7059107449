//! Source changes: turning a connection's directory sync on or off, or
//! deleting it, moves orgs to another directory. Each move is previewed org by
//! org and needs the plan's confirmation when anyone would lose their member;
//! the same person (by email) keeps their member across the move.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fixtures::{
    admin, audit_log, child, member_count, members_by_email, own_connection, preview_provisioning,
    set_provisioning, switch_to_scim, users, wait_for_members,
};
use crate::json::items;
use crate::scim::Directory;
use crate::support::poll;

async fn push_user(dir: &Directory, conn: &str, token: &str, email: &str) {
    let (status, user) = dir
        .app
        .call(
            "POST",
            &format!("/scim/v2/{conn}/Users"),
            Some(token),
            Some(json!({"userName": email, "emails": [{"value": email, "primary": true}]})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
}

async fn connection_enabled(dir: &Directory, org: &str, conn: &str) -> bool {
    let (status, c) = admin(dir, "GET", org, &format!("/connections/{conn}"), None).await;
    assert_eq!(status, 200, "{c}");
    c["directory_sync"]["enabled"].as_bool().unwrap()
}

/// What `change` to `org`'s connection `conn` would do (`GET …/impact`): the answer.
async fn impact(dir: &Directory, org: &str, conn: &str, change: &str) -> (u16, Value) {
    let path = format!("/connections/{conn}/impact?change={change}");
    admin(dir, "GET", org, &path, None).await
}

/// A tenant whose IdP lists `n` people (`p{i}@example.com`) and a child
/// `eu` that draws its members from that directory: the child's id.
async fn child_drawing_on_its_parent(n: usize) -> (Directory, String) {
    let dir = Directory::new().await;
    users(&dir, "p", n).await;
    let child = child(&dir, "eu").await;
    switch_to_scim(&dir, &child).await;
    (dir, child)
}

/// A new connection of `org`, directory sync off: its id, and the path
/// that turns directory sync on or off.
async fn new_connection(dir: &Directory, org: &str, name: &str) -> (String, String) {
    let (status, conn) = admin(
        dir,
        "POST",
        org,
        "/connections",
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{conn}");
    let conn = conn["id"].as_str().unwrap().to_owned();
    let path = format!("/connections/{conn}/directory-sync");
    (conn, path)
}

fn assert_confirmation_required(status: u16, body: &Value) {
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["type"],
        "https://orgsync.dev/problems/confirmation-required"
    );
    assert!(body["confirmation"].is_string(), "{body}");
}

/// The reported case: a child drawing 60 members from its parent's directory
/// turns on its own (empty) directory. Nothing happens until the admin has
/// seen that all 60 would go and confirmed exactly that.
#[actix_web::test]
async fn turning_on_a_childs_own_empty_directory_asks_before_removing_anyone() {
    let (dir, child) = child_drawing_on_its_parent(60).await;
    assert_eq!(member_count(&dir, &child).await, 60);
    let (conn, path) = new_connection(&dir, &child, "EU IdP").await;

    let (status, refused) = admin(&dir, "PUT", &child, &path, Some(json!({"enabled": true}))).await;
    assert_confirmation_required(status, &refused);
    let effects = refused["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 1, "{refused}");
    assert_eq!(effects[0]["org_id"], child.as_str());
    assert_eq!(effects[0]["draws_on"], conn.as_str());
    assert_eq!(effects[0]["counts"]["removals"], 60);
    assert_eq!(effects[0]["removals"].as_array().unwrap().len(), 60);
    assert!(
        !connection_enabled(&dir, &child, &conn).await,
        "nothing changed"
    );
    assert_eq!(member_count(&dir, &child).await, 60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(member_count(&dir, &child).await, 60, "not later either");

    // The preview route shows the same plan; a wrong token is refused.
    let (status, impact) = impact(&dir, &child, &conn, "enable_directory_sync").await;
    assert_eq!(status, 200, "{impact}");
    assert_eq!(impact["confirmation"], refused["confirmation"]);
    assert_eq!(impact["requires_confirmation"], true);
    let (status, _) = admin(
        &dir,
        "PUT",
        &child,
        &path,
        Some(json!({"enabled": true, "confirm": "0000"})),
    )
    .await;
    assert_eq!(status, 409);

    let (status, done) = admin(
        &dir,
        "PUT",
        &child,
        &path,
        Some(json!({"enabled": true, "confirm": refused["confirmation"]})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done["token"].is_string());
    assert_eq!(done["moved_orgs"][0]["outcome"], "applied", "{done}");
    assert_eq!(member_count(&dir, &child).await, 0);
    let token = done["token"].as_str().unwrap().to_owned();
    push_user(&dir, &conn, &token, "solo@example.com").await;
    wait_for_members(&dir, &child, 1).await;
    // The parent keeps its own.
    assert_eq!(
        member_count(&dir, &dir.org).await,
        0,
        "the parent is manual"
    );
    let audit = audit_log(&dir, &child, "directory_sync.enabled").await;
    let after = &audit["data"][0]["after"];
    assert_eq!(after["moved_orgs"][0]["counts"]["removals"], 60, "{audit}");
    assert_eq!(after["confirmed"], refused["confirmation"]);
    dir.app.finish().await;
}

/// The way to move a child to its own IdP without losing anyone: connect it
/// while the child is manual, let the IdP push, then switch to SCIM. The
/// switch matches the child's members by email: same ids, nobody removed.
#[actix_web::test]
async fn a_child_moving_to_its_own_idp_keeps_everyone_the_idp_lists() {
    let (dir, child) = child_drawing_on_its_parent(12).await;
    let before = members_by_email(&dir, &child).await;
    assert_eq!(before.len(), 12);
    let (status, manual) = set_provisioning(&dir, &child, "manual").await;
    assert_eq!(status, 200, "{manual}");
    // A manual org draws on no directory: turning its own on moves no one.
    let (conn, token) = own_connection(&dir, &child).await;
    for email in before.keys() {
        push_user(&dir, &conn, &token, email).await;
    }
    push_user(&dir, &conn, &token, "new@example.com").await;

    let (status, preview) = preview_provisioning(&dir, &child, "scim").await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["counts"]["removals"], 0, "{preview}");
    assert_eq!(preview["counts"]["adds"], 1, "{preview}");
    let (status, switched) = set_provisioning(&dir, &child, "scim").await;
    assert_eq!(status, 200, "no removal, no confirmation: {switched}");
    let after = members_by_email(&dir, &child).await;
    assert_eq!(after.len(), 13);
    for (email, member) in &before {
        assert_eq!(after[email]["id"], member["id"], "{email} kept its member");
        assert_ne!(
            after[email]["directory_user_id"], member["directory_user_id"],
            "{email} is now linked to the child's IdP"
        );
    }
    dir.app.finish().await;
}

/// Deleting a child's connection moves it back to its parent's directory:
/// the people the parent's IdP also lists keep their members (matched by
/// email), the one it does not is removed only once confirmed.
#[actix_web::test]
async fn deleting_a_childs_connection_falls_back_to_the_parent_and_confirms_the_removal() {
    let dir = Directory::new().await;
    users(&dir, "p", 30).await;
    let child = child(&dir, "eu").await;
    let (conn, token) = own_connection(&dir, &child).await;
    for i in 0..10 {
        push_user(&dir, &conn, &token, &format!("p{i}@example.com")).await;
    }
    push_user(&dir, &conn, &token, "solo@example.com").await;
    switch_to_scim(&dir, &child).await;
    let before = members_by_email(&dir, &child).await;
    assert_eq!(before.len(), 11);

    let path = format!("/connections/{conn}");
    let (status, refused) = admin(&dir, "DELETE", &child, &path, None).await;
    assert_confirmation_required(status, &refused);
    let effect = &refused["effects"][0];
    assert_eq!(effect["draws_on"], dir.conn.as_str(), "the parent's");
    assert_eq!(effect["counts"]["removals"], 1, "{refused}");
    assert_eq!(effect["counts"]["adds"], 20);
    assert_eq!(effect["removals"][0]["email"], "solo@example.com");
    assert!(connection_enabled(&dir, &child, &conn).await, "still there");

    let confirm = refused["confirmation"].as_str().unwrap();
    let (status, _) = admin(
        &dir,
        "DELETE",
        &child,
        &format!("{path}?confirm={confirm}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let after = members_by_email(&dir, &child).await;
    assert_eq!(after.len(), 30);
    assert!(!after.contains_key("solo@example.com"));
    for i in 0..10 {
        let email = format!("p{i}@example.com");
        assert_eq!(after[&email]["id"], before[&email]["id"], "{email} kept");
    }
    // The child now follows the parent's directory incrementally.
    dir.user("late@example.com").await;
    wait_for_members(&dir, &child, 31).await;
    let (status, runs) = admin(&dir, "GET", &child, "/syncs", None).await;
    assert_eq!(status, 200);
    assert!(
        items(&runs["data"]).any(|r| r["kind"] == "source_change"),
        "{runs}"
    );
    dir.app.finish().await;
}

/// A change that removes no one needs no confirmation: turning the parent's
/// directory sync off leaves the orgs drawing on it with their members, and
/// turning it on again matches them back (same ids, no adds or removals).
#[actix_web::test]
async fn turning_a_directory_off_and_on_again_removes_no_one_and_needs_no_confirmation() {
    let dir = Directory::new().await;
    users(&dir, "p", 15).await;
    let org = dir.org.clone();
    switch_to_scim(&dir, &org).await;
    let child = child(&dir, "eu").await;
    switch_to_scim(&dir, &child).await;
    let before = members_by_email(&dir, &child).await;
    let path = format!("/connections/{}/directory-sync", dir.conn);
    for enabled in [false, true] {
        let change = if enabled {
            "enable_directory_sync"
        } else {
            "disable_directory_sync"
        };
        let (status, impact) = impact(&dir, &org, &dir.conn, change).await;
        assert_eq!(status, 200, "{impact}");
        assert_eq!(impact["requires_confirmation"], false, "{impact}");
        assert_eq!(
            impact["effects"].as_array().unwrap().len(),
            2,
            "parent and child move"
        );
        let (status, done) =
            admin(&dir, "PUT", &org, &path, Some(json!({"enabled": enabled}))).await;
        assert_eq!(status, 200, "{done}");
    }
    let after = members_by_email(&dir, &child).await;
    assert_eq!(after.len(), 15);
    for (email, member) in &before {
        assert_eq!(after[email]["id"], member["id"]);
        assert_eq!(
            after[email]["updated_at"], member["updated_at"],
            "untouched"
        );
    }
    assert_eq!(member_count(&dir, &org).await, 15);
    dir.app.finish().await;
}

/// Only the connection's own org's admins decide: a child's token cannot
/// preview or delete its parent's connection.
#[actix_web::test]
async fn a_childs_token_cannot_preview_or_delete_its_parents_connection() {
    let dir = Directory::new().await;
    let child = child(&dir, "eu").await;
    let token = dir.app.tokens.org(
        child.parse().unwrap(),
        orgsync_domain::auth::AdminRole::Owner,
    );
    for (method, rest) in [
        (
            "GET",
            format!("/connections/{}/impact?change=delete", dir.conn),
        ),
        ("DELETE", format!("/connections/{}", dir.conn)),
    ] {
        let (status, body) = dir
            .app
            .admin_as(&token, method, &dir.org, &rest, None)
            .await;
        assert!(
            status == 403 || status == 404,
            "{method} {rest}: {status} {body}"
        );
    }
    assert!(connection_enabled(&dir, &dir.org, &dir.conn).await);
    dir.app.finish().await;
}

/// Rows of `table` for the connection `conn`.
async fn rows_of(dir: &Directory, table: &str, conn: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = dir.app.runtime.db.connection();
    let row = db
        .query_one(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table} WHERE connection_id = $1"),
            [uuid::Uuid::parse_str(conn).unwrap().into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// A connection's change log and tombstones go with it, whether the
/// connection itself or its org is deleted. On PostgreSQL no foreign key
/// ties them to the connection (so that appending locks nothing): a trigger
/// removes them instead, and this proves it does.
#[actix_web::test]
async fn a_deleted_connection_leaves_no_change_log_or_tombstones_behind() {
    let dir = Directory::new().await;
    let mut leftovers = Vec::new();
    for (slug, delete) in [("conn", "connection"), ("org", "org")] {
        let org = child(&dir, slug).await;
        let (conn, token) = own_connection(&dir, &org).await;
        let (status, user) = dir
            .app
            .call(
                "POST",
                &format!("/scim/v2/{conn}/Users"),
                Some(&token),
                Some(json!({"userName": format!("{slug}@example.com"), "externalId": slug})),
            )
            .await;
        assert_eq!(status, 201, "{user}");
        let path = format!("/scim/v2/{conn}/Users/{}", user["id"].as_str().unwrap());
        assert_eq!(
            dir.app.call("DELETE", &path, Some(&token), None).await.0,
            204
        );
        assert!(rows_of(&dir, "directory_events", &conn).await >= 2);
        assert_eq!(rows_of(&dir, "directory_user_tombstones", &conn).await, 1);

        let rest = match delete {
            "connection" => format!("/connections/{conn}"),
            _ => String::new(),
        };
        let (status, body) = admin(&dir, "DELETE", &org, &rest, None).await;
        assert_eq!(status, 204, "deleting the {delete}: {body}");
        leftovers.push((
            delete,
            rows_of(&dir, "directory_events", &conn).await,
            rows_of(&dir, "directory_user_tombstones", &conn).await,
        ));
    }
    assert_eq!(
        leftovers,
        [("connection", 0, 0), ("org", 0, 0)],
        "(deleted, events left, tombstones left)"
    );
    // The parent's own log is untouched.
    dir.user("parent@example.com").await;
    assert!(rows_of(&dir, "directory_events", &dir.conn).await >= 1);
    dir.app.finish().await;
}

/// A catch-up already under way when an org moves to another directory
/// applies nothing more of the old one to it. The IdP changes a user while
/// the catch-up over the connection's orgs is held at its first org (the
/// test holds that org's writer row); meanwhile the second org turns on its
/// own, empty directory and, confirmed, loses its members. When the
/// catch-up reaches the second org, its list is stale: the org's one
/// cursor now names the new directory, so the catch-up reconciles the org
/// against that one and does not add the changed user back from the old.
#[actix_web::test]
async fn a_catch_up_under_way_applies_nothing_of_a_directory_its_org_left() {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let dir = Directory::new().await;
    let people = users(&dir, "p", 3).await;
    let first = child(&dir, "first").await;
    let moving = child(&dir, "moving").await;
    for org in [&first, &moving] {
        switch_to_scim(&dir, org).await;
        wait_for_members(&dir, org, 3).await;
    }
    let outside = orgsync_infra::Database::connect(&dir.app.db.url, 2)
        .await
        .unwrap();
    // The first org's writer row, taken and not committed: a catch-up that
    // tries to take the org waits on it.
    let stall = outside.connection().begin().await.unwrap();
    stall
        .execute_unprepared(&format!(
            "INSERT INTO org_writers (org_id, holder, expires_at) \
             VALUES ('{first}', 'test', now() + interval '1 hour')"
        ))
        .await
        .unwrap();
    let rename = json!([{"op": "replace", "path": "displayName", "value": "Renamed"}]);
    let (status, renamed) = dir
        .scim_patch(&format!("/Users/{}", people[0]), rename)
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert!(
        crate::fixtures::someone_waits_on_a_lock(&outside).await,
        "the catch-up never reached the first org"
    );

    let (_, path) = new_connection(&dir, &moving, "own").await;
    let (status, refused) =
        admin(&dir, "PUT", &moving, &path, Some(json!({"enabled": true}))).await;
    assert_confirmation_required(status, &refused);
    let confirmed = json!({"enabled": true, "confirm": refused["confirmation"]});
    let (status, moved) = admin(&dir, "PUT", &moving, &path, Some(confirmed)).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        member_count(&dir, &moving).await,
        0,
        "the confirmed removal"
    );

    stall.rollback().await.unwrap();
    let renamed = poll(200, Duration::from_millis(50), async || {
        members_by_email(&dir, &first)
            .await
            .values()
            .any(|m| m["name"] == "Renamed")
            .then_some(())
    })
    .await;
    assert!(renamed.is_some(), "the catch-up went on with the first org");
    // The second org comes right after the first in the same catch-up.
    let added_back = poll(40, Duration::from_millis(50), async || {
        (member_count(&dir, &moving).await > 0).then_some(())
    })
    .await;
    assert!(
        added_back.is_none(),
        "the old directory's change reached an org that left it: {:?}",
        members_by_email(&dir, &moving).await.keys()
    );
    dir.app.finish().await;
}
