//! Writers colliding on the same rows: an IdP's parallel SCIM calls (Okta
//! and Entra send several at once), the worker applying them, and admins
//! resyncing, all on one org's users and groups. A collision may make a
//! request wait; it may not fail it (a deadlock answered 500 here, and two
//! resyncs queued at once did too).

use std::cell::RefCell;
use std::future::Future;

use reqwest::Method;
use serde_json::{json, Value};

use crate::fixtures::{
    audit_log, caught_up, child, member_count, members, members_by_email, preview_provisioning,
    put_confirmed, set_provisioning, unprotected_scim_directory, wait_for_members,
};
use crate::scim::Directory;
use crate::support::{EmbeddedDirectory, Lcg, Timed};

/// `n` distinct users, in a random order.
fn some(rng: &mut Lcg, users: &RefCell<Vec<String>>, n: usize) -> Vec<String> {
    let users = users.borrow();
    let mut picked: Vec<String> = Vec::new();
    while picked.len() < n.min(users.len()) {
        let candidate = &users[rng.below(users.len())];
        if !picked.contains(candidate) {
            picked.push(candidate.clone());
        }
    }
    picked
}

fn one(rng: &mut Lcg, users: &RefCell<Vec<String>>) -> String {
    let users = users.borrow();
    users[rng.below(users.len())].clone()
}

/// Runs the lanes side by side; fails with every failure they report.
async fn none_failed(lanes: impl IntoIterator<Item = impl Future<Output = Vec<String>>>) {
    let failures: Vec<String> = futures::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn member_values(users: &[String]) -> Value {
    users.iter().map(|u| json!({"value": u})).collect()
}

/// One lane's steps; the answers that were 5xx, with what was sent.
async fn collide(
    dir: &Directory,
    users: &RefCell<Vec<String>>,
    groups: &[String],
    lane: u64,
) -> Vec<String> {
    let mut rng = Lcg(0xc011_1de5 + lane);
    let mut failures = Vec::new();
    for step in 0..40 {
        let group = &groups[rng.below(groups.len())];
        let (what, (status, body)) = match rng.below(8) {
            0 => {
                let some = some(&mut rng, users, 6);
                let ops = json!([{"op": "add", "path": "members", "value": member_values(&some)}]);
                (
                    "group add",
                    dir.scim_patch(&format!("/Groups/{group}"), ops).await,
                )
            }
            1 => {
                let some = some(&mut rng, users, 6);
                let filter = some
                    .iter()
                    .map(|u| format!("value eq \"{u}\""))
                    .collect::<Vec<_>>()
                    .join(" or ");
                let ops = json!([{"op": "remove", "path": format!("members[{filter}]")}]);
                (
                    "group remove",
                    dir.scim_patch(&format!("/Groups/{group}"), ops).await,
                )
            }
            2 => {
                let some = some(&mut rng, users, 10);
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": format!("G{}", groups.iter().position(|g| g == group).unwrap_or(0)),
                    "members": member_values(&some),
                });
                (
                    "group put",
                    dir.scim("PUT", &format!("/Groups/{group}"), Some(body))
                        .await,
                )
            }
            3 => {
                let some = some(&mut rng, users, 8);
                let ops =
                    json!([{"op": "replace", "path": "members", "value": member_values(&some)}]);
                (
                    "group replace",
                    dir.scim_patch(&format!("/Groups/{group}"), ops).await,
                )
            }
            4 => {
                let user = one(&mut rng, users);
                (
                    "user active",
                    dir.set_active(&user, rng.below(3) != 0).await,
                )
            }
            5 => {
                let user = one(&mut rng, users);
                let ops = json!([{"op": "replace", "path": "displayName", "value": format!("n{lane}-{step}")}]);
                (
                    "user rename",
                    dir.scim_patch(&format!("/Users/{user}"), ops).await,
                )
            }
            6 => {
                // The IdP deletes a person and creates them again: every
                // group they were in loses them at once.
                let user = one(&mut rng, users);
                let answer = dir.scim("DELETE", &format!("/Users/{user}"), None).await;
                if answer.0 == 204 {
                    users.borrow_mut().retain(|u| *u != user);
                    let user_name = format!("c-{lane}-{step}@example.com");
                    let (status, created) = dir
                        .create_user(json!({
                            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                            "userName": user_name,
                            "emails": [{"value": user_name, "primary": true}],
                            "active": true
                        }))
                        .await;
                    if let Some(id) = created["id"].as_str() {
                        users.borrow_mut().push(id.to_owned());
                    } else if status >= 500 {
                        failures.push(format!(
                            "lane {lane} step {step} user create: {status} {created}"
                        ));
                    }
                }
                ("user delete", answer)
            }
            _ => (
                "resync",
                dir.admin("POST", "/syncs", Some(json!({"cascade": false})))
                    .await,
            ),
        };
        if status >= 500 {
            failures.push(format!("lane {lane} step {step} {what}: {status} {body}"));
        }
    }
    failures
}

