//! Cascading resyncs: one job per org through the Redis queue, coalescing,
//! and recovery when the queue loses work or a worker dies mid-job.

use std::time::Duration;

use orgsync_api::config::Settings;
use orgsync_domain::auth::AdminRole;
use orgsync_domain::service::Waiter;
use serde_json::{json, Value};

use crate::fixtures::{create_child, put_confirmed, run_now, wait_for_run};
use crate::json::{items, strings};
use crate::scim::Directory;
use crate::support::{binary, poll, redis_url, TestApp};

/// A tenant whose directory feeds the parent, 3 children and 2 sandboxes,
/// each with its own mappings.
struct Tree {
    dir: Directory,
    orgs: Vec<String>,
    groups: Vec<String>,
}

impl Tree {
    async fn new(app: TestApp) -> Self {
        let dir = Directory::on(app).await;
        let mut users = Vec::new();
        for i in 0..12 {
            users.push(dir.user(&format!("u{i:02}@example.com")).await);
        }
        let mut groups = Vec::new();
        for (g, name) in ["Admins", "Staff", "Contractors"].iter().enumerate() {
            let members: Vec<&String> = users.iter().skip(g).step_by(2 + g).collect();
            groups.push(dir.group(name, &members).await);
        }
        let token = dir.app.tokens.platform();
        let mut orgs = vec![dir.org.clone()];
        for (slug, kind) in [
            ("c1", "standard"),
            ("c2", "standard"),
            ("c3", "standard"),
            ("s1", "sandbox"),
            ("s2", "sandbox"),
        ] {
            let child = json!({"name": slug, "slug": slug, "kind": kind});
            let (status, child) = create_child(&dir.app, &token, &dir.org, child).await;
            assert_eq!(status, 201, "{child}");
            orgs.push(child["id"].as_str().unwrap().to_owned());
        }
        let tree = Self { dir, orgs, groups };
        for (i, org) in tree.orgs.clone().iter().enumerate() {
            tree.admin(org, "PUT", "/provisioning", Some(json!({"mode": "scim"})))
                .await;
            // Each org maps a different slice of the groups.
            let roles: Vec<Value> = tree.groups[i % 3..]
                .iter()
                .enumerate()
                .map(|(p, g)| json!({"group": g, "role": if p == 0 { "admin" } else { "user" }}))
                .collect();
            let mappings = json!({"enabled": true, "roles": roles});
            put_confirmed(&tree.dir, org, "/group-mappings", mappings).await;
        }
        tree
    }

    /// A [`Tree`] on `app` whose directory then [drifted](Tree::drift).
    async fn drifted(app: TestApp) -> Self {
        let tree = Self::new(app).await;
        tree.drift().await;
        tree
    }

    async fn admin(
        &self,
        org: &str,
        method: &str,
        rest: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.dir.app.admin(method, org, rest, body).await
    }

    /// Asks for a sync of `org` as `request` says (`POST /syncs`): the answer.
    async fn sync(&self, org: &str, request: Value) -> (u16, Value) {
        self.admin(org, "POST", "/syncs", Some(request)).await
    }

    /// What a sync of `org` as `request` says would change (`POST /syncs/preview`).
    async fn preview(&self, org: &str, request: Value) -> (u16, Value) {
        self.admin(org, "POST", "/syncs/preview", Some(request))
            .await
    }

    async fn wait_run(&self, run: &Value) -> Value {
        let org = run["org_id"].as_str().unwrap();
        wait_for_run(&self.dir, org, run, Duration::from_secs(15)).await
    }

    /// Every org ends exactly as a fresh reconcile says: nothing left to change.
    async fn assert_converged(&self) {
        let (status, preview) = self.preview(&self.orgs[0], json!({"scope": "both"})).await;
        assert_eq!(status, 200, "{preview}");
        let orgs = preview["orgs"].as_array().unwrap();
        assert_eq!(orgs.len(), 6);
        for org in orgs {
            assert_eq!(
                org["counts"],
                json!({"adds": 0, "updates": 0, "removals": 0, "suspensions": 0}),
                "{org}"
            );
        }
    }

    /// Changes the directory behind the engine's back (no events), so only a full sync sees it.
    async fn drift(&self) {
        let db = sea_orm::Database::connect(&self.dir.app.db.url)
            .await
            .unwrap();
        use sea_orm::ConnectionTrait;
        db.execute_unprepared("UPDATE directory_users SET display_name = 'Drifted ' || user_name")
            .await
            .unwrap();
        db.close().await.ok();
    }
}

