//! Incremental sync follows the change, not the size of the org: a group
//! change re-plans just the members it moved (old and new ones for a
//! rewrite), and no one for a group that decides nothing; only deleting a
//! mapped group reconciles the org whole. A full
//! reconcile would also pick up a change made behind the engine's back; the
//! test plants one on a bystander to show that none ran.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::fixtures::switch_to_scim;
use crate::scim::Directory;
use crate::support::poll;

fn role_of(members: &[Value], user: &str) -> Option<String> {
    members
        .iter()
        .find(|m| m["directory_user_id"] == user)
        .map(|m| m["role"].as_str().unwrap_or_default().to_owned())
}

impl Directory {
    /// Renames `user` in the directory without an event: only a full reconcile sees it.
    async fn rename_behind_the_engines_back(&self, user: &str) {
        let db = sea_orm::Database::connect(&self.app.db.url).await.unwrap();
        db.execute_unprepared(&format!(
            "UPDATE directory_users SET display_name = 'Drifted' WHERE id = '{user}'"
        ))
        .await
        .unwrap();
        db.close().await.ok();
    }

    /// Waits until the org has applied every directory event.
    async fn caught_up(&self) {
        let current = poll(100, Duration::from_millis(50), async || {
            let (_, status) = self.admin("GET", "/sync-status", None).await;
            (status["pending_events"] == 0).then_some(())
        })
        .await;
        assert!(current.is_some(), "the org did not catch up in 5 s");
    }

    async fn name_of(&self, user: &str) -> Value {
        self.member_of(user).await.unwrap()["name"].clone()
    }
}

#[actix_web::test]
async fn group_changes_replan_only_the_members_they_moved() {
    let (dir, [ann, ben, cid, bystander]) = Directory::with_users([
        "ann@example.com",
        "ben@example.com",
        "cid@example.com",
        "dan@example.com",
    ])
    .await;
    let admins = dir.group("Admins", &[&ann]).await;
    let staff = dir.group("Staff", &[&ann, &ben, &cid, &bystander]).await;
    let other = dir.group("Other", &[&ann]).await;
    switch_to_scim(&dir, &dir.org).await;
    let mappings = json!({"enabled": true, "roles": [
        {"group": admins, "role": "admin"}, {"group": staff, "role": "user"}]});
    let (status, saved) = dir.admin("PUT", "/group-mappings", Some(mappings)).await;
    assert_eq!(status, 200, "{saved}");
    let bystanders_name = dir.name_of(&bystander).await;
    dir.rename_behind_the_engines_back(&bystander).await;

    // A group no mapping names: its members are not even planned.
    let (status, _) = dir.add_to_group(&other, &ben).await;
    assert_eq!(status, 204);
    dir.caught_up().await;
    let members = dir.members().await;
    assert_eq!(role_of(&members, &ann).as_deref(), Some("admin"));
    assert_eq!(role_of(&members, &ben).as_deref(), Some("user"));

    // A rewrite of a mapped group moves the members it dropped and those it added.
    let (status, replaced) = dir
        .scim(
            "PUT",
            &format!("/Groups/{admins}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Admins",
                "members": [{"value": ben}]
            })),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    dir.eventually("ann falls back to user, ben becomes admin", |members| {
        role_of(members, &ann).as_deref() == Some("user")
            && role_of(members, &ben).as_deref() == Some("admin")
    })
    .await;

    // A member PATCH of a mapped group moves that member.
    let (status, _) = dir.remove_from_group(&staff, &cid).await;
    assert_eq!(status, 204);
    dir.eventually("cid, in no mapped group, is removed", |members| {
        role_of(members, &cid).is_none()
    })
    .await;

    dir.caught_up().await;
    assert_eq!(
        dir.name_of(&bystander).await,
        bystanders_name,
        "no full reconcile ran: the bystander was never planned"
    );

    // Deleting a mapped group (its members are not copied into the event, so
    // the delete stays one statement) reconciles the org whole: its last
    // member falls back, and the bystander's rename shows the probe could fail.
    let (status, _) = dir.scim("DELETE", &format!("/Groups/{admins}"), None).await;
    assert_eq!(status, 204);
    dir.eventually("ben falls back to user", |members| {
        role_of(members, &ben).as_deref() == Some("user")
    })
    .await;
    dir.caught_up().await;
    assert_eq!(dir.name_of(&bystander).await, "Drifted");
    dir.app.finish().await;
}

/// The change logs start empty and grow by a row a write. A statement over
/// one, prepared while it was small, kept that plan (a sequential scan) once
/// the log was large, for as long as nothing analyzed it: after another
/// tenant's first changes were read, a 1M-member tenant's catch-up read its
/// next events in 20 ms instead of 0.1. Their reads and numbering are
/// planned afresh on every call, so no connection keeps a plan over a change
/// log, however often it reads one (one pooled connection: every read here
/// runs on it, and `pg_prepared_statements` is that connection's own).
#[actix_web::test]
async fn change_logs_are_never_read_through_a_plan_kept_from_when_they_were_small() {
    let app = crate::support::TestApp::spawn_idle(|s| s.database.max_connections = 1).await;
    let dir = Directory::on(app).await;
    switch_to_scim(&dir, &dir.org).await;
    let feed = format!("/connections/{}/directory/events?limit=5", dir.conn);
    for i in 0..8 {
        dir.user(&format!("user{i}@example.com")).await;
        let (status, page) = dir.admin("GET", &feed, None).await;
        assert_eq!(status, 200, "{page}");
        let (status, page) = dir.admin("GET", "/events?limit=5", None).await;
        assert_eq!(status, 200, "{page}");
    }
    let kept = dir
        .app
        .runtime
        .db
        .connection()
        .query_all(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT statement, generic_plans FROM pg_prepared_statements \
             WHERE generic_plans > 0 \
             AND statement ~ '(FROM|UPDATE|JOIN) (directory_events|events|directory_event_members)\\M'",
        ))
        .await
        .unwrap();
    let kept: Vec<String> = kept
        .iter()
        .map(|row| row.try_get::<String>("", "statement").unwrap())
        .collect();
    assert!(kept.is_empty(), "planned once and kept: {kept:#?}");
    dir.app.finish().await;
}