#[actix_web::test]
async fn parallel_writers_on_the_same_users_and_groups_never_get_a_server_error() {
    let dir = unprotected_scim_directory().await;
    let org = dir.org.clone();
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(dir.user(&format!("c{i}@example.com")).await);
    }
    let mut groups = Vec::new();
    for g in 0..4 {
        groups.push(
            dir.group(&format!("G{g}"), &users[g * 10..g * 10 + 10])
                .await,
        );
    }
    let roles: Vec<Value> = groups
        .iter()
        .enumerate()
        .map(|(p, g)| json!({"group": g, "role": if p == 0 { "admin" } else { "user" }}))
        .collect();
    put_confirmed(
        &dir,
        &org,
        "/group-mappings",
        json!({"enabled": true, "roles": roles}),
    )
    .await;

    let users = RefCell::new(users);
    let lanes = (0..8).map(|lane| collide(&dir, &users, &groups, lane));
    none_failed(lanes).await;
    dir.app.finish().await;
}

/// Six copies of one admin request sent at once: the answers' statuses.
async fn six_at_once(dir: &Directory, method: &'static str, rest: &str, body: Value) -> Vec<u16> {
    let path = format!("/api/v1/orgs/{}{rest}", dir.org);
    six_at_once_to(dir, &dir.app.tokens.platform(), method, path, body).await
}

/// [`six_at_once`] to any `path`, with `token`.
async fn six_at_once_to(
    dir: &Directory,
    token: &str,
    method: &'static str,
    path: String,
    body: Value,
) -> Vec<u16> {
    let body = (!body.is_null()).then_some(body);
    let requests = (0..6)
        .map(|_| Timed::at(0, method, path.clone(), body.clone()))
        .collect();
    let answers = dir.app.race_as(token, requests).await;
    for (status, answer) in &answers {
        assert!(*status < 500, "{method} {path}: {status} {answer}");
    }
    answers.into_iter().map(|(status, _)| status).collect()
}