/// A [drifted](Tree::drifted) tree on an app whose plan budget, one unit,
/// is smaller than any plan; `adjust` changes its settings further.
async fn drifted_tree_with_a_one_unit_plan_budget(adjust: impl FnOnce(&mut Settings)) -> Tree {
    let app = TestApp::spawn_with(|s| {
        s.sync.plan_budget = 1;
        adjust(s);
    })
    .await;
    Tree::drifted(app).await
}

#[actix_web::test]
async fn a_sync_on_the_parent_cascades_to_children_and_sandboxes_and_converges() {
    let tree = Tree::drifted(TestApp::spawn().await).await;
    let (status, run) = tree.sync(&tree.orgs[0], json!({"scope": "both"})).await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["jobs"].as_array().unwrap().len(), 6);
    let done = tree.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], json!({"processed": 6, "total": 6}));
    tree.assert_converged().await;

    // Without sandboxes, or without cascading, the scope shrinks.
    let (_, preview) = tree
        .preview(&tree.orgs[0], json!({"include_sandboxes": false}))
        .await;
    assert_eq!(preview["orgs"].as_array().unwrap().len(), 4);
    let (_, preview) = tree.preview(&tree.orgs[1], json!({"cascade": false})).await;
    assert_eq!(preview["orgs"].as_array().unwrap().len(), 1);

    // A large tree is previewed a window of orgs at a time: 4 + 2 of 6, each once.
    let mut seen = std::collections::BTreeSet::new();
    let mut rest = "/syncs/preview?org_limit=4".to_owned();
    for expected in [4, 2] {
        let (status, page) = tree
            .admin(&tree.orgs[0], "POST", &rest, Some(json!({})))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["orgs_in_scope"], 6, "{page}");
        let orgs = page["orgs"].as_array().unwrap();
        assert_eq!(orgs.len(), expected, "{page}");
        seen.extend(orgs.iter().map(|o| o["org_id"].to_string()));
        rest = match page["next_org_cursor"].as_str() {
            Some(cursor) => format!("/syncs/preview?org_limit=4&org_cursor={cursor}"),
            None => String::new(),
        };
    }
    assert!(rest.is_empty(), "no window after the last");
    assert_eq!(seen.len(), 6, "every org of the scope once");
    let (status, _) = tree
        .admin(
            &tree.orgs[0],
            "POST",
            "/syncs/preview?org_limit=1000",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 422, "at most 100 orgs an answer");

    // A child's token may not start a sync that reaches its parent and siblings.
    let child = tree
        .dir
        .app
        .tokens
        .org(tree.orgs[1].parse().unwrap(), AdminRole::Owner);
    let path = format!("/api/v1/orgs/{}/syncs", tree.orgs[1]);
    let (status, problem) = tree
        .dir
        .app
        .call("POST", &path, Some(&child), Some(json!({})))
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, _) = tree
        .dir
        .app
        .call("POST", &path, Some(&child), Some(json!({"cascade": false})))
        .await;
    assert_eq!(status, 202);
    tree.dir.app.finish().await;
}

/// With a plan budget smaller than any plan, every plan takes the whole
/// budget and runs alone: the mode switches and mapping saves that build the
/// tree, six concurrent sync jobs and a preview over all six orgs still
/// finish. A path that planned again while holding a plan would wait for
/// itself here, and the run would never end.
#[actix_web::test]
async fn plans_bigger_than_the_plan_budget_run_one_at_a_time_and_all_finish() {
    let tree = drifted_tree_with_a_one_unit_plan_budget(|s| s.worker.concurrency = 6).await;
    let (status, run) = tree.sync(&tree.orgs[0], json!({"scope": "both"})).await;
    assert_eq!(status, 202, "{run}");
    let done = tree.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"], json!({"processed": 6, "total": 6}));
    tree.assert_converged().await;
    tree.dir.app.finish().await;
}

