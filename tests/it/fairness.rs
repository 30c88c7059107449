//! Tenants share the workers: one tenant's long work may use them, but it
//! may not hold back another tenant's IdP changes.

use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::fixtures::{
    connect_directory, count, create_root, finished_run, member_count, run_now, scim_child,
    seed_users, start_sync, switch_to_scim,
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
    let acme = Directory::with(|s| slots(s, 1)).await;
    seed_users(&acme, 50_000).await;
    switch_to_scim(&acme, &acme.org).await;
    let beta = Beta::with_one_member(&acme).await;

    rename_everyone(&acme).await;
    let run = start_sync(&acme, &acme.org, json!({"cascade": false})).await;
    let running = poll(400, Duration::from_millis(5), async || {
        let current = run_now(&acme, &acme.org, &run).await;
        (current["status"] != "queued").then_some(current)
    })
    .await
    .expect("Acme's reconcile starts");
    assert_eq!(running["status"], "running", "{running}");

    let applied = beta.deactivate_bea(&acme).await;
    let acme_now = run_now(&acme, &acme.org, &run).await;
    assert_eq!(
        acme_now["status"], "running",
        "Beta's change waited {applied:?}, for Acme's reconcile to end"
    );
    acme.app.finish().await;
}

/// A directory with a long backlog of changes (an IdP's first push, a bulk
/// edit: 30,000 renamed users here) catches up in turns, so another
/// tenant's deactivation is applied while the backlog is still being
/// worked through. Before, one catch-up applied the whole backlog while
/// holding the changes lane's slot (one per lane here, as when every slot
/// is taken), and the deactivation waited for all of it.
#[actix_web::test]
async fn a_tenants_backlog_of_idp_changes_does_not_hold_back_another_tenants() {
    let acme = Directory::with(|s| slots(s, 1)).await;
    seed_users(&acme, 30_000).await;
    switch_to_scim(&acme, &acme.org).await;
    let app = &acme.app;
    let beta = Beta::with_one_member(&acme).await;

    // Every Acme user renamed, each with its change event, as 30,000 SCIM
    // writes would leave them; then one write through SCIM nudges the workers.
    app.runtime
        .db
        .connection()
        .execute_unprepared(&format!(
            "WITH renamed AS (UPDATE directory_users SET display_name = 'Renamed ' || user_name, \
             version = version + 1 WHERE connection_id = '{0}' RETURNING id, version) \
             INSERT INTO directory_events (connection_id, entity_kind, entity_id, entity_version, op, occurred_at) \
             SELECT '{0}', 'user', id, version, 'updated', now() FROM renamed",
            acme.conn
        ))
        .await
        .unwrap();
    acme.user("someone@example.com").await;
    let backlog = poll(400, Duration::from_millis(5), async || {
        let (_, status) = acme.admin("GET", "/sync-status", None).await;
        let pending = status["pending_events"].as_u64().unwrap_or(0);
        (status["applied_seq"].as_u64() > Some(0) && pending > 0).then_some(pending)
    })
    .await
    .expect("Acme's catch-up starts on the backlog");

    let applied = beta.deactivate_bea(&acme).await;
    let (_, status) = acme.admin("GET", "/sync-status", None).await;
    assert!(
        status["pending_events"].as_u64() > Some(0),
        "Beta's change waited {applied:?}, for Acme's backlog of {backlog} to be applied: {status}"
    );
    // The backlog is applied in turns, to the end.
    let caught_up = poll(2400, Duration::from_millis(50), async || {
        let (_, status) = acme.admin("GET", "/sync-status", None).await;
        (status["pending_events"] == 0).then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "Acme caught up within 2 minutes");
    let renamed = count(
        &app.runtime.db,
        format!(
            "SELECT count(*) AS n FROM members WHERE org_id = '{}' AND name LIKE 'Renamed %'",
            acme.org
        ),
    )
    .await;
    assert_eq!(renamed, 30_000);
    acme.app.finish().await;
}

/// A tenant's cascade over many orgs does not keep the workers from another
/// tenant's sync: once the first tenant has a job running, the other's
/// takes the next free slot, ahead of the rest of the cascade. Before, it
/// waited behind every job the cascade queued first.
#[actix_web::test]
async fn a_tenants_cascade_does_not_keep_the_workers_from_another_tenants_sync() {
    let acme = Directory::on(TestApp::spawn_idle(|s| slots(s, 2)).await).await;
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
    // Two of Acme's may start together before either counts as running,
    // and a third when both ended before the next claim (Acme then has
    // nothing running, and its job is first in the queue): on a loaded
    // machine that happens.
    assert!(
        ahead <= 3,
        "{ahead} of Acme's 7 jobs started before Beta's one (2 slots)"
    );
    acme.app.finish().await;
}

/// `per_lane` job slots per lane, and the production-like lease: the tests'
/// two-second lease lets a heartbeat that is late on a loaded machine (four
/// pooled connections shared with the jobs) hand a running job back to the
/// queue, which reorders exactly what these tests time. Taking over a
/// silent worker's job has tests of its own.
fn slots(settings: &mut orgsync_api::config::Settings, per_lane: usize) {
    settings.worker.concurrency = per_lane;
    settings.worker.lease = 30;
}

/// A second tenant whose directory holds one user, Bea, a member of its org.
struct Beta {
    org: String,
    conn: String,
    token: String,
    bea: String,
}

impl Beta {
    async fn with_one_member(acme: &Directory) -> Self {
        let app = &acme.app;
        let org = create_root(app, "Beta", "beta").await;
        let (conn, sync) = connect_directory(app, &org, "Entra").await;
        let token = sync["token"].as_str().unwrap().to_owned();
        let bea = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "bea@beta.example",
            "emails": [{"value": "bea@beta.example", "primary": true}],
            "active": true,
        });
        let users = format!("/scim/v2/{conn}/Users");
        let (status, bea) = app.call("POST", &users, Some(&token), Some(bea)).await;
        assert_eq!(status, 201, "{bea}");
        switch_to_scim(acme, &org).await;
        assert_eq!(member_count(acme, &org).await, 1);
        Self {
            org,
            conn,
            token,
            bea: bea["id"].as_str().unwrap().to_owned(),
        }
    }

    /// The IdP deactivates Bea: how long until she is no longer a member.
    async fn deactivate_bea(&self, acme: &Directory) -> Duration {
        let deactivated = Instant::now();
        let user = format!("/scim/v2/{}/Users/{}", self.conn, self.bea);
        let off = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}],
        });
        let (status, _) = acme
            .app
            .call("PATCH", &user, Some(&self.token), Some(off))
            .await;
        assert_eq!(status, 200);
        poll(1600, Duration::from_millis(25), async || {
            (member_count(acme, &self.org).await == 0).then(|| deactivated.elapsed())
        })
        .await
        .expect("Beta's deactivation is applied")
    }
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