/// The id of the item of the list at `rest` whose `field` is `value`.
async fn id_where(dir: &Directory, rest: &str, field: &str, value: &str) -> String {
    let (status, list) = dir.admin("GET", rest, None).await;
    assert_eq!(status, 200, "{list}");
    list["data"]
        .as_array()
        .and_then(|all| all.iter().find(|item| item[field] == value))
        .and_then(|item| item["id"].as_str())
        .unwrap_or_else(|| panic!("no item of {rest} with {field} {value}: {list}"))
        .to_owned()
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Every admin write an impatient admin (a double click, a retrying
/// script) sends twice at once: one of a kind is made, one deletion
/// succeeds, the rest are told why not, and none is a server error.
#[actix_web::test]
async fn admin_writes_sent_six_times_at_once_are_made_once_and_never_fail() {
    let dir = Directory::new().await;
    let child = json!({"name": "Twin", "slug": "twin"});
    let made = six_at_once(&dir, "POST", "/children", child).await;
    assert_eq!(count(&made, 201), 1, "{made:?}");
    let member = json!({"email": "twin@example.com", "role": "user"});
    let made = six_at_once(&dir, "POST", "/members", member).await;
    assert_eq!(count(&made, 201), 1, "{made:?}");
    let twin = id_where(&dir, "/members", "email", "twin@example.com").await;

    for (method, rest, body) in [
        ("PATCH", format!("/members/{twin}"), json!({"name": "Twin"})),
        ("PATCH", String::new(), json!({"name": "Renamed"})),
        (
            "PUT",
            "/roles".into(),
            json!({"roles": [{"name": "auditor", "capabilities": ["audit:read"]}]}),
        ),
        ("PUT", "/seat-tiers".into(), json!({"seat_tiers": ["gold"]})),
        (
            "PUT",
            "/deletion-protection".into(),
            json!({"max_removals": 5}),
        ),
        (
            "PUT",
            "/provisioning/jit".into(),
            json!({"default_role": "user"}),
        ),
        ("PUT", "/provisioning".into(), json!({"mode": "jit"})),
        ("POST", "/syncs".into(), json!({"cascade": true})),
        (
            "PUT",
            dir.connection_path("/attributes"),
            json!({"attributes": [{"key": "department", "scim_path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]}),
        ),
        (
            "POST",
            dir.connection_path("/directory-sync/token"),
            Value::Null,
        ),
        (
            "PUT",
            dir.connection_path("/directory-sync"),
            json!({"enabled": true}),
        ),
        ("POST", "/connections".into(), json!({"name": "Spare"})),
        (
            "POST",
            "/webhooks".into(),
            json!({"url": "https://hooks.example.com/orgsync"}),
        ),
    ] {
        six_at_once(&dir, method, &rest, body).await;
    }

    let hook = id_where(
        &dir,
        "/webhooks",
        "url",
        "https://hooks.example.com/orgsync",
    )
    .await;
    six_at_once(
        &dir,
        "POST",
        &format!("/webhooks/{hook}/secret"),
        Value::Null,
    )
    .await;
    let gone = six_at_once(&dir, "DELETE", &format!("/webhooks/{hook}"), Value::Null).await;
    assert_eq!(count(&gone, 204), 1, "{gone:?}");
    let gone = six_at_once(&dir, "DELETE", &format!("/members/{twin}"), Value::Null).await;
    assert_eq!(count(&gone, 204), 1, "{gone:?}");
    let spare = id_where(&dir, "/connections", "name", "Spare").await;
    let gone = six_at_once(
        &dir,
        "DELETE",
        &format!("/connections/{spare}"),
        Value::Null,
    )
    .await;
    assert_eq!(count(&gone, 204), 1, "{gone:?}");
    let twin_org = id_where(&dir, "/children", "slug", "twin").await;
    let platform = dir.app.tokens.platform();
    let path = format!("/api/v1/orgs/{twin_org}");
    let gone = six_at_once_to(&dir, &platform, "DELETE", path, Value::Null).await;
    assert_eq!(count(&gone, 204), 1, "{gone:?}");
    dir.app.finish().await;
}

/// Six copies of one SCIM request sent at once (an IdP retrying a call
/// that timed out while the first was still running): the statuses.
async fn six_scim_at_once(
    dir: &Directory,
    method: &'static str,
    rest: &str,
    body: Value,
) -> Vec<u16> {
    let path = format!("/scim/v2/{}{rest}", dir.conn);
    six_at_once_to(dir, &dir.token, method, path, body).await
}

/// An IdP's retries overlapping their first attempt: one user or group is
/// made, one deletion succeeds, the rest are told (409, 404), and a
/// member derived from the user exists once.
#[actix_web::test]
async fn scim_writes_sent_six_times_at_once_are_made_once_and_never_fail() {
    let dir = unprotected_scim_directory().await;
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "twin@example.com",
        "externalId": "twin",
        "emails": [{"value": "twin@example.com", "primary": true}],
        "active": true
    });
    let made = six_scim_at_once(&dir, "POST", "/Users", user.clone()).await;
    assert_eq!(count(&made, 201), 1, "{made:?}");
    assert_eq!(count(&made, 409), 5, "{made:?}");
    let found = dir
        .scim_get("/Users?filter=userName%20eq%20%22twin@example.com%22")
        .await;
    let twin = found["Resources"][0]["id"]
        .as_str()
        .expect("the user")
        .to_owned();

    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Twins",
        "externalId": "twins",
        "members": [{"value": twin}]
    });
    // Group names need not be unique (RFC 7643 §4.2; Entra ID has twins):
    // these are six groups, and each must simply be made.
    let made = six_scim_at_once(&dir, "POST", "/Groups", group).await;
    assert_eq!(count(&made, 201), 6, "{made:?}");
    let mut renamed = user.clone();
    renamed["displayName"] = json!("Twin");
    six_scim_at_once(&dir, "PUT", &format!("/Users/{twin}"), renamed).await;
    let ops = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    });
    six_scim_at_once(&dir, "PATCH", &format!("/Users/{twin}"), ops).await;
    let ops = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": true}]
    });
    six_scim_at_once(&dir, "PATCH", &format!("/Users/{twin}"), ops).await;
    // Every change applied, not only a moment with one member: the
    // deactivation's removal may not have been applied yet.
    caught_up(&dir, &dir.org).await;
    wait_for_members(&dir, &dir.org, 1).await;

    let gone = six_scim_at_once(&dir, "DELETE", &format!("/Users/{twin}"), Value::Null).await;
    assert_eq!(count(&gone, 204), 1, "{gone:?}");
    assert_eq!(count(&gone, 404), 5, "{gone:?}");
    let groups = dir.scim_get("/Groups").await;
    for group in groups["Resources"].as_array().into_iter().flatten() {
        let id = group["id"].as_str().expect("an id");
        let gone = six_scim_at_once(&dir, "DELETE", &format!("/Groups/{id}"), Value::Null).await;
        assert_eq!(count(&gone, 204), 1, "{gone:?}");
    }
    wait_for_members(&dir, &dir.org, 0).await;
    dir.app.finish().await;
}

