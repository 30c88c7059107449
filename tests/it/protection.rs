//! Deletion protection: background syncs never remove or suspend more than an
//! org's threshold without an admin's say (the reported case: an IdP deleting
//! a mapped group). Source changes are previewed up front: `source.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fixtures::{
    admin, audit_log, finished_run, member_count, set_deletion_threshold, set_provisioning,
    start_sync, switch_to_scim, users, wait_for_members,
};
use crate::json::items;
use crate::scim::Directory;
use crate::support::{poll, Timed};

/// Waits (bounded) until `org` has removals held, and returns them.
async fn held(dir: &Directory, org: &str) -> Value {
    poll(200, Duration::from_millis(50), async || {
        let (status, held) = admin(dir, "GET", org, "/held-removals", None).await;
        if status == 200 {
            return Some(held);
        }
        assert_eq!(status, 404, "{held}");
        None
    })
    .await
    .unwrap_or_else(|| panic!("nothing was held within 10 s"))
}

/// An admin's decision on `org`'s held removals: confirms the plan `confirmation` names.
async fn confirm_held(dir: &Directory, org: &str, confirmation: &Value) -> (u16, Value) {
    admin(
        dir,
        "POST",
        org,
        "/held-removals/confirm",
        Some(json!({"confirmation": confirmation})),
    )
    .await
}

/// 80 members in SCIM mode, roles mapped from two groups (60 and 20 members).
async fn mapped_org() -> (Directory, String, String) {
    let dir = Directory::new().await;
    let many = users(&dir, "many", 60).await;
    let few = users(&dir, "few", 20).await;
    let big = dir.group("Engineering", &many).await;
    let small = dir.group("Sales", &few).await;
    let org = dir.org.clone();
    switch_to_scim(&dir, &org).await;
    let mappings = json!({"enabled": true, "roles": [
        {"group": big, "role": "admin"}, {"group": small, "role": "user"}]});
    let (status, saved) = admin(&dir, "PUT", &org, "/group-mappings", Some(mappings)).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(member_count(&dir, &org).await, 80);
    (dir, big, small)
}

/// A [`mapped_org`] whose IdP deleted its big group, the reported case:
/// the directory, and the removals held for an admin's say.
async fn big_group_deleted() -> (Directory, Value) {
    let (dir, big, _) = mapped_org().await;
    let (status, _) = dir.scim("DELETE", &format!("/Groups/{big}"), None).await;
    assert_eq!(status, 204);
    let held = held(&dir, &dir.org).await;
    (dir, held)
}

