//! The membership sync engine end to end: SCIM changes in, members out, on
//! PostgreSQL with the app's real worker applying change events.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

use crate::fixtures::{
    admin, create_child, members, preview_provisioning, put_confirmed, seed_users,
    set_provisioning, start_sync, switch_to_scim, wait_for_run,
};
use crate::json::{items, strings};
use crate::scim::Directory;
use crate::support::poll;

impl Directory {
    fn org_path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.org)
    }

    pub(crate) async fn members(&self) -> Vec<Value> {
        members(self, &self.org).await
    }

    pub(crate) async fn member_of(&self, user: &str) -> Option<Value> {
        self.members()
            .await
            .into_iter()
            .find(|m| m["directory_user_id"] == user)
    }

    /// Waits (bounded) for the worker to make `check` true.
    pub(crate) async fn eventually(
        &self,
        what: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let reached = poll(100, Duration::from_millis(50), async || {
            let members = self.members().await;
            check(&members).then_some(members)
        })
        .await;
        match reached {
            Some(members) => members,
            None => panic!(
                "not reached within 5 s: {what}; members: {:?}",
                self.members().await
            ),
        }
    }
}

fn emails(members: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = members
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[actix_web::test]
async fn switching_to_scim_previews_removals_adopts_by_email_and_needs_confirmation() {
    let (dir, [alice, _]) = Directory::with_users(["alice@example.com", "bob@example.com"]).await;
    // Members added by hand while the org was manual: one the IdP knows, one it does not.
    let (_, kept) = dir
        .add_member(json!({"email": "Alice@Example.com", "role": "admin"}))
        .await;
    let (status, _) = dir.add_member(json!({"email": "carol@example.com"})).await;
    assert_eq!(status, 201);
    // An email is one member, whatever its case; the refused add writes nothing.
    let (status, problem) = dir.add_member(json!({"email": "CAROL@example.com"})).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "https://orgsync.dev/problems/already-exists"
    );
    let created = dir.get("/audit-log?action=member.created").await;
    assert_eq!(created["data"].as_array().unwrap().len(), 2, "{created}");

    let (status, preview) = preview_provisioning(&dir, &dir.org, "scim").await;
    assert_eq!(status, 200);
    assert_eq!(preview["counts"]["adds"], 1, "{preview}");
    assert_eq!(preview["counts"]["removals"], 1);
    assert_eq!(
        preview["changes"]["removals"][0]["email"],
        "carol@example.com"
    );
    assert_eq!(
        preview["changes"]["removals"][0]["reason"]["kind"],
        "not_in_directory"
    );

    // Without the preview's confirmation nothing happens.
    let (status, problem) = set_provisioning(&dir, &dir.org, "scim").await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "https://orgsync.dev/problems/confirmation-required"
    );
    let (status, _) = dir
        .admin(
            "PUT",
            "/provisioning",
            Some(json!({"mode": "scim", "confirm": "0000"})),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        emails(&dir.members().await),
        ["Alice@Example.com", "carol@example.com"]
    );

    switch_to_scim(&dir, &dir.org).await;
    let members = dir.members().await;
    assert_eq!(emails(&members), ["alice@example.com", "bob@example.com"]);
    let adopted = members
        .iter()
        .find(|m| m["email"] == "alice@example.com")
        .unwrap();
    assert_eq!(adopted["id"], kept["id"], "adopted, not recreated");
    assert_eq!(adopted["directory_user_id"], alice.as_str());
    assert_eq!(
        adopted["role"], "admin",
        "group mapping is off: the role is kept"
    );

    // Members of a SCIM org come from the directory.
    let (status, problem) = dir.add_member(json!({"email": "dave@example.com"})).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem["type"],
        "https://orgsync.dev/problems/governed-by-directory"
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn group_mappings_decide_roles_by_precedence_and_fall_back_when_a_group_is_left() {
    let (dir, [ann, ben, cid]) =
        Directory::with_users(["ann@example.com", "ben@example.com", "cid@example.com"]).await;
    let admins = dir.group("Admins", &[&ann]).await;
    let staff = dir.group("Staff", &[&ann, &ben]).await;
    switch_to_scim(&dir, &dir.org).await;
    assert_eq!(dir.members().await.len(), 3);

    let mappings = json!({"enabled": true, "roles": [{"group": admins, "role": "admin"}, {"group": staff, "role": "user"}]});
    let (status, preview) = dir
        .admin("POST", "/group-mappings/preview", Some(mappings.clone()))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(
        preview["counts"]["removals"], 1,
        "cid is in no mapped group"
    );
    assert_eq!(
        preview["changes"]["removals"][0]["reason"]["kind"],
        "no_role_group"
    );
    let (status, _) = dir
        .admin("PUT", "/group-mappings", Some(mappings.clone()))
        .await;
    assert_eq!(status, 409, "an incomplete mapping needs confirmation");
    let mut confirmed = mappings.clone();
    confirmed["confirm"] = preview["confirmation"].clone();
    let (status, saved) = dir.admin("PUT", "/group-mappings", Some(confirmed)).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["sync_run"]["counts"]["removals"], 1);

    let members = dir.members().await;
    assert!(dir.member_of(&cid).await.is_none());
    let role = |user: &str| {
        members
            .iter()
            .find(|m| m["directory_user_id"] == user)
            .map(|m| m["role"].clone())
    };
    assert_eq!(role(&ann), Some(json!("admin")));
    assert_eq!(role(&ben), Some(json!("user")));

    // Ann leaves Admins in the IdP: she falls back to the next mapped role.
    let (status, _) = dir.remove_from_group(&admins, &ann).await;
    assert_eq!(status, 204);
    dir.eventually("ann falls back to user", |members| {
        members
            .iter()
            .any(|m| m["directory_user_id"] == ann.as_str() && m["role"] == "user")
    })
    .await;

    // Roles are governed by the mapping: no hand edits, and the error names the mapping.
    let member = dir.member_of(&ann).await.unwrap();
    let (status, problem) = dir
        .admin(
            "PATCH",
            &format!("/members/{}", member["id"].as_str().unwrap()),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("roles[1]"),
        "{problem}"
    );
    // Unknown groups or roles are refused, and nothing changes.
    let (status, problem) = dir
        .admin(
            "PUT",
            "/group-mappings",
            Some(json!({"enabled": true, "roles": [{"group": uuid::Uuid::now_v7(), "role": "admin"}]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["invalid_params"][0]["name"], "roles[0].group");
    dir.app.finish().await;
}

#[actix_web::test]
async fn idp_changes_apply_in_place_and_deactivation_follows_the_org_policy() {
    let (dir, [eve, fay]) = Directory::with_users(["eve@example.com", "fay@example.com"]).await;
    switch_to_scim(&dir, &dir.org).await;
    let before = dir.member_of(&eve).await.unwrap();

    // An email change in the IdP updates the member in place: same id.
    let (status, _) = dir
        .scim_patch(
            &format!("/Users/{eve}"),
            json!([
                {"op": "replace", "path": "userName", "value": "eve.new@example.com"},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "eve.new@example.com"}
            ]),
        )
        .await;
    assert_eq!(status, 200);
    let members = dir
        .eventually("eve's email follows the IdP", |members| {
            members.iter().any(|m| m["email"] == "eve.new@example.com")
        })
        .await;
    let after = members
        .iter()
        .find(|m| m["directory_user_id"] == eve.as_str())
        .unwrap();
    assert_eq!(after["id"], before["id"]);
    assert_eq!(members.len(), 2);

    // Deactivation removes by default...
    dir.set_active(&fay, false).await;
    dir.eventually("fay removed", |members| members.len() == 1)
        .await;
    // ...or suspends, when the org says so (an inactive directory user is then a
    // suspended member, so fay comes back suspended); reactivation restores.
    let (status, _) = dir
        .admin(
            "PUT",
            "/group-mappings",
            Some(json!({"enabled": false, "deprovision": "suspend"})),
        )
        .await;
    assert_eq!(status, 200);
    let suspended = |members: &[Value], user: &str| {
        members
            .iter()
            .any(|m| m["directory_user_id"] == user && m["status"] == "suspended")
    };
    assert!(suspended(&dir.members().await, &fay));
    dir.set_active(&eve, false).await;
    dir.eventually("eve suspended", |members| suspended(members, &eve))
        .await;
    dir.set_active(&eve, true).await;
    dir.eventually("eve active again", |members| {
        members
            .iter()
            .any(|m| m["directory_user_id"] == eve.as_str() && m["status"] == "active")
    })
    .await;
    // A hard DELETE in the IdP removes the member.
    dir.scim("DELETE", &format!("/Users/{eve}"), None).await;
    dir.eventually("eve removed", |members| {
        members.len() == 1 && suspended(members, &fay)
    })
    .await;
    dir.app.finish().await;
}

#[actix_web::test]
async fn synced_attributes_land_in_metadata_and_are_read_only_while_sync_is_on() {
    let dir = Directory::new().await;
    let (status, _) = dir
        .admin(
            "PUT",
            &format!("/connections/{}/attributes", dir.conn),
            Some(json!({"attributes": [
                {"key": "department", "scim_path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"},
                {"key": "cost_center", "scim_path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter", "sso_claim": "cc"}
            ]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, user) = dir
        .create_user(json!({
            "userName": "gil@example.com",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales", "costCenter": "CC-7"}
        }))
        .await;
    assert_eq!(status, 201);
    let gil = user["id"].as_str().unwrap().to_owned();
    switch_to_scim(&dir, &dir.org).await;
    let member = dir.member_of(&gil).await.unwrap();
    assert_eq!(
        member["public_metadata"],
        json!({"department": "Sales", "cost_center": "CC-7"})
    );

    let path = format!("/members/{}", member["id"].as_str().unwrap());
    let set_metadata =
        |metadata: Value| dir.admin("PATCH", &path, Some(json!({ "public_metadata": metadata })));
    let (status, problem) = set_metadata(json!({"department": "Ops"})).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("department"));
    let (status, updated) = set_metadata(json!({"nickname": "G"})).await;
    assert_eq!(status, 200, "other keys stay writable: {updated}");
    assert_eq!(updated["public_metadata"]["nickname"], "G");
    let (status, _) = dir.admin("DELETE", &path, None).await;
    assert_eq!(status, 409, "a directory member is removed in the IdP");
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_manual_sync_runs_on_the_worker_and_reports_what_it_did() {
    let dir = Directory::new().await;
    dir.user("hal@example.com").await;
    switch_to_scim(&dir, &dir.org).await;
    // Changes the incremental path has not seen yet (written straight to the store) are found by a full sync.
    let (status, tiers) = dir
        .admin(
            "PUT",
            "/seat-tiers",
            Some(json!({"seat_tiers": ["standard", "premium"]})),
        )
        .await;
    assert_eq!(status, 200, "{tiers}");
    dir.user("ivy@example.com").await;

    let run = start_sync(&dir, &dir.org, json!({"scope": "both"})).await;
    let finished = wait_for_run(&dir, &dir.org, &run, Duration::from_secs(5)).await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["progress"], json!({"processed": 1, "total": 1}));
    assert!(
        finished["jobs"][0]["report"]["counts"].is_object(),
        "{finished}"
    );
    assert_eq!(
        emails(&dir.members().await),
        ["hal@example.com", "ivy@example.com"]
    );
    let runs = dir.get("/syncs").await;
    let kinds: Vec<&str> = strings(&runs["data"], "kind");
    assert_eq!(kinds, ["manual", "mode_change"], "newest first");
    dir.app.finish().await;
}

#[actix_web::test]
async fn children_and_sandboxes_draw_on_the_parents_directory_with_their_own_mappings() {
    let (dir, [jo, kim]) = Directory::with_users(["jo@example.com", "kim@example.com"]).await;
    let eng = dir.group("Engineering", &[&jo]).await;
    let token = dir.app.tokens.platform();
    let (_, sandbox) = create_child(
        &dir.app,
        &token,
        &dir.org,
        json!({"name": "Sandbox", "slug": "acme-sandbox", "kind": "sandbox"}),
    )
    .await;
    let sandbox = sandbox["id"].as_str().unwrap();
    let (status, _) = set_provisioning(&dir, sandbox, "scim").await;
    assert_eq!(status, 200);
    let (_, members) = admin(&dir, "GET", sandbox, "/members", None).await;
    assert_eq!(members["data"].as_array().unwrap().len(), 2);
    let mappings = json!({"enabled": true, "roles": [{"group": eng, "role": "owner"}]});
    put_confirmed(&dir, sandbox, "/group-mappings", mappings).await;
    let (_, members) = admin(&dir, "GET", sandbox, "/members", None).await;
    let members = members["data"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["directory_user_id"], jo.as_str());
    assert_eq!(members[0]["role"], "owner");
    // The parent stays manual and untouched by its child's sync.
    assert!(dir.members().await.is_empty());
    let _ = kim;
    dir.app.finish().await;
}

#[actix_web::test]
async fn members_export_as_csv_with_groups_and_attributes() {
    let dir = Directory::new().await;
    dir.admin(
        "PUT",
        &format!("/connections/{}/attributes", dir.conn),
        Some(json!({"attributes": [{"key": "department", "scim_path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}]})),
    )
    .await;
    let (_, user) = dir
        .create_user(json!({
            "userName": "quinn@example.com", "displayName": "Quinn, \"Q\" Jones",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
        }))
        .await;
    let quinn = user["id"].as_str().unwrap().to_owned();
    dir.group("Research", &[&quinn]).await;
    dir.user("rae@example.com").await;
    switch_to_scim(&dir, &dir.org).await;

    for request in [
        actix_web::test::TestRequest::get().uri(&dir.org_path("/members.csv")),
        actix_web::test::TestRequest::get()
            .uri(&dir.org_path("/members"))
            .insert_header(("accept", "text/csv")),
    ] {
        let response = dir
            .app
            .send(request.insert_header((
                "authorization",
                format!("Bearer {}", dir.app.tokens.platform()),
            )))
            .await;
        assert_eq!(response.status().as_u16(), 200);
        assert!(response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let body = String::from_utf8(actix_web::test::read_body(response).await.to_vec()).unwrap();
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header[..3], ["member_id", "email", "name"]);
        assert!(
            header.contains(&"attribute:department".to_owned()),
            "{header:?}"
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        let quinn_row = rows.iter().find(|r| &r[1] == "quinn@example.com").unwrap();
        assert_eq!(
            &quinn_row[2], "Quinn, \"Q\" Jones",
            "RFC 4180 quoting round-trips"
        );
        assert_eq!(&quinn_row[9], "Research");
        let department = header
            .iter()
            .position(|h| h == "attribute:department")
            .unwrap();
        assert_eq!(&quinn_row[department], "R&D");
    }
    dir.app.finish().await;
}

/// An export longer than one page (5,000 members) names every member's
/// groups, case-insensitively by name, on every page: group names are read
/// once per export and reused page after page.
#[actix_web::test]
async fn an_export_of_several_pages_names_every_members_groups_in_order() {
    let dir = Directory::new().await;
    seed_users(&dir, 11_000).await;
    let groups = [
        ("Beta", "TRUE"),
        ("alpha", "n % 2 = 0"),
        ("Gamma", "n % 3 = 0"),
        ("Zed", "FALSE"),
    ];
    for (name, condition) in groups {
        let group = dir.group(name, &[] as &[&str]).await;
        dir.app
            .runtime
            .db
            .connection()
            .execute_unprepared(&format!(
                "INSERT INTO directory_group_members (connection_id, group_id, member_value, member_type) \
                 SELECT connection_id, '{group}', id::text, 'User' FROM \
                 (SELECT *, substring(user_name from '[0-9]+')::int AS n FROM directory_users \
                  WHERE connection_id = '{conn}') u WHERE {condition}",
                conn = dir.conn
            ))
            .await
            .unwrap();
    }
    switch_to_scim(&dir, &dir.org).await;

    let response = dir
        .app
        .send(
            actix_web::test::TestRequest::get()
                .uri(&dir.org_path("/members.csv"))
                .insert_header((
                    "authorization",
                    format!("Bearer {}", dir.app.tokens.platform()),
                )),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let body = actix_web::test::read_body(response).await;
    let mut reader = csv::Reader::from_reader(&body[..]);
    let mut seen = std::collections::HashSet::new();
    for row in reader.records() {
        let row = row.unwrap();
        assert!(seen.insert(row[0].to_owned()), "{} twice", &row[0]);
        let n: u32 = row[1]
            .trim_start_matches('u')
            .trim_end_matches("@example.com")
            .parse()
            .unwrap();
        let expected: Vec<&str> = [
            (n % 2 == 0).then_some("alpha"),
            Some("Beta"),
            (n % 3 == 0).then_some("Gamma"),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(&row[9], expected.join("; "), "{row:?}");
    }
    assert_eq!(seen.len(), 11_000);
    dir.app.finish().await;
}

#[actix_web::test]
async fn status_and_directory_views_show_what_the_idp_holds_and_whether_the_org_is_current() {
    let (dir, [sam, _]) = Directory::with_users(["sam@example.com", "tia@example.com"]).await;
    let team = dir.group("Team", &[&sam]).await;
    switch_to_scim(&dir, &dir.org).await;

    let (status, current) = dir.admin("GET", "/sync-status", None).await;
    assert_eq!(status, 200, "{current}");
    assert_eq!(current["current"], true, "{current}");
    assert_eq!(current["pending_events"], 0);
    assert_eq!(current["last_completed_sync"]["kind"], "mode_change");

    let conn = format!("/connections/{}", dir.conn);
    let users = dir
        .get(&format!("{conn}/directory/users?email_contains=SAM"))
        .await;
    assert_eq!(users["total"], 1, "{users}");
    assert_eq!(users["data"][0]["id"], sam.as_str());
    let users = dir
        .get(&format!(
            "{conn}/directory/users?active=true&count=1&start_index=2"
        ))
        .await;
    assert_eq!(
        (
            users["total"].clone(),
            users["data"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );
    let user = dir.get(&format!("{conn}/directory/users/{sam}")).await;
    assert_eq!(user["resource"]["userName"], "sam@example.com");
    assert_eq!(user["groups"][0]["display_name"], "Team");
    let groups = dir.get(&format!("{conn}/directory/groups")).await;
    assert_eq!(groups["data"][0]["member_count"], 1, "{groups}");
    let members = dir
        .get(&format!("{conn}/directory/groups/{team}/members"))
        .await;
    assert_eq!(members["data"][0]["value"], sam.as_str());

    let feed = dir.get(&format!("{conn}/directory/events?limit=2")).await;
    let seqs: Vec<i64> = items(&feed["data"])
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] > seqs[1], "newest first: {seqs:?}");
    let older = dir
        .get(&format!(
            "{conn}/directory/events?before={}",
            feed["next_before"]
        ))
        .await;
    assert!(items(&older["data"]).all(|e| e["seq"].as_i64().unwrap() < seqs[1]));

    let per_org = dir.get(&format!("{conn}/sync-status")).await;
    assert_eq!(per_org["orgs"].as_array().unwrap().len(), 1, "{per_org}");
    // Another org's connection is not found, whatever its id.
    let (status, _) = dir
        .admin(
            "GET",
            &format!("/connections/{}/directory/users", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    dir.app.finish().await;
}

#[actix_web::test]
async fn the_audit_log_records_who_changed_what_and_never_a_token() {
    let dir = Directory::new().await;
    let token = dir.app.tokens.platform();
    let (_, rotated) = dir
        .admin(
            "POST",
            &format!("/connections/{}/directory-sync/token", dir.conn),
            None,
        )
        .await;
    let new_token = rotated["token"].as_str().unwrap().to_owned();
    let (_, member) = dir.add_member(json!({"email": "uma@example.com"})).await;
    let member_id = member["id"].as_str().unwrap().to_owned();
    dir.admin(
        "PATCH",
        &format!("/members/{member_id}"),
        Some(json!({"role": "admin"})),
    )
    .await;
    dir.admin("PATCH", "", Some(json!({"name": "Acme Renamed"})))
        .await;

    let (status, log) = dir.admin("GET", "/audit-log", None).await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = strings(&log["data"], "action");
    assert_eq!(
        actions,
        [
            "org.updated",
            "member.updated",
            "member.created",
            "scim_token.rotated",
            "directory_sync.enabled",
            "connection.created",
            "org.created"
        ],
        "newest first"
    );
    let text = log.to_string();
    assert!(
        !text.contains(&dir.token) && !text.contains(&new_token),
        "tokens never reach the audit log"
    );

    let members = dir.get("/audit-log?action=member.").await;
    let entries = members["data"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["before"]["role"], "user");
    assert_eq!(entries[0]["after"]["role"], "admin");
    assert_eq!(
        entries[0]["actor"],
        json!({"kind": "admin", "subject": "platform-operator", "platform": true})
    );
    let one = dir
        .get(&format!("/audit-log?target={member_id}&limit=1"))
        .await;
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert!(one["next_cursor"].is_string());
    let _ = token;
    dir.app.finish().await;
}

/// Custom roles and seat tiers are a catalogue members and group mappings
/// draw on: a save listing a name twice, or dropping one a mapping or a
/// member still uses, is refused naming it, and changes nothing.
#[actix_web::test]
async fn custom_roles_and_seat_tiers_in_use_cannot_be_dropped() {
    let dir = Directory::new().await;
    let auditor = json!({"name": "auditor", "capabilities": ["audit:read"]});
    let reviewer = json!({"name": "reviewer", "capabilities": []});
    let refused = [
        (
            "/roles",
            json!({"roles": [auditor, auditor]}),
            "roles[1].name",
        ),
        (
            "/seat-tiers",
            json!({"seat_tiers": ["gold", "gold"]}),
            "seat_tiers[1]",
        ),
    ];
    for (path, body, field) in refused {
        let (status, problem) = dir.admin("PUT", path, Some(body)).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["invalid_params"][0]["name"], field, "{problem}");
    }
    let saved = [
        ("/roles", json!({"roles": [auditor, reviewer]})),
        ("/seat-tiers", json!({"seat_tiers": ["gold", "silver"]})),
    ];
    for (path, body) in saved {
        let (status, answer) = dir.admin("PUT", path, Some(body)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, ann) = dir
        .add_member(json!({"email": "ann@example.com", "role": "auditor", "seat_tier": "gold"}))
        .await;
    assert_eq!(status, 201, "{ann}");
    let (_, reviewers) = dir.user_in_group("bob@example.com", "Reviewers").await;
    let mappings = json!({
        "enabled": true,
        "roles": [{"group": reviewers, "role": "reviewer"}],
        "seat_tiers": [{"group": reviewers, "tier": "silver"}],
    });
    put_confirmed(&dir, &dir.org, "/group-mappings", mappings).await;

    let in_use = [
        (
            "/roles",
            json!({"roles": [auditor]}),
            "role reviewer is used by a group mapping",
        ),
        (
            "/roles",
            json!({"roles": [reviewer]}),
            "role auditor is held by members",
        ),
        (
            "/seat-tiers",
            json!({"seat_tiers": ["gold"]}),
            "seat tier silver is used by a group mapping",
        ),
        (
            "/seat-tiers",
            json!({"seat_tiers": ["silver"]}),
            "seat tier gold is held by members",
        ),
    ];
    for (path, body, reason) in in_use {
        let (status, problem) = dir.admin("PUT", path, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["invalid_params"][0]["reason"], reason, "{problem}");
    }
    let roles = dir.get("/roles").await;
    assert_eq!(strings(&roles["roles"], "name"), ["auditor", "reviewer"]);
    let tiers = dir.get("/seat-tiers").await;
    assert_eq!(tiers["seat_tiers"], json!(["gold", "silver"]));
    dir.app.finish().await;
}