/// A connection deleted, and then its org, while its IdP is still writing
/// and an admin still editing: every write lands before or is told the
/// target is gone; none fails.
#[actix_web::test]
async fn writes_racing_the_deletion_of_their_connection_and_org_are_told_it_is_gone() {
    let dir = Directory::new().await;
    let doomed = child(&dir, "doomed").await;
    let users: Vec<Timed> = (0..80)
        .map(|i| {
            let user = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("late{i}@example.com"),
                "active": true
            });
            Timed::at(
                i * 6,
                "POST",
                format!("/scim/v2/{}/Users", dir.conn),
                Some(user),
            )
        })
        .collect();
    let connection = format!("/api/v1/orgs/{}/connections/{}", dir.org, dir.conn);
    let platform = dir.app.tokens.platform();
    let (scim, deleted) = futures::join!(
        dir.app.race_as(&dir.token, users),
        dir.app
            .race_as(&platform, vec![Timed::at(40, "DELETE", connection, None)]),
    );
    assert_eq!(deleted[0].0, 204, "{:?}", deleted[0]);
    let statuses: Vec<u16> = scim.iter().map(|(status, _)| *status).collect();
    // Authenticated before the deletion, written after: 404 (the
    // connection is gone); arriving after it: 401 (its token is gone).
    assert!(
        statuses.iter().all(|s| [201, 401, 404].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&201) && (statuses.contains(&401) || statuses.contains(&404)),
        "no race: {statuses:?}"
    );

    let org = format!("/api/v1/orgs/{doomed}");
    let edits = [
        ("PUT", "/seat-tiers", json!({"seat_tiers": ["gold"]})),
        ("PUT", "/deletion-protection", json!({"max_removals": 5})),
        ("POST", "/connections", json!({"name": "Late"})),
        ("PATCH", "", json!({"name": "Still doomed"})),
    ];
    let mut requests: Vec<Timed> = (0..80)
        .map(|i| {
            let (method, rest, body) = &edits[i % edits.len()];
            Timed::at(
                i as u64 * 6,
                method,
                format!("{org}{rest}"),
                Some(body.clone()),
            )
        })
        .collect();
    requests.push(Timed::at(40, "DELETE", org.clone(), None));
    let answers = dir.app.race(requests).await;
    let (deletion, edited) = answers.split_last().expect("answers");
    assert_eq!(deletion.0, 204, "{deletion:?}");
    let statuses: Vec<u16> = edited.iter().map(|(status, _)| *status).collect();
    assert!(
        statuses.iter().all(|s| [200, 201, 404].contains(s)),
        "{edited:?}"
    );
    assert!(statuses.contains(&404), "no race: {statuses:?}");
    let (status, _) = dir.app.admin("GET", &doomed, "", None).await;
    assert_eq!(status, 404);
    dir.app.finish().await;
}

