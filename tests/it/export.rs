//! Member exports under concurrent writes and many downloads at once: every
//! page comes from the moment the export began, and exports are admitted
//! within bounds no tenant can take alone.

use std::time::Duration;

use orgsync_domain::auth::Principal;
use orgsync_domain::org::OrgId;
use orgsync_domain::service::MemberExport;
use orgsync_domain::sync::MemberFilter;
use orgsync_domain::Error;
use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::fixtures::{count, create_root, member_count, seed_users, switch_to_scim};
use crate::scim::Directory;
use crate::support::TestApp;

fn operator() -> Principal {
    Principal::Platform {
        subject: "export-test".into(),
    }
}

fn org_id(org: &str) -> OrgId {
    OrgId(Uuid::parse_str(org).unwrap())
}

async fn export(app: &TestApp, org: &str) -> Result<MemberExport, Error> {
    app.runtime
        .state
        .members
        .export(&operator(), org_id(org), MemberFilter::default())
        .await
}

/// `(id, email, role)` of the org's members, by id, read straight from the table.
async fn stored_members(dir: &Directory) -> Vec<(Uuid, String, String)> {
    dir.app
        .runtime
        .db
        .connection()
        .query_all(Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT id, email, role FROM members WHERE org_id = '{}' ORDER BY id",
                dir.org
            ),
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.try_get("", "id").unwrap(),
                row.try_get("", "email").unwrap(),
                row.try_get("", "role").unwrap(),
            )
        })
        .collect()
}

