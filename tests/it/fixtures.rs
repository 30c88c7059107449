//! Steps many tests share: admin calls on any org of a [`Directory`]'s
//! tree, creating orgs, groups and connections, SCIM changes IdPs make,
//! switching an org to SCIM, starting a sync and waiting for a run or for
//! members.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::scim::{patch, Directory};
use crate::support::{poll, TestApp};

/// An admin API call on `org` (any org of the tree) with a platform token.
pub(crate) async fn admin(
    dir: &Directory,
    method: &str,
    org: &str,
    rest: &str,
    body: Option<Value>,
) -> (u16, Value) {
    dir.app.admin(method, org, rest, body).await
}

impl Directory {
    /// An admin API call on the directory's own org with a platform token.
    pub(crate) async fn admin(
        &self,
        method: &str,
        rest: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        admin(self, method, &self.org, rest, body).await
    }

    /// The body of a GET of the directory's own org's `rest`, for reads
    /// whose status the test does not check.
    pub(crate) async fn get(&self, rest: &str) -> Value {
        self.admin("GET", rest, None).await.1
    }

    /// The body of a SCIM GET of `path`, for reads whose status the test
    /// does not check.
    pub(crate) async fn scim_get(&self, path: &str) -> Value {
        self.scim("GET", path, None).await.1
    }

    /// An admin adds `member` (`POST /members`) to the directory's own org: the answer.
    pub(crate) async fn add_member(&self, member: Value) -> (u16, Value) {
        self.app.add_member(&self.org, member).await
    }

    /// An admin renames the member `member` (`PATCH /members/{member}`): the answer.
    pub(crate) async fn rename_member(
        &self,
        member: impl std::fmt::Display,
        name: &str,
    ) -> (u16, Value) {
        let path = format!("/members/{member}");
        self.admin("PATCH", &path, Some(json!({"name": name})))
            .await
    }

    /// A SCIM PATCH of `path` (`/Users/{id}`, `/Groups/{id}`) with the operations `ops`.
    pub(crate) async fn scim_patch(&self, path: &str, ops: Value) -> (u16, Value) {
        self.scim("PATCH", path, Some(patch(ops))).await
    }

    /// The IdP creates a user as `user` describes it (`POST /Users`): the answer.
    pub(crate) async fn create_user(&self, user: Value) -> (u16, Value) {
        self.scim("POST", "/Users", Some(user)).await
    }

    /// The IdP (de)activates `user`, by PATCH.
    pub(crate) async fn set_active(&self, user: &str, active: bool) -> (u16, Value) {
        self.scim_patch(&format!("/Users/{user}"), replace("active", active))
            .await
    }

    /// The IdP adds `user` to `group`, by PATCH (as Okta sends it).
    pub(crate) async fn add_to_group(&self, group: &str, user: &str) -> (u16, Value) {
        let ops = json!([{"op": "add", "path": "members", "value": [{"value": user}]}]);
        self.scim_patch(&format!("/Groups/{group}"), ops).await
    }

    /// The IdP removes `user` from `group`, by PATCH with a filter (as Okta sends it).
    pub(crate) async fn remove_from_group(&self, group: &str, user: &str) -> (u16, Value) {
        let ops = json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}]);
        self.scim_patch(&format!("/Groups/{group}"), ops).await
    }

    /// A directory (as [`Directory::new`] makes it) holding users named
    /// `user_names`: it, and the users' ids.
    pub(crate) async fn with_users<const N: usize>(user_names: [&str; N]) -> (Self, [String; N]) {
        let dir = Self::new().await;
        let ids = dir.users_named(user_names).await;
        (dir, ids)
    }

    /// Directory users named `user_names`, created in order: their ids.
    pub(crate) async fn users_named<const N: usize>(&self, user_names: [&str; N]) -> [String; N] {
        let mut ids = Vec::with_capacity(N);
        for user_name in user_names {
            ids.push(self.user(user_name).await);
        }
        ids.try_into().unwrap()
    }

    /// A directory user `user_name` and a group `group_name` holding only
    /// them: the user's id and the group's.
    pub(crate) async fn user_in_group(
        &self,
        user_name: &str,
        group_name: &str,
    ) -> (String, String) {
        let user = self.user(user_name).await;
        let group = self.group(group_name, &[&user]).await;
        (user, group)
    }

    /// A directory group `name` holding `members` (directory user ids); its id.
    pub(crate) async fn group(&self, name: &str, members: &[impl AsRef<str>]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| json!({"value": m.as_ref()}))
            .collect();
        let (status, group) = self
            .scim(
                "POST",
                "/Groups",
                Some(json!({"displayName": name, "members": members})),
            )
            .await;
        assert_eq!(status, 201, "{group}");
        group["id"].as_str().unwrap().to_owned()
    }
}