/// An admin removes a custom role or seat tier while another assigns it
/// (editing a member, adding one): one of the two wins, and no member is
/// left holding what no longer exists.
#[actix_web::test]
async fn a_role_or_tier_removed_while_being_assigned_is_never_left_dangling() {
    let dir = Directory::new().await;
    let (status, ann) = dir
        .add_member(json!({"email": "ann@example.com", "role": "user"}))
        .await;
    assert_eq!(status, 201, "{ann}");
    let org = format!("/api/v1/orgs/{}", dir.org);
    let ann = format!("{org}/members/{}", ann["id"].as_str().expect("an id"));
    let auditor = json!({"roles": [{"name": "auditor", "capabilities": ["audit:read"]}]});
    for round in 0..12 {
        for (rest, catalog) in [
            ("/roles", &auditor),
            ("/seat-tiers", &json!({"seat_tiers": ["gold"]})),
        ] {
            let (status, saved) = dir.admin("PUT", rest, Some(catalog.clone())).await;
            assert_eq!(status, 200, "{saved}");
        }
        let assigned = json!({"role": "auditor", "seat_tier": "gold"});
        let mut added = assigned.clone();
        added["email"] = json!(format!("new{round}@example.com"));
        let after = u64::try_from(round % 4).expect("small");
        let answers = dir
            .app
            .race(vec![
                Timed::at(0, "PATCH", ann.clone(), Some(assigned)),
                Timed::at(0, "POST", format!("{org}/members"), Some(added)),
                Timed::at(
                    after,
                    "PUT",
                    format!("{org}/roles"),
                    Some(json!({"roles": []})),
                ),
                Timed::at(
                    after,
                    "PUT",
                    format!("{org}/seat-tiers"),
                    Some(json!({"seat_tiers": []})),
                ),
            ])
            .await;
        for (status, answer) in &answers {
            assert!(*status < 500, "round {round}: {status} {answer}");
        }
        let roles = dir.get("/roles").await.to_string();
        let tiers = dir.get("/seat-tiers").await.to_string();
        for member in members(&dir, &dir.org).await {
            assert!(
                member["role"] != "auditor" || roles.contains("auditor"),
                "round {round}: {member} holds a deleted role: {answers:?}"
            );
            assert!(
                member["seat_tier"] != "gold" || tiers.contains("gold"),
                "round {round}: {member} holds a deleted tier: {answers:?}"
            );
        }
        // Back to Ann alone, a plain user, for the next round.
        if let Some(new) = answers[1].1["id"].as_str() {
            let (status, _) = dir.admin("DELETE", &format!("/members/{new}"), None).await;
            assert_eq!(status, 204);
        }
        let (status, _) = dir.admin("PUT", "/roles", Some(auditor.clone())).await;
        assert_eq!(status, 200);
        let plain = json!({"role": "user", "seat_tier": null});
        let (status, reset) = dir
            .app
            .call("PATCH", &ann, Some(&dir.app.tokens.platform()), Some(plain))
            .await;
        assert_eq!(status, 200, "{reset}");
    }
    dir.app.finish().await;
}

