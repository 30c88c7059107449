//! Partial failure: one org whose sync fails does not hold back the others
//! drawing on the same directory, and tenants see a stable summary of the
//! failure, never the raw cause.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::fixtures::{
    admin, child, count, finished_run, member_count, run_now, scim_child, seed_users,
    set_provisioning, start_sync, switch_to_scim, unprotected_scim_directory, wait_for_members,
};
use crate::json::{items, strings};
use crate::scim::Directory;
use crate::support::{poll, Lcg, TestApp, Timed};

#[actix_web::test]
async fn a_failing_org_does_not_stop_its_siblings_and_tenants_see_no_raw_cause() {
    let dir = Directory::with(|s| s.worker.max_attempts = 1).await;
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
        let found = poll(200, Duration::from_millis(50), async || {
            let (_, page) = admin(&dir, "GET", org, "/members", None).await;
            let members = page["data"].as_array().unwrap();
            members
                .iter()
                .any(|m| m["directory_user_id"] == second.as_str())
                .then_some(())
        })
        .await;
        assert!(
            found.is_some(),
            "{org} did not get the new user while its sibling fails"
        );
    }

    let run = start_sync(&dir, &broken, json!({"cascade": false})).await;
    let finished = finished_run(&dir, &broken, &run).await;
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
    // Downstream applications learn of the failure with the same summary.
    let (status, events) = admin(&dir, "GET", &broken, "/events?types=sync.run.failed", None).await;
    assert_eq!(status, 200, "{events}");
    let failed = &events["data"][0];
    assert_eq!(failed["data"]["error"], error.as_str(), "{events}");
    assert!(!failed.to_string().contains("not json"), "{failed}");
    dir.app.finish().await;
}