/// The PATCH operations that replace the attribute at `path` with `value`.
pub(crate) fn replace(path: &str, value: impl Into<Value>) -> Value {
    json!([{"op": "replace", "path": path, "value": value.into()}])
}

/// The PATCH operations that add `value` at `path`.
pub(crate) fn add(path: &str, value: impl Into<Value>) -> Value {
    json!([{"op": "add", "path": path, "value": value.into()}])
}

/// A tenant (a root org) named `name` and `slug`; its id.
pub(crate) async fn create_root(app: &TestApp, name: &str, slug: &str) -> String {
    let platform = app.tokens.platform();
    let (status, org) = app
        .call(
            "POST",
            "/api/v1/orgs",
            Some(&platform),
            Some(json!({"name": name, "slug": slug})),
        )
        .await;
    assert_eq!(status, 201, "{org}");
    org["id"].as_str().unwrap().to_owned()
}

/// Asks, with `token`, for a child of `parent` as `child` describes it: the answer.
pub(crate) async fn create_child(
    app: &TestApp,
    token: &str,
    parent: &str,
    child: Value,
) -> (u16, Value) {
    app.call(
        "POST",
        &format!("/api/v1/orgs/{parent}/children"),
        Some(token),
        Some(child),
    )
    .await
}

/// A connection `name` of `org` with directory sync turned on: its id, and
/// the answer to turning it on (with the SCIM token, shown only there).
pub(crate) async fn connect_directory(app: &TestApp, org: &str, name: &str) -> (String, Value) {
    let (status, conn) = app
        .admin("POST", org, "/connections", Some(json!({"name": name})))
        .await;
    assert_eq!(status, 201, "{conn}");
    let conn = conn["id"].as_str().unwrap().to_owned();
    let (status, sync) = app
        .admin(
            "PUT",
            org,
            &format!("/connections/{conn}/directory-sync"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200, "{sync}");
    (conn, sync)
}

/// `n` directory users `{prefix}{i}@example.com`; their ids.
pub(crate) async fn users(dir: &Directory, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(dir.user(&format!("{prefix}{i}@example.com")).await);
    }
    ids
}