/// An admin adds a member by hand while another switches the org to SCIM
/// (confirmed against a preview without that member): never both. Either
/// the add went first and the switch is refused (its preview is stale), or
/// the switch went first and the add is refused (SCIM governs members).
#[actix_web::test]
async fn a_member_added_during_a_switch_to_scim_is_never_left_behind_unseen() {
    let dir = Directory::new().await;
    dir.users_named(["dana@example.com"]).await;
    let org = format!("/api/v1/orgs/{}", dir.org);
    for round in 0..10 {
        let (status, preview) = preview_provisioning(&dir, &dir.org, "scim").await;
        assert_eq!(status, 200, "{preview}");
        let switch = json!({"mode": "scim", "confirm": preview["confirmation"]});
        let added = json!({"email": format!("late{round}@example.com"), "role": "user"});
        // The add lands at a different moment of the switch each round.
        let after = 4 * u64::try_from(round).expect("small");
        let answers = dir
            .app
            .race(vec![
                Timed::at(0, "PUT", format!("{org}/provisioning"), Some(switch)),
                Timed::at(after, "POST", format!("{org}/members"), Some(added)),
            ])
            .await;
        let (switched, add) = (answers[0].0, answers[1].0);
        assert!(
            (switched == 200 && add == 409) || (switched == 409 && add == 201),
            "round {round}: switch {switched}, add {add}: {answers:?}"
        );
        // Back to manual, with no one but the directory's member.
        let (status, answer) = set_provisioning(&dir, &dir.org, "manual").await;
        assert_eq!(status, 200, "{answer}");
        for member in members(&dir, &dir.org).await {
            let id = member["id"].as_str().expect("an id");
            let (status, _) = dir.admin("DELETE", &format!("/members/{id}"), None).await;
            assert_eq!(status, 204);
        }
    }
    dir.app.finish().await;
}

/// The embedded mode a newcomer runs first (SQLite, one writer at a time)
/// behind an IdP that sends eight calls at once: every call is served, none
/// fails for want of the database.
#[actix_web::test]
async fn the_embedded_mode_serves_an_idps_parallel_calls() {
    let embedded = EmbeddedDirectory::start().await;
    let everyone = json!({"displayName": "Everyone"});
    let (status, group) = embedded.scim(Method::POST, "/Groups", everyone).await;
    assert_eq!(status, 201, "{group}");
    let group = format!("/Groups/{}", group["id"].as_str().expect("an id"));

    let lanes = (0..8).map(|lane| {
        let (embedded, group) = (&embedded, &group);
        async move {
            let mut failures = Vec::new();
            for i in 0..15 {
                let user = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("p{lane}-{i}@example.com"),
                    "active": true
                });
                let (status, created) = embedded.scim(Method::POST, "/Users", user).await;
                if status != 201 {
                    failures.push(format!("create: {status} {created}"));
                    continue;
                }
                let ops = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": created["id"]}]}]
                });
                let (status, answer) = embedded.scim(Method::PATCH, group, ops).await;
                if !(200..300).contains(&status) {
                    failures.push(format!("group add: {status} {answer}"));
                }
            }
            failures
        }
    });
    none_failed(lanes).await;
}

/// A directory of Ann and Bob, in a manual org: Ann alone in "Admins",
/// both in "Everyone"; the two groups' ids.
async fn ann_and_bob_in_groups() -> (Directory, String, String) {
    let dir = Directory::new().await;
    let [ann, bob] = dir
        .users_named(["ann@example.com", "bob@example.com"])
        .await;
    let admins = dir.group("Admins", &[&ann]).await;
    let everyone = dir.group("Everyone", &[&ann, &bob]).await;
    (dir, admins, everyone)
}