/// While an export reads, the member with the last id leaves and comes back
/// under a new one, another member's role changes and the directory drops
/// every group membership: the pages still to come show none of it.
/// Read page by page without a snapshot, the export would miss the first
/// member and list the new one, a later role, and no groups.
#[actix_web::test]
async fn every_page_of_an_export_shows_the_moment_it_began() {
    let dir = Directory::new().await;
    seed_users(&dir, 30).await;
    let everyone = dir.group("Everyone", &[] as &[&str]).await;
    let db = dir.app.runtime.db.connection();
    db.execute_unprepared(&format!(
        "INSERT INTO directory_group_members (connection_id, group_id, member_value, member_type) \
         SELECT connection_id, '{everyone}', id::text, 'User' FROM directory_users \
         WHERE connection_id = '{conn}'",
        conn = dir.conn
    ))
    .await
    .unwrap();
    switch_to_scim(&dir, &dir.org).await;
    let before = stored_members(&dir).await;
    assert_eq!(before.len(), 30);

    let mut export = export(&dir.app, &dir.org).await.unwrap();
    let mut rows = export.next_batch(10).await.unwrap().unwrap();
    let (last, _, _) = &before[29];
    let (changed, _, _) = &before[25];
    for write in [
        format!(
            "UPDATE members SET id = 'ffffffff-ffff-4fff-bfff-ffffffffffff' WHERE id = '{last}'"
        ),
        format!("UPDATE members SET role = 'owner' WHERE id = '{changed}'"),
        format!(
            "DELETE FROM directory_group_members WHERE connection_id = '{}'",
            dir.conn
        ),
    ] {
        db.execute_unprepared(&write).await.unwrap();
    }
    while let Some(batch) = export.next_batch(10).await.unwrap() {
        rows.extend(batch);
    }
    drop(export);

    let exported: Vec<(Uuid, String, String)> = rows
        .iter()
        .map(|(member, _)| {
            (
                member.id.0,
                member.email.clone(),
                member.role.as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(exported, before);
    for (member, groups) in &rows {
        assert_eq!(groups, &["Everyone"], "{}", member.email);
    }
    assert_eq!(
        stored_members(&dir).await[29].0.to_string(),
        "ffffffff-ffff-4fff-bfff-ffffffffffff"
    );
    dir.app.finish().await;
}

/// With two exports at once allowed, a tenant runs one: its second gets a
/// 503 `busy` problem with a Retry-After, another tenant still exports, and
/// the place comes back when the first export ends.
#[actix_web::test]
async fn a_tenant_cannot_take_every_export_place() {
    let app = TestApp::spawn_with(|s| {
        s.limits.exports_at_once = 2;
        // Two exports at once, two connections each, and the worker's.
        s.database.max_connections = 8;
    })
    .await;
    let dir = Directory::on(app).await;
    let other = create_root(&dir.app, "Other", "other").await;
    let csv = |org: &str| {
        actix_web::test::TestRequest::get()
            .uri(&format!("/api/v1/orgs/{org}/members.csv"))
            .insert_header((
                "authorization",
                format!("Bearer {}", dir.app.tokens.platform()),
            ))
    };

    let running = export(&dir.app, &dir.org).await.unwrap();
    let refused = dir.app.send(csv(&dir.org)).await;
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let problem: serde_json::Value =
        serde_json::from_slice(&actix_web::test::read_body(refused).await).unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("/busy"),
        "{problem}"
    );
    assert!(matches!(
        export(&dir.app, &dir.org).await,
        Err(Error::Busy(_))
    ));

    let elsewhere = dir.app.send(csv(&other)).await;
    assert_eq!(elsewhere.status().as_u16(), 200);
    actix_web::test::read_body(elsewhere).await;

    drop(running);
    let again = dir.app.send(csv(&dir.org)).await;
    assert_eq!(again.status().as_u16(), 200);
    actix_web::test::read_body(again).await;
    dir.app.finish().await;
}

/// An export that reads for longer than `limits.export_seconds` (a client
/// too slow to let its snapshot go) is ended, and gives its place back, as
/// one read to its end does.
#[actix_web::test]
async fn an_export_reading_past_its_time_is_ended() {
    let app = TestApp::spawn_with(|s| {
        s.limits.export_seconds = 1;
        s.limits.exports_at_once = 1;
    })
    .await;
    let dir = Directory::on(app).await;
    seed_users(&dir, 25).await;
    switch_to_scim(&dir, &dir.org).await;

    let mut slow = export(&dir.app, &dir.org).await.unwrap();
    assert_eq!(slow.next_batch(10).await.unwrap().unwrap().len(), 10);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(matches!(slow.next_batch(10).await, Err(Error::Busy(_))));
    assert!(
        matches!(slow.next_batch(10).await, Ok(None)),
        "ended for good"
    );
    drop(slow);

    let mut rows = 0;
    let mut fast = export(&dir.app, &dir.org)
        .await
        .expect("the place came back");
    while let Some(batch) = fast.next_batch(10).await.unwrap() {
        rows += batch.len();
    }
    assert_eq!(rows, 25);
    let next = export(&dir.app, &dir.org).await;
    assert!(next.is_ok(), "an export read to its end lets its place go");
    drop((fast, next));
    dir.app.finish().await;
}

/// Sessions of the test's database sitting in an open transaction.
async fn idle_in_transaction(dir: &Directory) -> i64 {
    count(
        &dir.app.runtime.db,
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
            .into(),
    )
    .await
}

/// A client that stops reading does not hold its snapshot (and vacuum, for
/// every tenant) open: PostgreSQL ends the export's idle transactions once
/// no export may still be reading (`limits.export_seconds`, at most a
/// minute), and the pool goes on serving with fresh connections.
#[actix_web::test]
async fn a_stalled_export_lets_its_snapshot_go() {
    let app = TestApp::spawn_with(|s| s.limits.export_seconds = 2).await;
    let dir = Directory::on(app).await;
    seed_users(&dir, 25).await;
    switch_to_scim(&dir, &dir.org).await;

    let mut stalled = export(&dir.app, &dir.org).await.unwrap();
    assert_eq!(stalled.next_batch(10).await.unwrap().unwrap().len(), 10);
    assert!(
        idle_in_transaction(&dir).await >= 2,
        "the export holds its two snapshot transactions"
    );
    let ended = async {
        while idle_in_transaction(&dir).await > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), ended)
        .await
        .expect("PostgreSQL ended the stalled export's transactions");
    assert!(
        stalled.next_batch(10).await.is_err(),
        "the stalled export cannot go on"
    );
    drop(stalled);

    assert_eq!(member_count(&dir, &dir.org).await, 25, "the pool recovered");
    let mut rows = 0;
    let mut again = export(&dir.app, &dir.org).await.unwrap();
    while let Some(batch) = again.next_batch(10).await.unwrap() {
        rows += batch.len();
    }
    assert_eq!(rows, 25);
    dir.app.finish().await;
}