/// `org`'s members (the first 200).
pub(crate) async fn members(dir: &Directory, org: &str) -> Vec<Value> {
    let (status, page) = admin(dir, "GET", org, "/members?limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

/// `org`'s members by email: (email, member).
pub(crate) async fn members_by_email(dir: &Directory, org: &str) -> BTreeMap<String, Value> {
    members(dir, org)
        .await
        .into_iter()
        .map(|m| (m["email"].as_str().unwrap().to_owned(), m))
        .collect()
}

pub(crate) async fn member_count(dir: &Directory, org: &str) -> usize {
    members(dir, org).await.len()
}

/// Waits (10 s at most) until `org` has `expected` members, and asserts it.
pub(crate) async fn wait_for_members(dir: &Directory, org: &str, expected: usize) {
    poll(200, Duration::from_millis(50), async || {
        (member_count(dir, org).await == expected).then_some(())
    })
    .await;
    assert_eq!(member_count(dir, org).await, expected);
}

/// Waits (bounded) until `org` has applied every change its directory logged.
pub(crate) async fn caught_up(dir: &Directory, org: &str) {
    let done = poll(200, Duration::from_millis(50), async || {
        let (_, status) = admin(dir, "GET", org, "/sync-status", None).await;
        (status["pending_events"] == 0).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "{org} did not catch up with its directory within 10 s"
    );
}

/// Waits (10 s at most) until a statement of this test's database waits on
/// a lock (one the test holds from `outside`, a connection of its own):
/// whether one did.
pub(crate) async fn someone_waits_on_a_lock(outside: &orgsync_infra::Database) -> bool {
    let waiting = "SELECT count(*) AS n FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    poll(200, Duration::from_millis(50), async || {
        (count(outside, waiting.to_owned()).await > 0).then_some(())
    })
    .await
    .is_some()
}

/// PUTs `body` to `org`'s `rest` with the confirmation its preview
/// (`POST {rest}/preview` of the same body) gave, and asserts it applied;
/// the answer.
pub(crate) async fn put_confirmed(dir: &Directory, org: &str, rest: &str, body: Value) -> Value {
    let (status, preview) = admin(
        dir,
        "POST",
        org,
        &format!("{rest}/preview"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    let mut confirmed = body;
    confirmed["confirm"] = preview["confirmation"].clone();
    let (status, applied) = admin(dir, "PUT", org, rest, Some(confirmed)).await;
    assert_eq!(status, 200, "{applied}");
    applied
}

/// Asks to put `org` in provisioning `mode` (`PUT /provisioning`, with no
/// confirmation): the answer.
pub(crate) async fn set_provisioning(dir: &Directory, org: &str, mode: &str) -> (u16, Value) {
    admin(
        dir,
        "PUT",
        org,
        "/provisioning",
        Some(json!({"mode": mode})),
    )
    .await
}

/// The preview of putting `org` in provisioning `mode`: the answer.
pub(crate) async fn preview_provisioning(dir: &Directory, org: &str, mode: &str) -> (u16, Value) {
    let body = Some(json!({"mode": mode}));
    admin(dir, "POST", org, "/provisioning/preview", body).await
}

/// The first page of `org`'s audit log, of the actions `action` filters
/// for (a prefix such as `members.` or a whole action).
pub(crate) async fn audit_log(dir: &Directory, org: &str, action: &str) -> Value {
    let rest = format!("/audit-log?action={action}");
    let (status, page) = admin(dir, "GET", org, &rest, None).await;
    assert_eq!(status, 200, "{page}");
    page
}

/// A directory whose org is in SCIM mode with deletion protection off,
/// for tests of many random changes, where protection would (rightly)
/// hold the mass removals they make.
pub(crate) async fn unprotected_scim_directory() -> Directory {
    let dir = Directory::new().await;
    let org = dir.org.clone();
    switch_to_scim(&dir, &org).await;
    let (status, answer) = set_deletion_threshold(&dir, &org, 0).await;
    assert_eq!(status, 200, "{answer}");
    dir
}

/// Switches `org` to SCIM with its preview's confirmation.
pub(crate) async fn switch_to_scim(dir: &Directory, org: &str) {
    put_confirmed(dir, org, "/provisioning", json!({"mode": "scim"})).await;
}

/// A child of the directory's org named `slug`, in manual mode; its id.
pub(crate) async fn child(dir: &Directory, slug: &str) -> String {
    let (status, child) = create_child(
        &dir.app,
        &dir.app.tokens.platform(),
        &dir.org,
        json!({"name": slug, "slug": slug}),
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
    let (conn, sync) = connect_directory(&dir.app, org, "Own IdP").await;
    (conn, sync["token"].as_str().unwrap().to_owned())
}

/// Sets `org`'s deletion protection: at most `max_removals` removals a
/// background sync may make without an admin's say (0: no protection).
pub(crate) async fn set_deletion_threshold(
    dir: &Directory,
    org: &str,
    max_removals: u32,
) -> (u16, Value) {
    let threshold = json!({"max_removals": max_removals});
    admin(dir, "PUT", org, "/deletion-protection", Some(threshold)).await
}

/// Starts a sync of `org` as `request` asks (`POST /syncs`), which must be
/// accepted; the run.
pub(crate) async fn start_sync(dir: &Directory, org: &str, request: Value) -> Value {
    let (status, run) = admin(dir, "POST", org, "/syncs", Some(request)).await;
    assert_eq!(status, 202, "{run}");
    run
}

/// The run `POST /syncs` answered, as it stands now.
pub(crate) async fn run_now(dir: &Directory, org: &str, run: &Value) -> Value {
    let path = format!("/syncs/{}", run["id"].as_str().unwrap());
    admin(dir, "GET", org, &path, None).await.1
}

/// Waits (polling every 50 ms, `within` at most) until the run `POST
/// /syncs` answered has finished.
pub(crate) async fn wait_for_run(
    dir: &Directory,
    org: &str,
    run: &Value,
    within: Duration,
) -> Value {
    let every = Duration::from_millis(50);
    let tries = (within.as_millis() / every.as_millis()) as usize;
    poll(tries, every, async || {
        let current = run_now(dir, org, run).await;
        (current["status"] == "succeeded" || current["status"] == "failed").then_some(current)
    })
    .await
    .unwrap_or_else(|| panic!("run {} did not finish in {within:?}", run["id"]))
}

/// Waits (60 s at most) until the run `POST /syncs` answered has finished.
pub(crate) async fn finished_run(dir: &Directory, org: &str, run: &Value) -> Value {
    wait_for_run(dir, org, run, Duration::from_secs(60)).await
}

/// The value of `query`, a `SELECT count(*) AS n …` read straight from the database.
pub(crate) async fn count(db: &orgsync_infra::Database, query: String) -> i64 {
    db.connection()
        .query_one(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            query,
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

/// `n` active directory users `u{i}@example.com` written behind the engine's
/// back (no change events): only a full reconcile sees them.
pub(crate) async fn seed_users(dir: &Directory, n: u32) {
    dir.app
        .runtime
        .db
        .connection()
        .execute_unprepared(&format!(
            "INSERT INTO directory_users (id, connection_id, user_name, user_name_lower, external_id, display_name, \
             active, email, resource, version, created_at, updated_at) \
             SELECT gen_random_uuid(), '{conn}', 'u' || n || '@example.com', 'u' || n || '@example.com', 'e' || n, \
             'User ' || n, TRUE, 'u' || n || '@example.com', \
             jsonb_build_object('userName', 'u' || n || '@example.com', 'active', TRUE), 1, now(), now() \
             FROM generate_series(1, {n}) AS n",
            conn = dir.conn
        ))
        .await
        .unwrap();
}