#[actix_web::test]
async fn an_idp_deleting_a_mapped_group_has_its_removals_held_until_confirmed() {
    let (dir, held) = big_group_deleted().await;
    let org = dir.org.clone();
    assert_eq!(held["counts"]["removals"], 60, "{held}");
    assert_eq!(held["removals"][0]["reason"]["kind"], "no_role_group");
    assert_eq!(member_count(&dir, &org).await, 80, "nobody removed yet");
    // Read a page at a time, as a preview is: 25 + 25 + 10, each once.
    let mut listed = std::collections::BTreeSet::new();
    let mut cursor = String::new();
    for expected in [25, 25, 10] {
        let (status, page) = admin(
            &dir,
            "GET",
            &org,
            &format!("/held-removals?limit=25{cursor}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            page["counts"]["removals"], 60,
            "counts cover the whole plan"
        );
        assert_eq!(page["confirmation"], held["confirmation"]);
        let removals = page["removals"].as_array().unwrap();
        assert_eq!(removals.len(), expected, "{page}");
        listed.extend(removals.iter().map(|r| r["member_id"].to_string()));
        cursor = page["next_cursor"]
            .as_str()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
    }
    assert!(cursor.is_empty(), "no page after the last");
    assert_eq!(listed.len(), 60, "every held removal listed once");
    let (status, _) = admin(&dir, "GET", &org, "/held-removals?limit=100000", None).await;
    assert_eq!(status, 422, "a page is at most limits.preview_page");
    let (_, status_view) = admin(&dir, "GET", &org, "/sync-status", None).await;
    assert_eq!(
        status_view["held_removals"]["removals"], 60,
        "{status_view}"
    );

    // A confirmation of some other plan changes nothing.
    let (status, problem) = confirm_held(&dir, &org, &json!("0000")).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(member_count(&dir, &org).await, 80);

    let (status, applied) = confirm_held(&dir, &org, &held["confirmation"]).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"]["removals"], 60);
    assert_eq!(member_count(&dir, &org).await, 20);
    let (status, _) = admin(&dir, "GET", &org, "/held-removals", None).await;
    assert_eq!(status, 404, "the plan is gone once applied");
    let audit = audit_log(&dir, &org, "members.removals_").await;
    let actions: Vec<&str> = items(&audit["data"])
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"members.removals_held"), "{actions:?}");
    assert!(
        actions.contains(&"members.removals_confirmed"),
        "{actions:?}"
    );
    // Downstream applications learn of the hold, and of each removal once confirmed.
    let (status, events) = admin(
        &dir,
        "GET",
        &org,
        "/events?types=sync.removals_held,member.removed&limit=1000",
        None,
    )
    .await;
    assert_eq!(status, 200, "{events}");
    let events = events["data"].as_array().unwrap();
    assert_eq!(events[0]["type"], "sync.removals_held", "{events:?}");
    assert_eq!(events[0]["data"]["removals"], 60, "{:?}", events[0]);
    let removed = events
        .iter()
        .filter(|e| e["type"] == "member.removed")
        .count();
    assert_eq!(removed, 60);
    dir.app.finish().await;
}

