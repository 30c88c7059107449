//! Writers colliding on the same rows: an IdP's parallel SCIM calls (Okta
//! and Entra send several at once), the worker applying them, and admins
//! resyncing, all on one org's users and groups. A collision may make a
//! request wait; it may not fail it (a deadlock answered 500 here, and two
//! resyncs queued at once did too).

use std::cell::RefCell;

use serde_json::{json, Value};

use crate::fixtures::{put_confirmed, set_deletion_threshold, switch_to_scim};
use crate::scim::Directory;
use crate::support::Lcg;

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
    let dir = Directory::new().await;
    let org = dir.org.clone();
    switch_to_scim(&dir, &org).await;
    set_deletion_threshold(&dir, &org, 0).await;
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
    let failures: Vec<String> = futures::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    dir.app.finish().await;
}