/// A run whose job failed for good is retried by an admin once the cause is
/// fixed: only the failed job runs again, on the same run, and succeeds. A
/// retry of a run with nothing failed re-runs nothing.
#[actix_web::test]
async fn a_failed_run_is_retried_once_its_cause_is_fixed() {
    let dir = Directory::with(|s| s.worker.max_attempts = 1).await;
    dir.user("first@example.com").await;
    let broken = scim_child(&dir, "broken").await;
    let db = dir.app.runtime.db.connection();
    db.execute_unprepared(&format!(
        "INSERT INTO org_membership_settings (org_id, group_mappings, deprovision, updated_at) \
         VALUES ('{broken}', 'not json', 'remove', now())"
    ))
    .await
    .unwrap();
    dir.user("second@example.com").await;
    let run = start_sync(&dir, &broken, json!({"cascade": false})).await;
    let failed = finished_run(&dir, &broken, &run).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["jobs"][0]["attempts"], 1, "{failed}");

    db.execute_unprepared(&format!(
        "DELETE FROM org_membership_settings WHERE org_id = '{broken}'"
    ))
    .await
    .unwrap();
    let retry = format!("/syncs/{}/retry", run["id"].as_str().unwrap());
    let (status, retried) = admin(&dir, "POST", &broken, &retry, None).await;
    assert_eq!(status, 202, "{retried}");
    assert_eq!(retried["id"], run["id"], "the same run goes on");
    let done = finished_run(&dir, &broken, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(
        done["jobs"][0]["attempts"], 1,
        "a retry gets the full attempt budget again: {done}"
    );
    assert_ne!(
        done["jobs"][0]["finished_at"],
        failed["jobs"][0]["finished_at"]
    );
    assert_eq!(member_count(&dir, &broken).await, 2);

    let (status, again) = admin(&dir, "POST", &broken, &retry, None).await;
    assert_eq!(status, 202, "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = run_now(&dir, &broken, &run).await;
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(
        after["jobs"][0]["finished_at"], done["jobs"][0]["finished_at"],
        "nothing failed, nothing re-ran: {after}"
    );
    dir.app.finish().await;
}

/// An admin retrying a failed run while another asks for a new sync of the
/// same org, each clicking twice: every request is queued (the retried run
/// follows the org's one queued job), and every run ends well. A retry
/// that came while the new sync's job was queued left the run failed, and
/// one inside the new sync's transaction answered 500.
#[actix_web::test]
async fn a_retry_sent_with_new_syncs_of_the_same_org_joins_them() {
    let dir = Directory::with(|s| s.worker.max_attempts = 1).await;
    dir.user("first@example.com").await;
    let broken = scim_child(&dir, "broken").await;
    let db = dir.app.runtime.db.connection();
    let syncs = format!("/api/v1/orgs/{broken}/syncs");
    for round in 0..6_u64 {
        db.execute_unprepared(&format!(
            "INSERT INTO org_membership_settings (org_id, group_mappings, deprovision, updated_at) \
             VALUES ('{broken}', 'not json', 'remove', now())"
        ))
        .await
        .unwrap();
        let run = start_sync(&dir, &broken, json!({"cascade": false})).await;
        let failed = finished_run(&dir, &broken, &run).await;
        assert_eq!(failed["status"], "failed", "round {round}: {failed}");
        db.execute_unprepared(&format!(
            "DELETE FROM org_membership_settings WHERE org_id = '{broken}'"
        ))
        .await
        .unwrap();

        // The retry a little later each round: from inside the new sync's
        // transaction to after it, while its job still waits for a worker.
        let retry = format!("{syncs}/{}/retry", run["id"].as_str().unwrap());
        let requests = (0..2)
            .flat_map(|click| {
                [
                    Timed::at(
                        click,
                        "POST",
                        syncs.clone(),
                        Some(json!({"cascade": false})),
                    ),
                    Timed::at(round + click, "POST", retry.clone(), None),
                ]
            })
            .collect();
        let answers = dir.app.race(requests).await;
        for (status, answer) in &answers {
            assert_eq!(*status, 202, "round {round}: {answer}");
        }
        for (_, answered) in &answers {
            let done = finished_run(&dir, &broken, answered).await;
            assert_eq!(done["status"], "succeeded", "round {round}: {done}");
        }
        let done = finished_run(&dir, &broken, &run).await;
        assert_eq!(done["status"], "succeeded", "round {round}: {done}");
    }
    assert_eq!(
        count(
            &dir.app.runtime.db,
            "SELECT count(*) AS n FROM sync_jobs j WHERE NOT EXISTS \
             (SELECT 1 FROM sync_run_jobs r WHERE r.job_id = j.id)"
                .to_owned()
        )
        .await,
        0,
        "a retried job no run shows is not kept"
    );
    dir.app.finish().await;
}

/// An admin's change dropped while it holds the org's writer lease (a
/// closed tab, a proxy that gave up) does not leave the org held: the lease
/// is given up at once, and the next change goes through instead of waiting
/// out the lease (a minute, with every sync of the org) and failing.
#[actix_web::test]
async fn a_change_dropped_while_writing_leaves_the_org_free() {
    use sea_orm::TransactionTrait;

    let dir = Directory::on(TestApp::spawn().await).await;
    let org = child(&dir, "dropped").await;
    let db = dir.app.runtime.db.connection();
    // The create's insert waits on this, with the lease already taken.
    let blocker = db.begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE members IN EXCLUSIVE MODE")
        .await
        .unwrap();
    let body = json!({"email": "left@example.com"});
    let create = admin(&dir, "POST", &org, "/members", Some(body));
    let dropped = tokio::time::timeout(Duration::from_secs(2), create).await;
    assert!(
        dropped.is_err(),
        "the create waited on the lock: {dropped:?}"
    );
    blocker.rollback().await.unwrap();

    let held = format!("SELECT count(*) AS n FROM org_writers WHERE org_id = '{org}'");
    let freed = poll(40, Duration::from_millis(50), async || {
        (count(&dir.app.runtime.db, held.clone()).await == 0).then_some(())
    })
    .await;
    assert!(freed.is_some(), "the dropped change still holds the org");
    let body = json!({"email": "next@example.com"});
    let (status, made) = admin(&dir, "POST", &org, "/members", Some(body)).await;
    assert_eq!(status, 201, "{made}");
    dir.app.finish().await;
}

/// The sweeper reclaims two dead workers' jobs while a new sync of one of
/// their orgs is being queued: that org's job yields to the new one
/// (failed, superseded), and the other is queued again. The whole sweep
/// used to fail on the one-queued-job index, reclaiming neither.
#[actix_web::test]
async fn a_dead_workers_job_reclaimed_while_a_new_sync_is_queued_yields_to_it() {
    use orgsync_domain::ports::SyncRunRepository;
    use sea_orm::TransactionTrait;
    use time::Duration as Span;

    let dir = Directory::on(TestApp::spawn_idle(|_| {}).await).await;
    let other = child(&dir, "other").await;
    let runs = orgsync_infra::SqlSyncRunRepository::new(dir.app.runtime.db.clone());
    let mut jobs = Vec::new();
    for org in [&dir.org, &other] {
        let run = start_sync(&dir, org, json!({"cascade": false})).await;
        jobs.push(run["jobs"][0]["id"].as_str().unwrap().to_owned());
    }
    let start = time::OffsetDateTime::now_utc();
    for id in &jobs {
        let job = orgsync_domain::sync::JobId(id.parse().unwrap());
        runs.claim(job, "dead:1", start, start + Span::seconds(1))
            .await
            .unwrap()
            .expect("claimed");
    }
    // A new sync of the first org, its transaction not yet committed.
    let pending = dir.app.runtime.db.connection().begin().await.unwrap();
    pending
        .execute_unprepared(&format!(
            "INSERT INTO sync_jobs (id, org_id, scope, status, attempts, not_before, published_at, created_at) \
             VALUES ('{}', '{}', 'both', 'queued', 0, now(), now(), now())",
            uuid::Uuid::now_v7(),
            dir.org
        ))
        .await
        .unwrap();
    let later = start + Span::seconds(60);
    let (reclaimed, committed) = futures::join!(
        runs.reclaim_stale(later - Span::seconds(30), later),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            pending.commit().await
        }
    );
    committed.unwrap();
    assert_eq!(reclaimed.unwrap(), 1, "the other org's job is queued again");
    // (queued, failed as superseded) for the job `id`.
    let state = async |id: &str| {
        let db = &dir.app.runtime.db;
        let of = |status: &str| {
            format!("SELECT count(*) AS n FROM sync_jobs WHERE id = '{id}' AND {status}")
        };
        (
            count(db, of("status = 'queued'")).await,
            count(db, of("status = 'failed' AND error LIKE '%superseded%'")).await,
        )
    };
    assert_eq!(state(&jobs[0]).await, (0, 1), "yielded to the new sync");
    assert_eq!(state(&jobs[1]).await, (1, 0), "queued again");
    dir.app.finish().await;
}