/// One confirmed change sent six times at once (a double click on
/// "Confirm", a retrying script): it is applied once, the copies are told
/// it is done or stale, and the members are those of one application.
#[actix_web::test]
async fn a_confirmed_switch_or_mapping_sent_six_times_at_once_applies_once() {
    let (dir, admins, _) = ann_and_bob_in_groups().await;
    let (status, preview) = preview_provisioning(&dir, &dir.org, "scim").await;
    assert_eq!(status, 200, "{preview}");
    let switch = json!({"mode": "scim", "confirm": preview["confirmation"]});
    let switched = six_at_once(&dir, "PUT", "/provisioning", switch).await;
    assert!(switched.contains(&200), "{switched:?}");
    assert_eq!(member_count(&dir, &dir.org).await, 2);

    let mappings = json!({"enabled": true, "roles": [{"group": admins, "role": "admin"}]});
    let (status, preview) = dir
        .admin("POST", "/group-mappings/preview", Some(mappings.clone()))
        .await;
    assert_eq!(status, 200, "{preview}");
    let mut confirmed = mappings;
    confirmed["confirm"] = preview["confirmation"].clone();
    let saved = six_at_once(&dir, "PUT", "/group-mappings", confirmed).await;
    assert!(saved.contains(&200), "{saved:?}");
    let members = members_by_email(&dir, &dir.org).await;
    assert_eq!(
        members.len(),
        1,
        "only Ann is in a mapped group: {members:?}"
    );
    assert_eq!(members["ann@example.com"]["role"], "admin");
    for action in ["provisioning_mode.changed", "group_mappings.saved"] {
        let applied = audit_log(&dir, &dir.org, action).await;
        assert_eq!(
            applied["data"].as_array().map(Vec::len),
            Some(1),
            "{applied}"
        );
    }

    // An org deleted while children are being made under it.
    let parent = child(&dir, "parent").await;
    let mut requests: Vec<Timed> = (0..20)
        .map(|i| {
            let body = json!({"name": format!("c{i}"), "slug": format!("c{i}")});
            Timed::at(
                i * 2,
                "POST",
                format!("/api/v1/orgs/{parent}/children"),
                Some(body),
            )
        })
        .collect();
    requests.push(Timed::at(
        10,
        "DELETE",
        format!("/api/v1/orgs/{parent}"),
        None,
    ));
    let answers = dir.app.race(requests).await;
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert!(
        statuses.iter().all(|s| [201, 204, 404, 409].contains(s)),
        "{answers:?}"
    );
    let (status, _) = dir.app.admin("GET", &parent, "", None).await;
    let deleted = statuses[20] == 204;
    assert_eq!(status, if deleted { 404 } else { 200 }, "{statuses:?}");
    if deleted {
        assert!(
            !statuses[..20].contains(&201) || statuses[..20].contains(&404),
            "{statuses:?}"
        );
    }
    dir.app.finish().await;
}

/// A mapping save that waited behind a switch to SCIM is applied for SCIM:
/// the members reflect the new mappings at once, not at some later sync.
#[actix_web::test]
async fn a_mapping_save_queued_behind_a_switch_to_scim_is_applied() {
    let (dir, admins, everyone) = ann_and_bob_in_groups().await;
    let org = format!("/api/v1/orgs/{}", dir.org);
    // Nothing removed either way: no confirmation needed by either change.
    let mappings = json!({"enabled": true, "roles": [
        {"group": admins, "role": "admin"}, {"group": everyone, "role": "user"}]});
    for round in 0..4 {
        let (status, preview) = preview_provisioning(&dir, &dir.org, "scim").await;
        assert_eq!(status, 200, "{preview}");
        let switch = json!({"mode": "scim", "confirm": preview["confirmation"]});
        let answers = dir
            .app
            .race(vec![
                Timed::at(0, "PUT", format!("{org}/provisioning"), Some(switch)),
                Timed::at(
                    2 * round,
                    "PUT",
                    format!("{org}/group-mappings"),
                    Some(mappings.clone()),
                ),
            ])
            .await;
        assert!(
            answers.iter().all(|(status, _)| *status == 200),
            "round {round}: {answers:?}"
        );
        let members = members_by_email(&dir, &dir.org).await;
        assert_eq!(
            members["ann@example.com"]["role"], "admin",
            "round {round}: {members:?}"
        );
        assert_eq!(
            members["bob@example.com"]["role"], "user",
            "round {round}: {members:?}"
        );
        // Back to manual with no mappings and no members.
        let (status, answer) = set_provisioning(&dir, &dir.org, "manual").await;
        assert_eq!(status, 200, "{answer}");
        let (status, answer) = dir
            .admin(
                "PUT",
                "/group-mappings",
                Some(json!({"enabled": false, "roles": []})),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        for member in members.values() {
            let id = member["id"].as_str().expect("an id");
            let (status, _) = dir.admin("DELETE", &format!("/members/{id}"), None).await;
            assert_eq!(status, 204);
        }
    }
    dir.app.finish().await;
}
