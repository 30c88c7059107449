//! Tenants share the workers: one tenant's long work may use them, but it
//! may not hold back another tenant's IdP changes.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::fixtures::{
    connect_directory, create_root, finished_run, member_count, run_now, scim_child, seed_users,
    start_sync, switch_to_scim,
};
use crate::json::items;
use crate::scim::Directory;
use crate::support::{poll, TestApp};

/// While one tenant's reconcile of 50,000 members runs, another tenant's
/// deactivation is applied at once, not after it. Before, both waited in
/// one queue, and the worker read the next jobs only once every job it held
/// was done: the deactivation waited for the whole reconcile (7.7 s here).
/// The worker runs one job at a time per lane here, so every sync slot is
/// taken, as a tenant's cascade over many orgs takes them all.
#[actix_web::test]
async fn a_long_sync_of_one_tenant_does_not_hold_back_another_tenants_idp_changes() {
    let acme = Directory::on(TestApp::spawn_with(|s| s.worker.concurrency = 1).await).await;
    seed_users(&acme, 50_000).await;
    switch_to_scim(&acme, &acme.org).await;
    let app = &acme.app;
    let beta = create_root(app, "Beta", "beta").await;
    let (conn, sync) = connect_directory(app, &beta, "Entra").await;
    let token = sync["token"].as_str().unwrap();
    let users = format!("/scim/v2/{conn}/Users");
    let bea = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bea@beta.example",
        "emails": [{"value": "bea@beta.example", "primary": true}],
        "active": true,
    });
    let (status, bea) = app.call("POST", &users, Some(token), Some(bea)).await;
    assert_eq!(status, 201, "{bea}");
    switch_to_scim(&acme, &beta).await;
    assert_eq!(member_count(&acme, &beta).await, 1);

    rename_everyone(&acme).await;
    let run = start_sync(&acme, &acme.org, json!({"cascade": false})).await;
    let running = poll(400, Duration::from_millis(5), async || {
        let current = run_now(&acme, &acme.org, &run).await;
        (current["status"] != "queued").then_some(current)
    })
    .await
    .expect("Acme's reconcile starts");
    assert_eq!(running["status"], "running", "{running}");

    let deactivated = Instant::now();
    let user = format!("{users}/{}", bea["id"].as_str().unwrap());
    let off = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}],
    });
    let (status, _) = app.call("PATCH", &user, Some(token), Some(off)).await;
    assert_eq!(status, 200);
    let applied = poll(800, Duration::from_millis(25), async || {
        (member_count(&acme, &beta).await == 0).then(|| deactivated.elapsed())
    })
    .await
    .expect("Beta's deactivation is applied");
    let acme_now = run_now(&acme, &acme.org, &run).await;
    assert_eq!(
        acme_now["status"], "running",
        "Beta's change waited {applied:?}, for Acme's reconcile to end"
    );
    acme.app.finish().await;
}

/// A tenant's cascade over many orgs does not keep the workers from another
/// tenant's sync: once the first tenant has a job running, the other's
/// takes the next free slot, ahead of the rest of the cascade. Before, it
/// waited behind every job the cascade queued first.
#[actix_web::test]
async fn a_tenants_cascade_does_not_keep_the_workers_from_another_tenants_sync() {
    let acme = Directory::on(TestApp::spawn_idle(|s| s.worker.concurrency = 2).await).await;
    seed_users(&acme, 2_000).await;
    for slug in ["c1", "c2", "c3", "c4", "c5", "c6"] {
        scim_child(&acme, slug).await;
    }
    rename_everyone(&acme).await;
    let app = &acme.app;
    let beta = create_root(app, "Beta", "beta").await;
    connect_directory(app, &beta, "Entra").await;
    switch_to_scim(&acme, &beta).await;

    // Both queued before any worker runs: the cascade's seven jobs first.
    let cascade = start_sync(&acme, &acme.org, json!({})).await;
    assert_eq!(
        cascade["jobs"].as_array().map(Vec::len),
        Some(7),
        "{cascade}"
    );
    let single = start_sync(&acme, &beta, json!({"cascade": false})).await;
    app.start_worker();
    let single = finished_run(&acme, &beta, &single).await;
    let cascade = finished_run(&acme, &acme.org, &cascade).await;
    assert_eq!(single["status"], "succeeded", "{single}");
    assert_eq!(cascade["status"], "succeeded");
    let started = |job: &serde_json::Value| {
        let at = job["started_at"].as_str().expect("a started job");
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let beta_started = started(&single["jobs"][0]);
    let ahead = items(&cascade["jobs"])
        .filter(|job| started(job) < beta_started)
        .count();
    assert!(
        ahead <= 2,
        "{ahead} of Acme's 7 jobs started before Beta's one (2 slots)"
    );
    acme.app.finish().await;
}

/// Renames every user of `dir`'s directory behind the engine's back, so a
/// reconcile of an org drawing on it has an update per member to write.
async fn rename_everyone(dir: &Directory) {
    dir.app
        .runtime
        .db
        .connection()
        .execute_unprepared(&format!(
            "UPDATE directory_users SET display_name = 'Renamed ' || user_name WHERE connection_id = '{}'",
            dir.conn
        ))
        .await
        .unwrap();
}