/// A worker that went silent loses its job to another; when it wakes up, its
/// writes are fenced off by the attempt it claimed, and a worker that keeps
/// renewing its lease never loses the job.
#[actix_web::test]
async fn a_reclaimed_jobs_old_holder_can_neither_renew_nor_record() {
    use orgsync_domain::membership::ChangeCounts;
    use orgsync_domain::ports::SyncRunRepository;
    use time::Duration as Span;

    let dir = Directory::on(TestApp::spawn_idle(|_| {}).await).await;
    let run = start_sync(&dir, &dir.org, json!({"cascade": false})).await;
    let run = run_now(&dir, &dir.org, &run).await;
    let job = orgsync_domain::sync::JobId(run["jobs"][0]["id"].as_str().unwrap().parse().unwrap());
    let runs = orgsync_infra::SqlSyncRunRepository::new(dir.app.runtime.db.clone());
    let start = time::OffsetDateTime::now_utc();

    let first = runs
        .claim(job, "first:1", start, start + Span::seconds(1))
        .await
        .unwrap()
        .expect("claimed");
    assert!(runs
        .heartbeat(
            job,
            first.attempts,
            start + Span::seconds(1),
            start + Span::seconds(2),
        )
        .await
        .unwrap());
    // Renewed at +1 s: a sweep with a lease of 30 s at +20 s leaves it alone.
    assert_eq!(
        runs.reclaim_stale(start - Span::seconds(9), start + Span::seconds(20))
            .await
            .unwrap(),
        0
    );

    // Then the worker goes silent: past its lease the job is reclaimed and taken again.
    let later = start + Span::seconds(60);
    assert_eq!(
        runs.reclaim_stale(later - Span::seconds(30), later)
            .await
            .unwrap(),
        1
    );
    let second = runs
        .claim(job, "second:2", later, later + Span::seconds(1))
        .await
        .unwrap()
        .expect("claimed again");
    assert_eq!(second.attempts, first.attempts + 1);
    assert_eq!(
        (first.worker.as_deref(), second.worker.as_deref()),
        (Some("first:1"), Some("second:2")),
        "each attempt names the worker that took it"
    );

    // The first holder wakes up: it cannot renew, and what it records changes nothing.
    assert!(!runs
        .heartbeat(job, first.attempts, later, later + Span::seconds(1))
        .await
        .unwrap());
    runs.fail(job, first.attempts, "stale", None, later)
        .await
        .unwrap();
    runs.complete(job, first.attempts, ChangeCounts::default(), None, later)
        .await
        .unwrap();
    let current = run_now(&dir, &dir.org, &run).await;
    assert_eq!(current["jobs"][0]["status"], "running", "{current}");

    runs.complete(job, second.attempts, ChangeCounts::default(), None, later)
        .await
        .unwrap();
    let current = run_now(&dir, &dir.org, &run).await;
    assert_eq!(current["jobs"][0]["status"], "succeeded", "{current}");
    dir.app.finish().await;
}