/// An IdP deprovisioning people one request at a time (a department
/// unassigned user by user) is held once the day's removals add up past the
/// threshold, as they would be all at once; after an admin confirms, the
/// count starts again.
#[actix_web::test]
async fn removals_trickling_in_one_user_at_a_time_are_held_once_they_add_up() {
    let dir = Directory::new().await;
    let staff = users(&dir, "staff", 40).await;
    let org = dir.org.clone();
    switch_to_scim(&dir, &org).await;
    assert_eq!(member_count(&dir, &org).await, 40);

    // The default threshold: ten go, each on its own, as they come.
    for (gone, user) in staff.iter().take(10).enumerate() {
        let (status, _) = dir.scim("DELETE", &format!("/Users/{user}"), None).await;
        assert_eq!(status, 204);
        wait_for_members(&dir, &org, 40 - gone - 1).await;
    }
    let (status, _) = admin(&dir, "GET", &org, "/held-removals", None).await;
    assert_eq!(status, 404, "ten removals are within the threshold");

    // The eleventh of the day is one too many: held, like the rest after it.
    for user in &staff[10..12] {
        let (status, _) = dir.scim("DELETE", &format!("/Users/{user}"), None).await;
        assert_eq!(status, 204);
    }
    let plan = poll(200, Duration::from_millis(50), async || {
        let (status, held) = admin(&dir, "GET", &org, "/held-removals", None).await;
        (status == 200 && held["counts"]["removals"] == 2).then_some(held)
    })
    .await
    .unwrap_or_else(|| panic!("the 11th and 12th removals were not held together"));
    assert_eq!(plan["source"], "directory", "{plan}");
    assert_eq!(member_count(&dir, &org).await, 30, "held, not applied");

    let (status, applied) = confirm_held(&dir, &org, &plan["confirmation"]).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(member_count(&dir, &org).await, 28);

    // Confirmed: the admin has seen the day's removals, and the next one goes at once.
    let (status, _) = dir
        .scim("DELETE", &format!("/Users/{}", staff[12]), None)
        .await;
    assert_eq!(status, 204);
    wait_for_members(&dir, &org, 27).await;
    let (status, _) = admin(&dir, "GET", &org, "/held-removals", None).await;
    assert_eq!(status, 404);
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_held_plan_the_directory_no_longer_asks_for_is_refused_and_narrowed() {
    let (dir, big, _) = mapped_org().await;
    let org = dir.org.clone();
    // The IdP empties the group by mistake, then puts one person back.
    let empty = json!([{"op": "remove", "path": "members"}]);
    let (status, _) = dir.scim_patch(&format!("/Groups/{big}"), empty).await;
    assert_eq!(status, 204);
    let first = held(&dir, &org).await;
    assert_eq!(first["counts"]["removals"], 60);
    let back = first["removals"][0]["member_id"].clone();
    let (_, member) = admin(
        &dir,
        "GET",
        &org,
        &format!("/members/{}", back.as_str().unwrap()),
        None,
    )
    .await;
    let user = member["directory_user_id"].as_str().unwrap().to_owned();
    let (status, _) = dir.add_to_group(&big, &user).await;
    assert_eq!(status, 204);
    // Let the worker see the re-add before confirming.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (status, problem) = confirm_held(&dir, &org, &first["confirmation"]).await;
    assert_eq!(status, 409, "an outdated plan is not applied: {problem}");
    assert_eq!(member_count(&dir, &org).await, 80);
    let narrowed = held(&dir, &org).await;
    assert_eq!(narrowed["counts"]["removals"], 59, "{narrowed}");
    let (status, _) = confirm_held(&dir, &org, &narrowed["confirmation"]).await;
    assert_eq!(status, 200);
    assert_eq!(member_count(&dir, &org).await, 21);
    dir.app.finish().await;
}

#[actix_web::test]
async fn small_removals_apply_at_once_and_a_zero_threshold_turns_protection_off() {
    let (dir, big, small) = mapped_org().await;
    let org = dir.org.clone();
    let (status, threshold) = admin(&dir, "GET", &org, "/deletion-protection", None).await;
    assert_eq!(status, 200);
    assert_eq!(threshold["max_removals"], 10);

    // 20 removals of 80 are above the default; at a threshold of 25 they apply.
    let (status, _) = set_deletion_threshold(&dir, &org, 25).await;
    assert_eq!(status, 200);
    let (status, _) = dir.scim("DELETE", &format!("/Groups/{small}"), None).await;
    assert_eq!(status, 204);
    wait_for_members(&dir, &org, 60).await;
    let (status, _) = admin(&dir, "GET", &org, "/held-removals", None).await;
    assert_eq!(status, 404);

    // Off: even all of them go.
    let (status, _) = set_deletion_threshold(&dir, &org, 0).await;
    assert_eq!(status, 200);
    let (status, _) = dir.scim("DELETE", &format!("/Groups/{big}"), None).await;
    assert_eq!(status, 204);
    wait_for_members(&dir, &org, 0).await;
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_member_role_cannot_decide_on_held_removals() {
    let (dir, held) = big_group_deleted().await;
    let org = dir.org.clone();
    let reader = dir.app.tokens.org(
        org.parse().unwrap(),
        orgsync_domain::auth::AdminRole::Member,
    );
    let confirmation = json!({"confirmation": held["confirmation"]});
    let (status, _) = dir
        .app
        .admin_as(
            &reader,
            "POST",
            &org,
            "/held-removals/confirm",
            Some(confirmation),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(member_count(&dir, &org).await, 80);
    dir.app.finish().await;
}

#[actix_web::test]
async fn turning_directory_sync_off_and_on_removes_nobody() {
    let (dir, _, _) = mapped_org().await;
    let org = dir.org.clone();
    let path = format!("/connections/{}/directory-sync", dir.conn);
    let (status, _) = admin(&dir, "PUT", &org, &path, Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200);
    let (status, _) = admin(
        &dir,
        "POST",
        &org,
        "/syncs",
        Some(json!({"cascade": false})),
    )
    .await;
    assert!(status == 202 || status == 409, "{status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        member_count(&dir, &org).await,
        80,
        "sync off keeps everyone"
    );
    let (status, _) = admin(&dir, "PUT", &org, &path, Some(json!({"enabled": true}))).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        member_count(&dir, &org).await,
        80,
        "and turning it back on too"
    );
    dir.app.finish().await;
}

/// Some connectors delete and re-create a person (on an email or domain
/// change): with the same externalId, the member comes back, not a new one.
#[actix_web::test]
async fn a_person_deleted_and_recreated_with_the_same_external_id_gets_their_member_back() {
    let dir = Directory::new().await;
    let org = dir.org.clone();
    let ada = dir.user("ada@example.com").await;
    switch_to_scim(&dir, &org).await;
    let (_, page) = admin(&dir, "GET", &org, "/members", None).await;
    let member = page["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, promoted) = admin(
        &dir,
        "PATCH",
        &org,
        &format!("/members/{member}"),
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 200, "{promoted}");

    // Re-created under a new userName and email, with the old externalId.
    let new = "ada.lovelace@new.example";
    let again = delete_and_recreate(&dir, &ada, user_body(new, "ext-ada@example.com", new)).await;
    // And a stranger, for contrast.
    dir.user("bob@example.com").await;
    let members = members_once(&dir, 2).await;
    let back = members
        .iter()
        .find(|m| m["email"] == "ada.lovelace@new.example")
        .unwrap_or_else(|| panic!("{members:?}"));
    assert_eq!(
        back["id"],
        member.as_str(),
        "the same member, not a new one"
    );
    assert_eq!(back["role"], "admin", "with its role");
    assert_eq!(back["directory_user_id"], again["id"]);
    let bob = members
        .iter()
        .find(|m| m["email"] == "bob@example.com")
        .unwrap();
    assert_ne!(bob["id"], member.as_str());
    let audit = audit_log(&dir, &org, "member.relinked").await;
    assert_eq!(audit["data"][0]["target_id"], member.as_str(), "{audit}");
    dir.app.finish().await;
}

/// The most common way back: the same directory user, removed when it left
/// its only mapped group (or was deactivated), returns. It gets its member
/// back (same id, same creation), not a second one, so nothing downstream
/// (an export, an application keyed by member id) sees a new person.
#[actix_web::test]
async fn a_directory_user_back_in_its_group_or_reactivated_gets_their_member_back() {
    let dir = Directory::new().await;
    let (ada, staff) = dir.user_in_group("ada@example.com", "Staff").await;
    switch_to_scim(&dir, &dir.org).await;
    let mappings = json!({"enabled": true, "roles": [{"group": staff, "role": "user"}]});
    let (status, saved) = dir.admin("PUT", "/group-mappings", Some(mappings)).await;
    assert_eq!(status, 200, "{saved}");
    let first = members_once(&dir, 1).await;
    let (id, created_at) = (first[0]["id"].clone(), first[0]["created_at"].clone());

    assert_eq!(dir.remove_from_group(&staff, &ada).await.0, 204);
    wait_for_members(&dir, &dir.org, 0).await;
    assert_eq!(dir.add_to_group(&staff, &ada).await.0, 204);
    let back = members_once(&dir, 1).await;
    assert_eq!(back[0]["id"], id, "back in the group: the same member");
    assert_eq!(back[0]["created_at"], created_at);

    // Deactivated (deprovisioning removes by default), then reactivated.
    assert_eq!(dir.set_active(&ada, false).await.0, 200);
    wait_for_members(&dir, &dir.org, 0).await;
    assert_eq!(dir.set_active(&ada, true).await.0, 200);
    let back = members_once(&dir, 1).await;
    assert_eq!(back[0]["id"], id, "reactivated: the same member");

    let audit = audit_log(&dir, &dir.org, "member.relinked").await;
    let relinked: Vec<&Value> = audit["data"].as_array().unwrap().iter().collect();
    assert_eq!(relinked.len(), 2, "{audit}");
    assert!(relinked.iter().all(|e| e["target_id"] == id), "{audit}");
    dir.app.finish().await;
}

/// The IdP deletes `user`, which takes its member with it, then creates
/// `recreated`; the new directory user.
async fn delete_and_recreate(dir: &Directory, user: &str, recreated: Value) -> Value {
    let (status, _) = dir.scim("DELETE", &format!("/Users/{user}"), None).await;
    assert_eq!(status, 204);
    wait_for_members(dir, &dir.org, 0).await;
    let (status, again) = dir.scim("POST", "/Users", Some(recreated)).await;
    assert_eq!(status, 201, "{again}");
    again
}

/// A SCIM user `user_name`, known to the IdP as `external_id`, with `email`
/// as its primary email.
fn user_body(user_name: &str, external_id: &str, email: &str) -> Value {
    json!({"userName": user_name, "externalId": external_id,
        "emails": [{"value": email, "primary": true}]})
}

/// Members of `dir`'s org, waiting (bounded) until there are `n`.
async fn members_once(dir: &Directory, n: usize) -> Vec<Value> {
    let mut members = Vec::new();
    poll(200, Duration::from_millis(50), async || {
        let (_, page) = admin(dir, "GET", &dir.org, "/members", None).await;
        members = page["data"].as_array().unwrap().clone();
        (members.len() == n).then_some(())
    })
    .await;
    members
}

/// With `sync.relink_by_email`, a person re-created with a new externalId but
/// the same email gets their member back; a window of 0 turns relinking off.
#[actix_web::test]
async fn relinking_by_email_is_configurable_and_bounded_by_the_window() {
    for (by_email, window, relinked) in [(true, 3600, true), (false, 3600, false), (true, 0, false)]
    {
        let app = crate::support::TestApp::spawn_with(|s| {
            s.sync.relink_by_email = by_email;
            s.sync.relink_window = window;
        })
        .await;
        let dir = Directory::on(app).await;
        let org = dir.org.clone();
        let ada = dir.user("ada@example.com").await;
        switch_to_scim(&dir, &org).await;
        let before = members_once(&dir, 1).await[0].clone();
        let recreated = user_body("ADA@example.com", "a-new-key", "Ada@Example.com");
        let again = delete_and_recreate(&dir, &ada, recreated).await;
        let after = members_once(&dir, 1).await;
        assert_eq!(after.len(), 1, "{after:?}");
        assert_eq!(
            after[0]["id"] == before["id"],
            relinked,
            "by_email={by_email} window={window}: {after:?}"
        );
        assert_eq!(after[0]["directory_user_id"], again["id"]);
        dir.app.finish().await;
    }
}

/// Rejecting a held plan drops it and removes nobody; the rejection is
/// audited with what it dropped. The directory still asks for the removals,
/// so the next sync holds them again: a rejection never turns into a
/// removal later, behind the admin's back.
#[actix_web::test]
async fn a_rejected_plan_removes_nobody_and_the_next_sync_holds_it_again() {
    let (dir, first) = big_group_deleted().await;
    let org = dir.org.clone();
    assert_eq!(first["counts"]["removals"], 60, "{first}");

    let (status, body) = admin(&dir, "POST", &org, "/held-removals/reject", None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(member_count(&dir, &org).await, 80, "nobody removed");
    let (status, _) = admin(&dir, "POST", &org, "/held-removals/reject", None).await;
    assert_eq!(status, 404, "nothing is held any more");
    let (status, problem) = confirm_held(&dir, &org, &first["confirmation"]).await;
    assert!(
        status == 404 || status == 409,
        "a rejected plan cannot be confirmed: {status} {problem}"
    );
    assert_eq!(member_count(&dir, &org).await, 80);
    let audit = audit_log(&dir, &org, "members.removals_rejected").await;
    let rejected = &audit["data"][0];
    assert_eq!(rejected["action"], "members.removals_rejected", "{audit}");
    assert_eq!(rejected["before"]["removals"], 60, "{rejected}");
    assert_eq!(
        rejected["before"]["confirmation"], first["confirmation"],
        "{rejected}"
    );

    let run = start_sync(&dir, &org, json!({"scope": "both"})).await;
    let finished = finished_run(&dir, &org, &run).await;
    assert_ne!(finished["status"], "failed", "{finished}");
    let again = held(&dir, &org).await;
    assert_eq!(again["counts"]["removals"], 60, "{again}");
    assert_eq!(
        member_count(&dir, &org).await,
        80,
        "held again, not applied"
    );
    dir.app.finish().await;
}

/// A switch away from SCIM drops what the directory's changes held: the
/// directory no longer governs members, so no one stays listed as about to
/// be removed, and the drop is audited with the plan it dropped.
#[actix_web::test]
async fn a_switch_away_from_scim_drops_the_held_removals() {
    let (dir, held) = big_group_deleted().await;
    let (status, switched) = set_provisioning(&dir, &dir.org, "manual").await;
    assert_eq!(status, 200, "{switched}");
    let (status, gone) = dir.admin("GET", "/held-removals", None).await;
    assert_eq!(status, 404, "{gone}");
    let (_, status_view) = dir.admin("GET", "/sync-status", None).await;
    assert!(status_view["held_removals"].is_null(), "{status_view}");
    let dropped = audit_log(&dir, &dir.org, "members.removals_dropped").await;
    assert_eq!(
        dropped["data"][0]["before"]["confirmation"], held["confirmation"],
        "{dropped}"
    );
    assert_eq!(dropped["data"][0]["before"]["removals"], 60, "{dropped}");
    assert_eq!(member_count(&dir, &dir.org).await, 80, "no one removed");
    dir.app.finish().await;
}

/// Held removals confirmed by one admin just as another switches the org
/// to manual: whichever goes second sees what the first did. A confirmation
/// that waited behind the switch removes no one (the directory no longer
/// governs members), and a switch that waited behind it finds them gone.
#[actix_web::test]
async fn a_confirmation_queued_behind_a_switch_to_manual_removes_no_one() {
    let (dir, held) = big_group_deleted().await;
    let org = format!("/api/v1/orgs/{}", dir.org);
    let manual = json!({"mode": "manual"});
    let confirm = json!({"confirmation": held["confirmation"]});
    let answers = dir
        .app
        .race(vec![
            Timed::at(0, "PUT", format!("{org}/provisioning"), Some(manual)),
            Timed::at(
                30,
                "POST",
                format!("{org}/held-removals/confirm"),
                Some(confirm),
            ),
        ])
        .await;
    let (switched, confirmed) = (&answers[0], &answers[1]);
    assert_eq!(switched.0, 200, "{switched:?}");
    let logged_at = async |action: &str| {
        let log = audit_log(&dir, &dir.org, action).await;
        let at = log["data"][0]["at"].as_str()?;
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        Some(time::OffsetDateTime::parse(at, rfc3339).expect("an RFC 3339 time"))
    };
    let switch_at = logged_at("provisioning_mode.changed").await;
    let confirm_at = logged_at("members.removals_confirmed").await;
    let left = member_count(&dir, &dir.org).await;
    match (switch_at, confirm_at) {
        (Some(switch), Some(confirm)) if confirm > switch => {
            panic!("removals confirmed after the switch to manual: {confirmed:?}, {left} left")
        }
        (Some(_), Some(_)) => assert_eq!(left, 20, "confirmed first: {confirmed:?}"),
        (Some(_), None) => {
            assert_eq!(left, 80, "{confirmed:?}");
            assert!([404, 409].contains(&confirmed.0), "{confirmed:?}");
        }
        other => panic!("no switch logged: {other:?}"),
    }
    dir.app.finish().await;
}