/// While other plans hold the whole plan budget, a request that plans (a
/// cascade's preview, a mapping save) waits `sync.plan_wait_ms` and answers
/// 503 `busy`, having changed nothing, instead of hanging; a sync job queued
/// meanwhile waits its turn and finishes once the budget is free.
#[actix_web::test]
async fn requests_that_find_the_plan_budget_held_answer_busy_and_change_nothing() {
    let tree = drifted_tree_with_a_one_unit_plan_budget(|s| s.sync.plan_wait_ms = 200).await;
    // What a million-member plan elsewhere in the process would hold.
    let held = tree
        .dir
        .app
        .runtime
        .plan_budget
        .reserve(1, Waiter::Background)
        .await
        .unwrap();

    let (status, body) = tree.preview(&tree.orgs[0], json!({"scope": "both"})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "https://orgsync.dev/problems/busy", "{body}");
    let (_, before) = tree
        .admin(&tree.orgs[1], "GET", "/group-mappings", None)
        .await;
    let (status, body) = tree
        .admin(
            &tree.orgs[1],
            "PUT",
            "/group-mappings",
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    let (_, after) = tree
        .admin(&tree.orgs[1], "GET", "/group-mappings", None)
        .await;
    assert_eq!(before, after, "a busy answer changes nothing");

    let (status, run) = tree.sync(&tree.orgs[0], json!({"scope": "both"})).await;
    assert_eq!(status, 202, "{run}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = run_now(&tree.dir, &tree.orgs[0], &run).await;
    assert_ne!(
        waiting["status"], "succeeded",
        "no job can plan yet: {waiting}"
    );
    assert_ne!(
        waiting["status"], "failed",
        "jobs wait, they do not fail: {waiting}"
    );

    drop(held);
    let done = tree.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    tree.assert_converged().await;
    tree.dir.app.finish().await;
}

#[actix_web::test]
async fn requests_for_an_org_whose_job_is_queued_join_it() {
    let tree = Tree::new(TestApp::spawn_idle(|_| {}).await).await;
    let (_, first) = tree.sync(&tree.orgs[0], json!({"scope": "members"})).await;
    let (_, second) = tree.sync(&tree.orgs[2], json!({"scope": "groups"})).await;
    let ids = |run: &Value| {
        let mut ids: Vec<String> = strings(&run["jobs"], "id")
            .into_iter()
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&first),
        ids(&second),
        "the second request joined the queued jobs"
    );
    assert!(
        items(&second["jobs"]).all(|j| j["scope"] == "both"),
        "scopes widened: {second}"
    );
    tree.dir.app.start_worker();
    let (first, second) = (tree.wait_run(&first).await, tree.wait_run(&second).await);
    assert_eq!(
        (first["status"].clone(), second["status"].clone()),
        (json!("succeeded"), json!("succeeded"))
    );
    tree.dir.app.finish().await;
}

#[actix_web::test]
async fn a_run_completes_when_redis_loses_its_jobs() {
    let tree = Tree::drifted(TestApp::spawn_idle(|_| {}).await).await;
    let (_, run) = tree.sync(&tree.orgs[0], json!({})).await;
    // What FLUSHALL or a Redis restart without persistence does to the
    // queued jobs (syncs travel in the `jobs` stream).
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{}jobs", tree.dir.app.runtime.settings.redis.key_prefix);
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    tree.dir.app.start_worker();
    let done = tree.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    tree.assert_converged().await;
    tree.dir.app.finish().await;
}

#[actix_web::test]
async fn a_job_held_by_a_killed_worker_is_taken_over_and_completes() {
    /// A worker process that never outlives the test, whatever fails.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let tree = Tree::drifted(TestApp::spawn_idle(|_| {}).await).await;
    let settings = &tree.dir.app.runtime.settings;
    let worker = |name: &str| {
        KillOnDrop(
            std::process::Command::new(binary())
                .arg("worker")
                .env("ORGSYNC__DATABASE__URL", settings.database_url())
                .env("ORGSYNC__REDIS__URL", redis_url())
                .env("ORGSYNC__REDIS__KEY_PREFIX", &settings.redis.key_prefix)
                .env("ORGSYNC__AUTH__JWT_SECRET", crate::support::SECRET)
                .env("ORGSYNC__WORKER__LEASE", "1")
                .env("ORGSYNC__WORKER__SWEEP_EVERY", "1")
                .env("ORGSYNC__LOG__LEVEL", "warn")
                .env("ORGSYNC_TEST_WORKER", name)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    // Make the first job stall inside its transaction: lock the members table from outside.
    let db = sea_orm::Database::connect(&tree.dir.app.db.url)
        .await
        .unwrap();
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let blocker = db.begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (_, run) = tree.sync(&tree.orgs[0], json!({})).await;
    let mut doomed = worker("doomed");
    // Wait until it has taken a job (and is stuck on the lock), then kill it.
    let running = poll(200, Duration::from_millis(50), async || {
        let current = run_now(&tree.dir, &tree.orgs[0], &run).await;
        let jobs = current["jobs"].as_array().unwrap();
        jobs.iter().any(|j| j["status"] == "running").then_some(())
    })
    .await;
    assert!(running.is_some(), "the first worker never took a job");
    doomed.0.kill().unwrap(); // SIGKILL
    doomed.0.wait().unwrap();
    blocker.rollback().await.unwrap();
    db.close().await.ok();
    let rescuer = worker("rescuer");
    // A fresh worker process starts, reclaims the expired lease at its
    // first sweep and runs the job: seconds alone, more on a loaded machine.
    let org = run["org_id"].as_str().unwrap();
    let done = wait_for_run(&tree.dir, org, &run, Duration::from_secs(60)).await;
    drop(rescuer);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        items(&done["jobs"]).any(|j| j["attempts"].as_u64() >= Some(2)),
        "{done}"
    );
    // Taken over once: the killed attempt and the rescuer's, never a third run
    // (the rescuer renews its lease every 1/3 s while the job runs).
    assert!(
        items(&done["jobs"])
            .all(|j| j["status"] == "succeeded" && j["attempts"].as_u64() <= Some(2)),
        "{done}"
    );
    tree.assert_converged().await;
    tree.dir.app.finish().await;
}

/// A running job keeps its lease while its worker lives, however busy the
/// worker's connection pool: with every pooled connection taken (a cascade
/// and an IdP burst together can hold them all), the heartbeat still
/// renews the lease, so no sweeper hands the job to another worker, which
/// would run it twice and drop this attempt's outcome.
#[actix_web::test]
async fn a_running_jobs_lease_is_renewed_while_every_pooled_connection_is_taken() {
    use sea_orm::{ConnectionTrait, TransactionTrait};

    let tree = Tree::drifted(TestApp::spawn().await).await;
    let pool = &tree.dir.app.runtime.db;
    // Two connections of the test's own: the lock, and a read.
    let outside = orgsync_infra::Database::connect(&tree.dir.app.db.url, 2)
        .await
        .unwrap();
    // The job stalls inside its transaction, on a pooled connection.
    let blocker = outside.connection().begin().await.unwrap();
    blocker
        .execute_unprepared("LOCK TABLE members IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let (status, run) = tree.sync(&tree.orgs[0], json!({"cascade": false})).await;
    assert_eq!(status, 202, "{run}");
    let running = poll(200, Duration::from_millis(50), async || {
        let current = run_now(&tree.dir, &tree.orgs[0], &run).await;
        items(&current["jobs"])
            .any(|j| j["status"] == "running")
            .then_some(())
    })
    .await;
    assert!(running.is_some(), "the worker never took the job");
    // Blocked on the lock, the job needs no other connection until it is
    // released (taken earlier, between two statements, it would wait for
    // one past the pool's timeout, fail and be retried).
    assert!(
        crate::fixtures::someone_waits_on_a_lock(&outside).await,
        "the job never reached the lock"
    );
    // Every other pooled connection, held for three leases.
    let connections = tree.dir.app.runtime.settings.database.max_connections - 1;
    let mut held = Vec::new();
    for _ in 0..connections {
        let txn = pool.connection().begin().await.unwrap();
        txn.execute_unprepared("SELECT 1").await.unwrap();
        held.push(txn);
    }
    let lease = tree.dir.app.runtime.settings.worker.lease;
    tokio::time::sleep(Duration::from_secs(3 * lease)).await;
    let fresh = crate::fixtures::count(
        &outside,
        format!(
            "SELECT count(*) AS n FROM sync_jobs WHERE status = 'running' \
             AND heartbeat_at > now() - interval '{lease} seconds'"
        ),
    )
    .await;
    for txn in held {
        txn.rollback().await.unwrap();
    }
    blocker.rollback().await.unwrap();
    assert_eq!(
        fresh, 1,
        "the running job's lease lapsed while its worker lived"
    );

    let done = tree.wait_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        items(&done["jobs"]).all(|j| j["attempts"] == 1),
        "run once, by the worker that took it: {done}"
    );
    tree.dir.app.finish().await;
}