/// Member writes are conditional on the version the plan read: a plan made
/// before another change (an admin's edit, the incremental path) fails and
/// is made again, it never overwrites or undoes that change.
#[actix_web::test]
async fn a_plan_made_before_a_change_can_neither_overwrite_nor_undo_it() {
    use orgsync_domain::audit::Actor;
    use orgsync_domain::membership::{Member, MemberId};
    use orgsync_domain::org::OrgId;
    use orgsync_domain::ports::{MemberWrites, MembershipRepository};
    use orgsync_domain::Error;

    let dir = Directory::new().await;
    let (status, created) = dir
        .add_member(json!({"email": "ann@example.com", "name": "Ann"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = MemberId(created["id"].as_str().unwrap().parse().unwrap());
    let org = OrgId(dir.org.parse().unwrap());
    let members = orgsync_infra::SqlMembershipRepository::new(dir.app.runtime.db.clone());
    let planned_from = members
        .find_member(org, id)
        .await
        .unwrap()
        .expect("the member");

    // Someone changes the member after the plan read it.
    let (status, _) = dir.rename_member(id.0, "Ann B.").await;
    assert_eq!(status, 200);

    fn writes<'a>(
        updated: Vec<(Member, &'a Member)>,
        removed: Vec<&'a Member>,
    ) -> MemberWrites<'a> {
        MemberWrites {
            added: Vec::new(),
            updated,
            removed,
            relinked: Vec::new(),
            actor: Actor::Sync {
                job_id: orgsync_domain::sync::JobId::new(),
            },
            at: time::OffsetDateTime::now_utc(),
        }
    }
    let mut stale = planned_from.clone();
    stale.name = Some("Stale".into());
    let refused = members
        .apply(org, &writes(vec![(stale, &planned_from)], Vec::new()))
        .await;
    assert!(
        matches!(refused, Err(Error::PreconditionFailed(_))),
        "{refused:?}"
    );
    let refused = members
        .apply(org, &writes(Vec::new(), vec![&planned_from]))
        .await;
    assert!(
        matches!(refused, Err(Error::PreconditionFailed(_))),
        "{refused:?}"
    );
    let now = dir.get(&format!("/members/{}", id.0)).await;
    assert_eq!(now["name"], "Ann B.", "the later change stands");

    // Planned from the current version, the same writes apply, with their audit entry.
    let current = members
        .find_member(org, id)
        .await
        .unwrap()
        .expect("the member");
    members
        .apply(org, &writes(Vec::new(), vec![&current]))
        .await
        .expect("a current plan applies");
    let audit = dir.get("/audit-log?action=member.removed").await;
    let entry = &audit["data"][0];
    assert_eq!(entry["actor"]["kind"], "sync", "{audit}");
    assert_eq!(entry["before"]["name"], "Ann B.", "{audit}");
    let (status, _) = dir.admin("GET", &format!("/members/{}", id.0), None).await;
    assert_eq!(status, 404);
    dir.app.finish().await;
}

/// What the directory does to members is audited member by member, by the
/// connection (or the sync job), with the member before and after.
#[actix_web::test]
async fn idp_driven_member_changes_are_audited_per_member() {
    let dir = Directory::new().await;
    dir.user("ann@example.com").await;
    switch_to_scim(&dir, &dir.org).await;
    let bob = dir.user("bob@example.com").await;
    let created = poll(200, Duration::from_millis(50), async || {
        let audit = dir.get("/audit-log?action=member.created").await;
        let entries = audit["data"].as_array().unwrap();
        entries
            .iter()
            .find(|e| e["after"]["directory_user_id"] == bob.as_str())
            .cloned()
    })
    .await
    .unwrap_or(Value::Null);
    assert_eq!(created["actor"]["kind"], "scim", "{created}");
    assert_eq!(created["actor"]["connection_id"], dir.conn.as_str());
    assert!(created["before"].is_null());
    // The mode switch's own adds are audited too, by the admin who confirmed it.
    let audit = dir.get("/audit-log?action=member.created").await;
    assert!(items(&audit["data"])
        .any(|e| e["actor"]["kind"] == "admin" && e["after"]["email"] == "ann@example.com"));
    dir.app.finish().await;
}

/// Asserts that a fresh reconcile of `org` alone would change nothing.
async fn assert_converged(dir: &Directory, org: &str) {
    let (status, preview) = admin(
        dir,
        "POST",
        org,
        "/syncs/preview",
        Some(json!({"cascade": false})),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        preview["orgs"][0]["counts"],
        json!({"adds": 0, "updates": 0, "removals": 0, "suspensions": 0}),
        "converged: {preview}"
    );
}

/// A directory group with no members yet.
async fn empty_group(dir: &Directory, name: &str) -> String {
    let (status, group) = dir
        .scim("POST", "/Groups", Some(json!({"displayName": name})))
        .await;
    assert_eq!(status, 201, "{group}");
    group["id"].as_str().unwrap().to_owned()
}

/// Every member's directory user id, over all pages.
async fn member_user_ids(dir: &Directory, org: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = admin(
            dir,
            "GET",
            org,
            &format!("/members?limit=200{cursor}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        ids.extend(
            strings(&page["data"], "directory_user_id")
                .into_iter()
                .map(str::to_owned),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

/// One lane of random steps: SCIM writes (creations, deactivations,
/// reactivations, deletions, renames, group membership) and manual syncs.
async fn random_steps(dir: &Directory, groups: &[String], lane: u64, steps: usize) {
    let mut rng = Lcg(0x5eed_2026_1202 + lane);
    let mut users: Vec<String> = Vec::new();
    for step in 0..steps {
        let pick = |rng: &mut Lcg, users: &[String]| users.get(rng.below(users.len())).cloned();
        match rng.below(8) {
            0 | 1 => users.push(dir.user(&format!("u{lane}-{step}@example.com")).await),
            2 => {
                if let Some(user) = pick(&mut rng, &users) {
                    let active = rng.below(2) == 0;
                    dir.set_active(&user, active).await;
                }
            }
            3 => {
                if let Some(user) = pick(&mut rng, &users) {
                    dir.scim("DELETE", &format!("/Users/{user}"), None).await;
                    users.retain(|u| *u != user);
                }
            }
            4 => {
                if let Some(user) = pick(&mut rng, &users) {
                    let name = format!("n{lane}-{step}");
                    let rename = json!([{"op": "replace", "path": "displayName", "value": name}]);
                    dir.scim_patch(&format!("/Users/{user}"), rename).await;
                }
            }
            5 | 6 => {
                if let Some(user) = pick(&mut rng, &users) {
                    let group = &groups[rng.below(groups.len())];
                    let body = if rng.below(2) == 0 {
                        json!([{"op": "add", "path": "members", "value": [{"value": user}]}])
                    } else {
                        json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}])
                    };
                    dir.scim_patch(&format!("/Groups/{group}"), body).await;
                }
            }
            _ => {
                dir.admin("POST", "/syncs", Some(json!({"cascade": false})))
                    .await;
            }
        }
    }
}

/// 1,000 random steps in four concurrent lanes (SCIM writes racing each
/// other on shared groups, manual full resyncs racing the incremental path
/// on the worker): at the end the org equals a fresh reconcile (its preview
/// changes nothing) and holds exactly the active users.
#[actix_web::test]
async fn random_interleavings_of_scim_writes_and_syncs_converge() {
    let dir = unprotected_scim_directory().await;
    let org = dir.org.clone();
    let groups = [empty_group(&dir, "A").await, empty_group(&dir, "B").await];
    const LANES: u64 = 4;
    const STEPS: usize = 250;
    futures::future::join_all((0..LANES).map(|lane| random_steps(&dir, &groups, lane, STEPS)))
        .await;

    // Quiet: the directory's changes are applied and no sync is queued or running.
    let settled = poll(1200, Duration::from_millis(50), async || {
        let (_, status) = admin(&dir, "GET", &org, "/sync-status", None).await;
        let (_, runs) = admin(&dir, "GET", &org, "/syncs?limit=200", None).await;
        let busy =
            items(&runs["data"]).any(|r| r["status"] == "queued" || r["status"] == "running");
        (status["current"] == true && !busy).then_some(())
    })
    .await;
    assert!(settled.is_some(), "did not settle in 60 s");
    assert_converged(&dir, &org).await;
    let active = dir
        .scim_get("/Users?filter=active%20eq%20true&count=1000")
        .await;
    let mut expected: Vec<String> = strings(&active["Resources"], "id")
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert!(expected.len() > 50, "the run should leave a sizeable org");
    let mut actual = member_user_ids(&dir, &org).await;
    expected.sort();
    actual.sort();
    assert_eq!(actual, expected);
    dir.app.finish().await;
}

/// A directory on an app whose workers hold a job `lease` seconds and sweep every second.
async fn with_lease(lease: u64) -> Directory {
    Directory::with(|s| {
        s.worker.lease = lease;
        s.worker.sweep_every = 1;
    })
    .await
}

/// A job that runs longer than the lease keeps it: its worker renews the
/// lease, so the sweeper (every second here) never hands it to another
/// worker, and it runs exactly once.
#[actix_web::test]
async fn a_job_longer_than_its_lease_is_renewed_and_runs_once() {
    let dir = with_lease(1).await;
    let org = dir.org.clone();
    switch_to_scim(&dir, &org).await;
    // 30,000 users behind the engine's back (no events): only a full sync adds them.
    seed_users(&dir, 30_000).await;
    let run = start_sync(&dir, &org, json!({"cascade": false})).await;
    let done = finished_run(&dir, &org, &run).await;
    let job = &done["jobs"][0];
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        job["attempts"], 1,
        "taken over while its worker was alive: {job}"
    );
    assert_eq!(job["counts"]["adds"], 30_000);
    let took = |field: &str| {
        time::OffsetDateTime::parse(
            job[field].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(
        took("finished_at") - took("started_at") > time::Duration::seconds(1),
        "the job must outlast its 1 s lease for this test to mean anything: {job}"
    );
    dir.app.finish().await;
}

/// The reported race at scale: a full reconcile of 50,000 members is running
/// (every member's name changed behind the engine's back, so it rewrites
/// them all) when the IdP deactivates one person. The reconcile has the org
/// to itself; the deactivation is applied after it, never overwritten by
/// its older plan (and were the two to meet, conditional writes would make
/// the reconcile plan again).
#[actix_web::test]
async fn a_deactivation_during_a_full_reconcile_of_50000_members_is_never_undone() {
    use sea_orm::ConnectionTrait;

    let dir = Directory::new().await;
    let org = dir.org.clone();
    let db = dir.app.runtime.db.clone();
    seed_users(&dir, 50_000).await;
    let target = dir.user("target@example.com").await;
    switch_to_scim(&dir, &org).await;
    let count = |email: &'static str| members_where(&dir, &org, format!("email LIKE '{email}'"));
    assert_eq!(count("%").await, 50_001);

    // Behind the engine's back, so only a full reconcile sees it.
    db.connection()
        .execute_unprepared(&format!(
            "UPDATE directory_users SET display_name = 'Renamed ' || user_name WHERE connection_id = '{}'",
            dir.conn
        ))
        .await
        .unwrap();
    let run = start_sync(&dir, &org, json!({"cascade": false})).await;
    let taken = poll(1200, Duration::from_millis(5), async || {
        let current = run_now(&dir, &org, &run).await;
        (current["status"] != "queued").then_some(current)
    })
    .await;
    if let Some(current) = taken {
        assert_eq!(
            current["status"], "running",
            "the reconcile must still run: {current}"
        );
    }
    let (status, _) = dir.set_active(&target, false).await;
    assert_eq!(status, 200);

    let done = finished_run(&dir, &org, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // The reconcile had the org to itself; the deactivation is applied
    // right after it (its writer nudges the directory when done).
    poll(200, Duration::from_millis(50), async || {
        (count("target@example.com").await == 0).then_some(())
    })
    .await;
    assert_eq!(
        count("target@example.com").await,
        0,
        "the deactivation was undone"
    );
    assert_eq!(count("%").await, 50_000, "every other member stays");
    assert_converged(&dir, &org).await;
    dir.app.finish().await;
}

/// One writer per org: while another writer holds an org (here the test,
/// standing in for a long reconcile), the IdP's changes wait instead of
/// interleaving, a manual sync stays queued, and an admin's mode switch or
/// member edit waits (10 s) and is then refused with 409 `sync-in-progress`. Once the
/// holder lets go, everything that waited is applied.
#[actix_web::test]
async fn the_incremental_path_a_sync_job_and_an_admin_change_never_write_an_org_at_once() {
    use orgsync_domain::org::OrgId;
    use orgsync_domain::ports::SyncRunRepository;
    use time::Duration as Span;

    let dir = with_lease(2).await;
    let org = dir.org.clone();
    dir.user("first@example.com").await;
    switch_to_scim(&dir, &org).await;
    assert_eq!(member_count(&dir, &org).await, 1);

    let runs = orgsync_infra::SqlSyncRunRepository::new(dir.app.runtime.db.clone());
    let org_id = OrgId(org.parse().unwrap());
    let now = time::OffsetDateTime::now_utc();
    assert!(runs
        .lock_org(
            org_id,
            "test",
            now,
            now + Span::seconds(60),
            Duration::from_secs(10)
        )
        .await
        .unwrap());
    assert!(
        !runs
            .lock_org(
                org_id,
                "another",
                now,
                now + Span::seconds(60),
                Duration::ZERO
            )
            .await
            .unwrap(),
        "one holder at a time"
    );

    dir.user("second@example.com").await;
    let run = start_sync(&dir, &org, json!({"cascade": false})).await;
    let (_, page) = admin(&dir, "GET", &org, "/members", None).await;
    let member = page["data"][0]["id"].as_str().unwrap().to_owned();
    // Both wait out the same 10 s, side by side.
    let member_path = format!("/members/{member}");
    let ((status, refused), (edit_status, edit)) = futures::join!(
        set_provisioning(&dir, &org, "manual"),
        admin(
            &dir,
            "PATCH",
            &org,
            &member_path,
            Some(json!({"role": "admin"})),
        )
    );
    for (status, body) in [(status, &refused), (edit_status, &edit)] {
        assert_eq!(status, 409, "{body}");
        assert_eq!(
            body["type"],
            "https://orgsync.dev/problems/sync-in-progress"
        );
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(member_count(&dir, &org).await, 1, "the IdP's change waited");
    let waiting = run_now(&dir, &org, &run).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");

    runs.unlock_org(org_id, "test").await.unwrap();
    wait_for_members(&dir, &org, 2).await;
    let done = finished_run(&dir, &org, &run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    dir.app.finish().await;
}

/// A change set larger than one transaction's share lands whole, with one
/// audit entry and one event per member, and leaves PostgreSQL's planner
/// statistics describing the grown table (not the empty one it last saw).
/// A member changed under a later share stops the apply there: the shares
/// before it stand (each whole), nothing after it is written, and the
/// changed member keeps its change.
#[actix_web::test]
async fn a_bulk_apply_commits_in_shares_and_refreshes_the_planner_statistics() {
    use orgsync_domain::audit::Actor;
    use orgsync_domain::membership::Member;
    use orgsync_domain::org::OrgId;
    use orgsync_domain::ports::{EventLog, MemberWrites, MembershipRepository};
    use orgsync_domain::Error;

    const BULK: usize = 12_000;
    let dir = Directory::new().await;
    let org = OrgId(dir.org.parse().unwrap());
    let db = dir.app.runtime.db.connection();
    let count = |sql: String| crate::fixtures::count(&dir.app.runtime.db, sql);
    let believed_members = async || {
        count("SELECT reltuples::bigint AS n FROM pg_class WHERE oid = 'members'::regclass".into())
            .await
    };
    assert!(
        believed_members().await <= 0,
        "the planner has not seen members yet"
    );

    let now = time::OffsetDateTime::now_utc();
    let added: Vec<Member> = (0..BULK)
        .map(|i| directory_member(org, &format!("bulk-{i}@example.com"), now))
        .collect();
    let actor = Actor::Sync {
        job_id: orgsync_domain::sync::JobId::new(),
    };
    // An event committed before the bulk write and not yet numbered.
    let earlier = orgsync_domain::events::Event::member_created(&added[0], now);
    orgsync_infra::SqlEventLog::new(dir.app.runtime.db.clone())
        .append(std::slice::from_ref(&earlier))
        .await
        .unwrap();
    let members = orgsync_infra::SqlMembershipRepository::new(dir.app.runtime.db.clone());
    members
        .apply(
            org,
            &MemberWrites {
                added: added.iter().collect(),
                updated: Vec::new(),
                removed: Vec::new(),
                relinked: Vec::new(),
                actor: actor.clone(),
                at: now,
            },
        )
        .await
        .expect("the bulk add");
    assert_eq!(members.count_members(org).await.unwrap(), BULK as u64);
    let recorded = |table: &str, column: &str| {
        format!(
            "SELECT count(*) AS n FROM {table} WHERE org_id = '{}' AND {column} = 'member.created'",
            dir.org
        )
    };
    assert_eq!(count(recorded("audit_events", "action")).await, BULK as i64);
    assert_eq!(
        count(recorded("events", "event_type")).await,
        1 + BULK as i64
    );
    // The shares numbered their own events, after the one waiting before
    // them, leaving the tenant's sequence without a gap.
    let numbering = format!(
        "SELECT count(*) FILTER (WHERE seq IS NULL) AS unnumbered, \
         count(*) - count(DISTINCT seq) AS repeated, \
         min(seq) FILTER (WHERE event_type = 'member.created' AND id <> '{0}') AS first_bulk, \
         max(seq) AS last, min(seq) FILTER (WHERE id = '{0}') AS earlier \
         FROM events WHERE org_id = '{1}'",
        earlier.id, dir.org
    );
    let row = db
        .query_one(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            numbering,
        ))
        .await
        .unwrap()
        .unwrap();
    let get = |column: &str| row.try_get::<Option<i64>>("", column).unwrap().unwrap();
    assert_eq!(get("unnumbered"), 0);
    assert_eq!(get("repeated"), 0);
    assert_eq!(get("last") - get("first_bulk") + 1, BULK as i64);
    assert!(get("earlier") < get("first_bulk"));
    assert!(
        believed_members().await >= BULK as i64 * 9 / 10,
        "ANALYZE ran after the bulk write: {}",
        believed_members().await
    );

    // Every member renamed, planned from what was just written; one member
    // past the first share changes in between.
    let current = members.all_members(org).await.unwrap();
    let mut by_id: Vec<&Member> = current.iter().collect();
    by_id.sort_by_key(|m| m.id);
    let changed_under_the_plan = by_id[BULK / 2].id;
    let later = now + time::Duration::seconds(1);
    let updated: Vec<(Member, &Member)> = by_id
        .iter()
        .map(|before| {
            let mut after = (*before).clone();
            after.name = Some("Renamed".into());
            after.updated_at = later;
            (after, *before)
        })
        .collect();
    let (status, _) = dir
        .rename_member(changed_under_the_plan.0, "Changed by an admin")
        .await;
    assert_eq!(status, 200);
    let refused = members
        .apply(
            org,
            &MemberWrites {
                added: Vec::new(),
                updated,
                removed: Vec::new(),
                relinked: Vec::new(),
                actor,
                at: later,
            },
        )
        .await;
    assert!(
        matches!(refused, Err(Error::PreconditionFailed(_))),
        "{refused:?}"
    );
    // Shares of 5,000 in the plan's order, written at once: each is applied
    // whole or not at all, and never the one holding the changed member.
    let after: std::collections::HashMap<_, _> = members
        .all_members(org)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    let shares: Vec<(usize, usize)> = by_id
        .chunks(5_000)
        .map(|share| {
            let renamed = share
                .iter()
                .filter(|m| after[&m.id].as_deref() == Some("Renamed"))
                .count();
            (renamed, share.len())
        })
        .collect();
    assert_eq!(shares.len(), 3, "{shares:?}");
    assert!(
        shares
            .iter()
            .all(|&(renamed, of)| renamed == 0 || renamed == of),
        "every share whole or not at all: {shares:?}"
    );
    assert_eq!(
        shares[1].0, 0,
        "nothing of the share that found the change: {shares:?}"
    );
    let kept = dir
        .get(&format!("/members/{}", changed_under_the_plan.0))
        .await;
    assert_eq!(kept["name"], "Changed by an admin", "{kept}");
    dir.app.finish().await;
}

/// A bulk apply numbers its shares' events while admins change other members
/// (whose events the dispatcher numbers after commit): one sequence comes out,
/// every event numbered once, no gap, and each member's events in the order
/// they happened.
#[actix_web::test]
async fn bulk_and_single_writes_share_one_gapless_event_sequence() {
    use orgsync_domain::audit::Actor;
    use orgsync_domain::org::OrgId;
    use orgsync_domain::ports::{MemberWrites, MembershipRepository};

    let dir = Directory::new().await;
    let org = OrgId(dir.org.parse().unwrap());
    let db = dir.app.runtime.db.connection();
    let members = orgsync_infra::SqlMembershipRepository::new(dir.app.runtime.db.clone());
    let now = time::OffsetDateTime::now_utc();
    fn adds(
        added: &[orgsync_domain::membership::Member],
        at: time::OffsetDateTime,
    ) -> MemberWrites<'_> {
        MemberWrites {
            added: added.iter().collect(),
            updated: Vec::new(),
            removed: Vec::new(),
            relinked: Vec::new(),
            actor: Actor::Sync {
                job_id: orgsync_domain::sync::JobId::new(),
            },
            at,
        }
    }
    let first: Vec<_> = (0..40)
        .map(|i| directory_member(org, &format!("first-{i}@example.com"), now))
        .collect();
    members.apply(org, &adds(&first, now)).await.unwrap();

    let bulk: Vec<_> = (0..7_000)
        .map(|i| directory_member(org, &format!("bulk-{i}@example.com"), now))
        .collect();
    let renames = async {
        for member in &first {
            let (status, body) = dir
                .admin(
                    "PATCH",
                    &format!("/members/{}", member.id.0),
                    Some(json!({"name": "Renamed meanwhile"})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let bulk_writes = adds(&bulk, now);
    let (applied, ()) = futures::join!(members.apply(org, &bulk_writes), renames);
    applied.expect("the bulk add");
    orgsync_infra::events::sequence_tenant(db, org)
        .await
        .unwrap();

    let row = db
        .query_one(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT count(*) AS events, count(seq) AS numbered, count(DISTINCT seq) AS numbers, \
                 max(seq) - min(seq) + 1 AS span FROM events WHERE org_id = '{}'",
                dir.org
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    let get = |column: &str| row.try_get::<i64>("", column).unwrap();
    assert!(get("events") >= 40 + 40 + 7_000, "{}", get("events"));
    assert_eq!(get("numbered"), get("events"), "every event numbered");
    assert_eq!(get("numbers"), get("events"), "no number given twice");
    assert_eq!(get("span"), get("events"), "no gap");
    let order = db
        .query_one(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            format!(
                "SELECT count(*) AS pairs, count(*) FILTER (WHERE u.seq < c.seq) AS reversed \
                 FROM events c JOIN events u \
                 ON u.org_id = c.org_id AND u.data::jsonb->>'id' = c.data::jsonb->>'id' \
                 WHERE c.org_id = '{}' AND c.event_type = 'member.created' \
                 AND u.event_type = 'member.updated'",
                dir.org
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    let (pairs, reversed) = (
        order.try_get::<i64>("", "pairs").unwrap(),
        order.try_get::<i64>("", "reversed").unwrap(),
    );
    assert_eq!(pairs, 40, "each renamed member's creation and update");
    assert_eq!(reversed, 0, "an update numbered before its creation");
    dir.app.finish().await;
}

/// The embedded engine takes the same bulk path: shares one at a time (one
/// connection), each numbering its own events.
#[actix_web::test]
async fn a_bulk_apply_numbers_its_events_on_sqlite_too() {
    use orgsync_domain::audit::Actor;
    use orgsync_domain::org::{OrgId, OrgKind, OrgName, Organization, ProvisioningMode, Slug};
    use orgsync_domain::ports::{MemberWrites, MembershipRepository, OrgRepository};

    let dir = std::env::temp_dir().join(format!("orgsync-bulk-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("orgsync.db").display());
    let db = orgsync_infra::Database::connect(&url, 1).await.unwrap();
    db.migrate().await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    let id = OrgId::new();
    let org = Organization {
        id,
        parent_id: None,
        root_id: id,
        kind: OrgKind::Standard,
        name: OrgName::parse("Acme").unwrap(),
        slug: Slug::parse("acme").unwrap(),
        provisioning_mode: ProvisioningMode::Scim,
        created_at: now,
        updated_at: now,
    };
    orgsync_infra::SqlOrgRepository::new(db.clone())
        .insert(&org, u64::MAX)
        .await
        .unwrap();
    let bulk: Vec<_> = (0..6_000)
        .map(|i| directory_member(id, &format!("bulk-{i}@example.com"), now))
        .collect();
    orgsync_infra::SqlMembershipRepository::new(db.clone())
        .apply(
            id,
            &MemberWrites {
                added: bulk.iter().collect(),
                updated: Vec::new(),
                removed: Vec::new(),
                relinked: Vec::new(),
                actor: Actor::Sync {
                    job_id: orgsync_domain::sync::JobId::new(),
                },
                at: now,
            },
        )
        .await
        .expect("the bulk add on SQLite");
    let row = db
        .connection()
        .query_one(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Sqlite,
            "SELECT count(*) AS events, count(seq) AS numbered, count(DISTINCT seq) AS numbers, \
             min(seq) AS first, max(seq) AS last FROM events WHERE event_type = 'member.created'",
        ))
        .await
        .unwrap()
        .unwrap();
    let get = |column: &str| row.try_get::<i64>("", column).unwrap();
    assert_eq!(get("events"), 6_000);
    assert_eq!(get("numbered"), 6_000, "numbered in their own transactions");
    assert_eq!(get("numbers"), 6_000);
    assert_eq!(get("last") - get("first") + 1, 6_000);
    drop(db);
    std::fs::remove_dir_all(&dir).ok();
}

/// Two members trading directory users (an IdP that swapped two accounts)
/// in one apply: the keys move together, where updating the rows one by one
/// would collide on the one-member-per-directory-user index halfway.
#[actix_web::test]
async fn two_members_can_trade_directory_users_in_one_apply() {
    use orgsync_domain::audit::Actor;
    use orgsync_domain::membership::Member;
    use orgsync_domain::org::OrgId;
    use orgsync_domain::ports::{MemberWrites, MembershipRepository};

    let dir = Directory::new().await;
    let org = OrgId(dir.org.parse().unwrap());
    let now = time::OffsetDateTime::now_utc();
    let (ann, bob) = (
        directory_member(org, "ann@example.com", now),
        directory_member(org, "bob@example.com", now),
    );
    let writes =
        |added: Vec<&'static Member>, updated: Vec<(Member, &'static Member)>| MemberWrites {
            added,
            updated,
            removed: Vec::new(),
            relinked: Vec::new(),
            actor: Actor::Sync {
                job_id: orgsync_domain::sync::JobId::new(),
            },
            at: now,
        };
    let (ann, bob): (&'static Member, &'static Member) =
        (Box::leak(Box::new(ann)), Box::leak(Box::new(bob)));
    let members = orgsync_infra::SqlMembershipRepository::new(dir.app.runtime.db.clone());
    members
        .apply(org, &writes(vec![ann, bob], Vec::new()))
        .await
        .expect("both added");

    // Planned from what was stored (PostgreSQL keeps microseconds).
    let (ann, bob): (&'static Member, &'static Member) = (
        Box::leak(Box::new(
            members.find_member(org, ann.id).await.unwrap().unwrap(),
        )),
        Box::leak(Box::new(
            members.find_member(org, bob.id).await.unwrap().unwrap(),
        )),
    );
    let later = now + time::Duration::seconds(1);
    let traded = |from: &Member, to: &Member| {
        let mut after = from.clone();
        after.directory_user_id = to.directory_user_id;
        after.updated_at = later;
        after
    };
    members
        .apply(
            org,
            &writes(
                Vec::new(),
                vec![(traded(ann, bob), ann), (traded(bob, ann), bob)],
            ),
        )
        .await
        .expect("the trade applies");
    let now_ann = members.find_member(org, ann.id).await.unwrap().unwrap();
    let now_bob = members.find_member(org, bob.id).await.unwrap().unwrap();
    assert_eq!(now_ann.directory_user_id, bob.directory_user_id);
    assert_eq!(now_bob.directory_user_id, ann.directory_user_id);
    assert_eq!(
        now_ann.created_at, ann.created_at,
        "the same members, not new ones"
    );
    dir.app.finish().await;
}

/// A member synced from a new directory user, as a plan would add it.
fn directory_member(
    org: orgsync_domain::org::OrgId,
    email: &str,
    now: time::OffsetDateTime,
) -> orgsync_domain::membership::Member {
    use orgsync_domain::membership::{Member, MemberId, MemberSource, MemberStatus, Role};
    Member {
        id: MemberId::new(),
        org_id: org,
        directory_user_id: Some(uuid::Uuid::now_v7()),
        email: email.to_owned(),
        name: None,
        role: Role::User,
        seat_tier: None,
        spend_limit: None,
        public_metadata: serde_json::Map::new(),
        status: MemberStatus::Active,
        source: MemberSource::Scim,
        created_at: now,
        updated_at: now,
    }
}

/// A mapped plan reads only the users it can touch, page by page: with
/// 12,000 of 30,000 users in the one role-mapped group, the switch to SCIM
/// adds exactly those (more than two pages of them), and a member whose
/// user left the group behind the engine's back is planned from its user
/// (no role group), not taken for a deleted one.
#[actix_web::test]
async fn a_mapping_over_part_of_a_large_directory_plans_exactly_its_users_in_pages() {
    let dir = Directory::new().await;
    let org = dir.org.clone();
    let db = dir.app.runtime.db.clone();
    seed_users(&dir, 30_000).await;
    let staff = dir.group("Staff", &[] as &[&str]).await;
    let sql = |statement: String| {
        let db = db.clone();
        async move {
            db.connection()
                .execute_unprepared(&statement)
                .await
                .unwrap();
        }
    };
    // Users whose number ends in 0, 2, 5 or 7: 12,000, well under half.
    sql(format!(
        "INSERT INTO directory_group_members (connection_id, group_id, member_value, member_type) \
         SELECT connection_id, '{staff}', id::text, 'User' FROM directory_users \
         WHERE connection_id = '{conn}' AND user_name ~ '^u[0-9]*[0257]@'",
        conn = dir.conn
    ))
    .await;
    sql(format!(
        "UPDATE directory_groups SET member_count = 12000 WHERE id = '{staff}'"
    ))
    .await;
    let mappings = json!({"enabled": true, "roles": [{"group": staff, "role": "admin"}]});
    let (status, body) = admin(&dir, "PUT", &org, "/group-mappings", Some(mappings)).await;
    assert_eq!(status, 200, "{body}");
    switch_to_scim(&dir, &org).await;
    let count = |filter: &'static str| members_where(&dir, &org, filter.to_owned());
    assert_eq!(count("TRUE").await, 12_000);
    assert_eq!(count("role = 'admin'").await, 12_000);
    assert_eq!(count("email ~ '^u[0-9]*[0257]@'").await, 12_000);

    sql(format!(
        "DELETE FROM directory_group_members WHERE group_id = '{staff}' AND member_value = \
         (SELECT id::text FROM directory_users WHERE connection_id = '{conn}' AND user_name = 'u25@example.com')",
        conn = dir.conn
    ))
    .await;
    let request = json!({"scope": "both", "cascade": false});
    let (status, preview) = admin(&dir, "POST", &org, "/syncs/preview", Some(request)).await;
    assert_eq!(status, 200, "{preview}");
    let effect = &preview["orgs"][0];
    assert_eq!(
        effect["counts"],
        json!({"adds": 0, "updates": 0, "removals": 1, "suspensions": 0}),
        "{effect}"
    );
    assert_eq!(
        effect["changes"]["removals"][0]["email"], "u25@example.com",
        "{effect}"
    );
    assert_eq!(
        effect["changes"]["removals"][0]["reason"]["kind"], "no_role_group",
        "{effect}"
    );
    dir.app.finish().await;
}

/// How many of `org`'s members match the SQL condition `filter`.
async fn members_where(dir: &Directory, org: &str, filter: String) -> i64 {
    let query = format!("SELECT count(*) AS n FROM members WHERE org_id = '{org}' AND {filter}");
    crate::fixtures::count(&dir.app.runtime.db, query).await
}

/// A mode switch applies its members in committed batches under the org's
/// writer lease. When its client goes away (actix-web then drops the
/// request's future, as dropping it here does), the org must not be left
/// half switched with the lease held until it expires: the switch finishes
/// on its own, and the next change of the org goes through.
#[actix_web::test]
async fn a_mode_switch_whose_client_goes_away_still_finishes_and_frees_the_org() {
    let dir = Directory::new().await;
    seed_users(&dir, 12_000).await;
    let cut_short = tokio::time::timeout(
        Duration::from_millis(100),
        set_provisioning(&dir, &dir.org, "scim"),
    )
    .await;
    assert!(
        cut_short.is_err(),
        "the switch answered before its client left: {cut_short:?}"
    );

    let members = format!(
        "SELECT count(*) AS n FROM members WHERE org_id = '{}'",
        dir.org
    );
    let switched = poll(600, Duration::from_millis(100), async || {
        let mode = dir.get("/provisioning").await["mode"].clone();
        let added = count(&dir.app.runtime.db, members.clone()).await;
        (mode == "scim" && added == 12_000).then_some(())
    })
    .await;
    let added = count(&dir.app.runtime.db, members.clone()).await;
    assert!(
        switched.is_some(),
        "the switch stopped with {added} of 12,000 members"
    );
    // The writer lease was released: a change that takes it is not told a
    // sync is in progress.
    let mappings = json!({"enabled": false, "roles": []});
    let (status, answer) = dir.admin("PUT", "/group-mappings", Some(mappings)).await;
    assert_eq!(status, 200, "{answer}");
    dir.app.finish().await;
}
