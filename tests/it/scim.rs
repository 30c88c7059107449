//! The SCIM service provider against PostgreSQL, with the request shapes
//! real IdPs send (Okta, Microsoft Entra ID, OneLogin, JumpCloud).

use serde_json::{json, Value};

use crate::fixtures::{child, connect_directory, create_root, own_connection};
use crate::json::{items, strings};
use crate::support::TestApp;

pub(crate) struct Directory {
    pub(crate) app: TestApp,
    pub(crate) org: String,
    pub(crate) conn: String,
    pub(crate) token: String,
}

impl Directory {
    pub(crate) async fn new() -> Self {
        Self::on(TestApp::spawn().await).await
    }

    /// A directory on an app whose settings `adjust` changed.
    pub(crate) async fn with(adjust: impl FnOnce(&mut orgsync_api::config::Settings)) -> Self {
        Self::on(TestApp::spawn_with(adjust).await).await
    }

    pub(crate) async fn on(app: TestApp) -> Self {
        let org = create_root(&app, "Acme", "acme").await;
        let (conn, sync) = connect_directory(&app, &org, "Okta").await;
        assert!(sync["scim_base_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/{conn}")));
        let token = sync["token"].as_str().unwrap().to_owned();
        Self {
            app,
            org,
            conn,
            token,
        }
    }

    pub(crate) async fn scim(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.app
            .call(
                method,
                &format!("/scim/v2/{}{path}", self.conn),
                Some(&self.token),
                body,
            )
            .await
    }

    pub(crate) async fn user(&self, user_name: &str) -> String {
        let (status, user) = self
            .create_user(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name, "externalId": format!("ext-{user_name}"),
                "name": {"givenName": "A", "familyName": "B"},
                "emails": [{"value": user_name, "type": "work", "primary": true}],
                "active": true
            }))
            .await;
        assert_eq!(status, 201, "{user}");
        user["id"].as_str().unwrap().to_owned()
    }

    /// `rest` of the directory's connection, for [`Directory::admin`].
    pub(crate) fn connection_path(&self, rest: &str) -> String {
        format!("/connections/{}{rest}", self.conn)
    }
}

pub(crate) fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

#[actix_web::test]
async fn tokens_reach_only_their_connection_and_stop_when_rotated_or_disabled() {
    let dir = Directory::new().await;
    assert_eq!(dir.scim("GET", "/Users", None).await.0, 200);

    // A second connection's token cannot read the first one's directory.
    let (_, sync) = connect_directory(&dir.app, &dir.org, "Entra").await;
    let other_token = sync["token"].as_str().unwrap();
    let path = format!("/scim/v2/{}/Users", dir.conn);
    let (status, error) = dir.app.call("GET", &path, Some(other_token), None).await;
    assert_eq!(status, 401, "{error}");
    assert_eq!(
        error["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(error["status"], "401");
    for bad in [None, Some("osscim_wrong")] {
        let (status, _) = dir.app.call("GET", &path, bad, None).await;
        assert_eq!(status, 401);
    }
    // Enabling again issues nothing new; the token is shown once.
    let sync_path = dir.connection_path("/directory-sync");
    let (_, again) = dir
        .admin("PUT", &sync_path, Some(json!({"enabled": true})))
        .await;
    assert!(again.get("token").is_none(), "{again}");

    // Rotation (grace 0): the old token stops, the new one works.
    let (status, rotated) = dir
        .admin("POST", &dir.connection_path("/directory-sync/token"), None)
        .await;
    assert_eq!(status, 201);
    let new_token = rotated["token"].as_str().unwrap();
    assert_eq!(dir.scim("GET", "/Users", None).await.0, 401);
    assert_eq!(
        dir.app.call("GET", &path, Some(new_token), None).await.0,
        200
    );

    // Disabling directory sync shuts the SCIM door and keeps the directory.
    let (status, _) = dir
        .admin("PUT", &sync_path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        dir.app.call("GET", &path, Some(new_token), None).await.0,
        401
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn users_are_unique_by_user_name_and_found_by_the_filters_idps_use() {
    let (dir, [alice, _]) = Directory::with_users(["alice@example.com", "bob@example.com"]).await;

    let (status, error) = dir
        .create_user(json!({"userName": "ALICE@example.com"}))
        .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["scimType"], "uniqueness");

    for (filter, expected) in [
        ("userName eq \"Alice@Example.COM\"", 1),
        ("externalId eq ext-alice@example.com", 1),
        ("externalId eq \"EXT-ALICE@EXAMPLE.COM\"", 0),
        ("emails[type eq \"work\" and value co \"bob\"]", 1),
        ("name.givenName eq \"a\" and not (userName sw \"bob\")", 1),
        ("userName eq \"nobody\"", 0),
        ("active eq true", 2),
    ] {
        let query = filter
            .replace(' ', "%20")
            .replace('"', "%22")
            .replace('[', "%5B")
            .replace(']', "%5D");
        let (status, list) = dir
            .scim("GET", &format!("/Users?filter={query}"), None)
            .await;
        assert_eq!(status, 200, "{filter}: {list}");
        assert_eq!(list["totalResults"], expected, "{filter}");
        assert_eq!(
            list["itemsPerPage"],
            list["Resources"].as_array().unwrap().len(),
            "{filter}"
        );
    }
    let list = dir
        .scim_get("/Users?filter=userName%20eq%20%22alice@example.com%22")
        .await;
    assert_eq!(list["Resources"][0]["id"], alice.as_str());

    let (status, error) = dir
        .scim("GET", "/Users?filter=userName%20zz%20%22x%22", None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["scimType"], "invalidFilter");

    let page = dir
        .scim_get("/Users?sortBy=userName&startIndex=2&count=1")
        .await;
    assert_eq!(page["totalResults"], 2);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["Resources"][0]["userName"], "bob@example.com");
    dir.app.finish().await;
}

#[actix_web::test]
async fn entra_style_patches_apply_atomically_and_etags_guard_updates() {
    let dir = Directory::new().await;
    let id = dir.user("carol@example.com").await;
    let (status, user) = dir
        .scim_patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "value": {
                    "name.givenName": "Carol",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales"
                }},
                {"op": "replace", "path": "emails[type eq \"home\"].value", "value": "carol@home.example"}
            ]),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["active"], false);
    assert_eq!(user["name"]["givenName"], "Carol");
    assert_eq!(
        user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Sales"
    );
    assert!(items(&user["emails"]).any(|e| e["type"] == "home"));
    assert_eq!(user["meta"]["version"], "W/\"2\"");
    // The answer is the stored user, as a read gives it (timestamps as
    // stored, values as the database keeps them), and so is a PUT's.
    let read = dir.scim_get(&format!("/Users/{id}")).await;
    assert_eq!(user, read);
    let mut replaced = read.clone();
    replaced["title"] = json!("Engineer");
    replaced["x-rank"] =
        json!({"n": 1.5, "big": 12345678901234_i64, "e": 1e-7, "list": [true, null]});
    let (status, put) = dir
        .scim("PUT", &format!("/Users/{id}"), Some(replaced))
        .await;
    assert_eq!(status, 200, "{put}");
    let read = dir.scim_get(&format!("/Users/{id}")).await;
    assert_eq!(put, read);

    // One bad operation rejects the whole request and changes nothing.
    let (status, error) = dir
        .scim_patch(
            &format!("/Users/{id}"),
            json!([
                {"op": "replace", "path": "displayName", "value": "Changed"},
                {"op": "replace", "path": "id", "value": "other"}
            ]),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["scimType"], "mutability");
    let unchanged = dir.scim_get(&format!("/Users/{id}")).await;
    assert!(unchanged.get("displayName").is_none());
    assert_eq!(unchanged["meta"]["version"], "W/\"3\"");

    // A stale If-Match is refused.
    let req = actix_web::test::TestRequest::put()
        .uri(&format!("/scim/v2/{}/Users/{id}", dir.conn))
        .insert_header(("authorization", format!("Bearer {}", dir.token)))
        .insert_header(("if-match", "W/\"2\""))
        .set_json(json!({"userName": "carol@example.com"}));
    assert_eq!(dir.app.send(req).await.status().as_u16(), 412);

    assert_eq!(
        dir.scim("DELETE", &format!("/Users/{id}"), None).await.0,
        204
    );
    assert_eq!(dir.scim("GET", &format!("/Users/{id}"), None).await.0, 404);
    dir.app.finish().await;
}

#[actix_web::test]
async fn group_members_change_by_filter_and_by_value_list_and_concurrent_adds_lose_nothing() {
    let dir = Directory::new().await;
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(dir.user(&format!("u{i}@example.com")).await);
    }
    let gid = dir.group("Engineering", &users[..1]).await;

    // Ten IdP workers add one member each, at once.
    let path = format!("/Groups/{gid}");
    let bodies: Vec<Value> = users[1..11]
        .iter()
        .map(|u| patch(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])))
        .collect();
    let results = futures::future::join_all(
        bodies
            .into_iter()
            .map(|b| dir.scim("PATCH", &path, Some(b))),
    )
    .await;
    // PATCH answers 204 (RFC 7644 §3.5.2): the member list is not sent back.
    for (status, body) in results {
        assert_eq!(status, 204, "{body}");
    }
    let group = dir.scim_get(&format!("/Groups/{gid}")).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 11);

    // Okta: remove by filter; Entra/OneLogin: remove with a value list.
    let (status, _) = dir
        .scim_patch(
            &format!("/Groups/{gid}"),
            json!([
                {"op": "remove", "path": format!("members[value eq \"{}\"]", users[0])},
                {"op": "Remove", "path": "members", "value": [{"value": users[1]}, {"value": users[2]}]},
                {"op": "replace", "path": "displayName", "value": "Eng"}
            ]),
        )
        .await;
    assert_eq!(status, 204);
    let group = dir
        .scim_get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert!(group.get("members").is_none());
    assert_eq!(group["displayName"], "Eng");
    let list = dir
        .scim_get("/Groups?filter=displayName%20eq%20%22eng%22&excludedAttributes=members")
        .await;
    assert_eq!(list["totalResults"], 1);
    let with = dir
        .scim_get(&format!(
            "/Groups?filter=members%5Bvalue%20eq%20%22{}%22%5D",
            users[5]
        ))
        .await;
    assert_eq!(with["totalResults"], 1);

    // A user's groups are derived from membership; deleting the user leaves the group.
    let user = dir.scim_get(&format!("/Users/{}", users[5])).await;
    assert_eq!(user["groups"][0]["value"], gid.as_str());
    assert_eq!(
        dir.scim("DELETE", &format!("/Users/{}", users[5]), None)
            .await
            .0,
        204
    );
    let group = dir.scim_get(&format!("/Groups/{gid}")).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 7);

    // PUT replaces the whole group: no members sent, none kept.
    let (status, group) = dir
        .scim(
            "PUT",
            &format!("/Groups/{gid}"),
            Some(json!({"displayName": "Eng"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(group["members"], json!([]));
    assert_eq!(
        dir.scim("DELETE", &format!("/Groups/{gid}"), None).await.0,
        204
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn every_directory_change_is_an_ordered_event_with_the_entity_version() {
    use orgsync_domain::directory::{ChangeOp, ConnectionId, EntityKind};
    use orgsync_domain::ports::ChangeFeed;
    let dir = Directory::new().await;
    let id = dir.user("dave@example.com").await;
    dir.set_active(&id, false).await;
    dir.scim("DELETE", &format!("/Users/{id}"), None).await;
    let repo = orgsync_infra::SqlDirectoryRepository::new(dir.app.runtime.db.clone());
    let events = repo
        .events(ConnectionId(dir.conn.parse().unwrap()), 0, 100)
        .await
        .unwrap();
    let summary: Vec<(i64, EntityKind, ChangeOp, i64)> = events
        .iter()
        .map(|e| (e.seq, e.entity, e.op, e.entity_version))
        .collect();
    assert_eq!(
        summary,
        [
            (1, EntityKind::User, ChangeOp::Created, 1),
            (2, EntityKind::User, ChangeOp::Updated, 2),
            (3, EntityKind::User, ChangeOp::Deleted, 3)
        ]
    );
    dir.app.finish().await;
}

#[actix_web::test]
async fn okta_deactivates_by_put_and_the_user_stays_as_inactive() {
    let dir = Directory::new().await;
    let id = dir.user("erin@example.com").await;
    // Okta sends the full profile by PUT, deactivation included, and never DELETEs.
    let (status, user) = dir
        .scim(
            "PUT",
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": id, "userName": "erin@example.com",
                "name": {"givenName": "Erin", "familyName": "E"},
                "emails": [{"primary": true, "value": "erin@example.com", "type": "work"}],
                "active": false, "groups": [], "password": "never-stored"
            })),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["active"], false);
    assert!(user.get("password").is_none());
    let list = dir.scim_get("/Users?filter=active%20eq%20false").await;
    assert_eq!(list["totalResults"], 1);
    dir.app.finish().await;
}

#[actix_web::test]
async fn onelogin_and_jumpcloud_group_updates_apply_as_sent() {
    let (dir, [a, b, c]) =
        Directory::with_users(["a@example.com", "b@example.com", "c@example.com"]).await;
    // JumpCloud: memberships sent only inside POST/PUT members.
    let (status, group) = dir
        .scim(
            "POST",
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Sales",
                "members": [{"value": a, "display": "a@example.com"}, {"value": b}]
            })),
        )
        .await;
    assert_eq!(status, 201);
    let gid = group["id"].as_str().unwrap().to_owned();
    let (_, group) = dir
        .scim(
            "PUT",
            &format!("/Groups/{gid}"),
            Some(json!({"displayName": "Sales EMEA", "members": [{"value": b}, {"value": c}]})),
        )
        .await;
    let mut values: Vec<&str> = strings(&group["members"], "value");
    values.sort_unstable();
    let mut expected = [b.as_str(), c.as_str()];
    expected.sort_unstable();
    assert_eq!(values, expected);

    // OneLogin: the rename travels with every membership update, path-less.
    let (status, group) = dir
        .scim_patch(
            &format!("/Groups/{gid}"),
            json!([
                {"op": "replace", "value": {"id": gid, "displayName": "Sales EMEA"}},
                {"op": "add", "value": {"members": [{"value": a}]}},
                {"op": "remove", "path": "members", "value": [{"value": c}]}
            ]),
        )
        .await;
    assert_eq!(status, 204, "{group}");
    let group = dir.scim_get(&format!("/Groups/{gid}")).await;
    assert_eq!(group["members"].as_array().unwrap().len(), 2);

    // Entra: look-up by displayName without members; integers in the list envelope.
    let (status, list) = dir
        .scim(
            "GET",
            "/Groups?filter=displayName%20eq%20%22Sales%20EMEA%22&excludedAttributes=members",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], json!(1));
    assert_eq!(list["startIndex"], json!(1));
    assert_eq!(list["itemsPerPage"], json!(1));
    assert!(list["Resources"][0].get("members").is_none());
    dir.app.finish().await;
}

#[actix_web::test]
async fn oversized_bodies_and_floods_get_scim_errors_and_change_nothing() {
    let dir = Directory::with(|s| {
        s.server.body_limit = 4096;
        s.scim.rate_limit_per_second = 1;
        s.scim.rate_limit_burst = 5;
    })
    .await;
    let (status, error) = dir
        .create_user(json!({"userName": "big@example.com", "title": "x".repeat(5000)}))
        .await;
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["status"], "413");
    let list = dir
        .scim_get("/Users?filter=userName%20eq%20%22big@example.com%22")
        .await;
    assert_eq!(list["totalResults"], 0, "nothing was created");
    // A burst of 5 at 1/s: a flood is refused with 429 and told when to come
    // back. Sent until refused (at most 20), so a slow machine that refills a
    // token meanwhile cannot make the test pass or fail by timing.
    let path = format!("/scim/v2/{}/Users", dir.conn);
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        let response = dir
            .app
            .send(crate::support::request(
                "GET",
                &path,
                Some(&dir.token),
                None,
            ))
            .await;
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("never refused: {statuses:?}"));
    assert!(refused.headers().get("retry-after").is_some());
    dir.app.finish().await;
}

/// A tenant whose connections each stay inside their own budget still meets
/// its tenant's, shared by every connection of its tree (one per child org
/// adds up otherwise); another tenant is served meanwhile.
#[actix_web::test]
async fn a_tenants_connections_share_one_budget_and_other_tenants_keep_theirs() {
    let dir = Directory::with(|s| {
        s.scim.rate_limit_per_second = 1;
        s.scim.rate_limit_burst = 3;
        s.scim.tenant_rate_multiple = 1;
    })
    .await;
    let child = child(&dir, "emea").await;
    let (sibling, sibling_token) = own_connection(&dir, &child).await;
    let other_tenant = create_root(&dir.app, "Globex", "globex").await;
    let (neighbour, neighbour_token) = own_connection(&dir, &other_tenant).await;
    let list = |conn: &str, token: &str| {
        let path = format!("/scim/v2/{conn}/Users");
        let token = token.to_owned();
        let app = &dir.app;
        async move {
            let response = app
                .send(crate::support::request("GET", &path, Some(&token), None))
                .await;
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            let body = crate::support::parse(&actix_web::test::read_body(response).await);
            let detail = body["detail"].as_str().unwrap_or_default().to_owned();
            (status, retry_after, detail)
        }
    };
    for _ in 0..3 {
        let (status, ..) = list(&dir.conn, &dir.token).await;
        assert_eq!(status, 200, "the tenant's burst");
    }
    let (status, _, detail) = list(&dir.conn, &dir.token).await;
    assert_eq!(status, 429, "the connection's own burst is spent too");
    assert!(detail.contains("this connection's"), "{detail}");
    // The sibling has its own burst of 3 left, the tenant none: refused
    // before the sibling's own budget runs out (a second's refill allows one).
    let mut served = 0;
    let (status, retry_after, detail) = loop {
        match list(&sibling, &sibling_token).await {
            (200, ..) if served < 3 => served += 1,
            answer => break answer,
        }
    };
    assert_eq!((status, retry_after), (429, true), "after {served} served");
    assert!(
        served < 3,
        "the tenant's budget, not the connection's, refused it"
    );
    assert!(
        detail.contains("this tenant's connections share"),
        "{detail}"
    );
    let (status, retry_after, _) = list(&neighbour, &neighbour_token).await;
    assert_eq!(
        (status, retry_after),
        (200, false),
        "another tenant is served"
    );
    let metrics = dir
        .app
        .send(actix_web::test::TestRequest::get().uri("/metrics"))
        .await;
    let metrics = String::from_utf8_lossy(&actix_web::test::read_body(metrics).await).into_owned();
    for budget in ["connection", "tenant"] {
        let line = format!("orgsync_scim_rate_limited_total{{budget=\"{budget}\"}} 1");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    dir.app.finish().await;
}

/// Every answer that shows a user shows its groups, read with the user
/// (one statement on PostgreSQL), in displayName order whatever the case,
/// and none when `excludedAttributes` leaves them out: GET, PATCH, PUT and a
/// filtered list alike.
#[actix_web::test]
async fn every_user_answer_carries_its_groups_in_order_unless_excluded() {
    let dir = Directory::new().await;
    let (user, beta) = dir.user_in_group("grouped@example.com", "beta").await;
    let alpha = dir.group("Alpha", &[&user]).await;
    dir.user("alone@example.com").await;
    let names = |answer: &Value| -> Vec<(String, String)> {
        answer["groups"]
            .as_array()
            .map(|groups| {
                groups
                    .iter()
                    .map(|g| {
                        (
                            g["value"].as_str().unwrap().to_owned(),
                            g["display"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let expected = vec![
        (alpha.clone(), "Alpha".to_owned()),
        (beta, "beta".to_owned()),
    ];
    let path = format!("/Users/{user}");

    let (status, got) = dir.scim("GET", &path, None).await;
    assert_eq!((status, names(&got)), (200, expected.clone()), "GET");
    let (status, patched) = dir
        .scim_patch(
            &path,
            json!([{"op": "replace", "path": "displayName", "value": "Renamed"}]),
        )
        .await;
    assert_eq!((status, names(&patched)), (200, expected.clone()), "PATCH");
    assert_eq!(patched["displayName"], "Renamed");
    let body = json!({"userName": "grouped@example.com", "displayName": "Put"});
    let (status, put) = dir.scim("PUT", &path, Some(body)).await;
    assert_eq!((status, names(&put)), (200, expected.clone()), "PUT");
    let filter = "/Users?filter=userName%20co%20%22%40example.com%22";
    let (status, list) = dir.scim("GET", filter, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["totalResults"], 2);
    let listed: Vec<Vec<(String, String)>> = items(&list["Resources"]).map(names).collect();
    assert!(listed.contains(&expected), "{list}");
    assert!(
        listed.contains(&Vec::new()),
        "the lone user has none: {list}"
    );

    let excluded = format!("{path}?excludedAttributes=groups");
    let got = dir.scim_get(&excluded).await;
    assert!(got.get("groups").is_none(), "{got}");
    let (_, patched) = dir
        .scim_patch(
            &excluded,
            json!([{"op": "replace", "path": "displayName", "value": "Again"}]),
        )
        .await;
    assert!(patched.get("groups").is_none(), "{patched}");
    assert_eq!(patched["displayName"], "Again");
    let only = dir.scim_get(&format!("{path}?attributes=groups")).await;
    assert_eq!(names(&only), expected, "attributes=groups");
    dir.app.finish().await;
}

/// Discovery (RFC 7644 §4) answers only a caller with the connection's
/// token, says truthfully what is supported, and names each resource at
/// this connection's base URL; what is not supported is a SCIM error.
#[actix_web::test]
async fn discovery_tells_an_authenticated_idp_what_is_supported() {
    let dir = Directory::new().await;
    let base = format!("/scim/v2/{}", dir.conn);
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
        "/Bulk",
    ] {
        for token in [None, Some("not-the-token")] {
            let (status, error) = dir
                .app
                .call("GET", &format!("{base}{path}"), token, None)
                .await;
            assert_eq!(status, 401, "{path}: {error}");
            assert_eq!(
                error["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
                "{error}"
            );
        }
    }

    let (status, config) = dir.scim("GET", "/ServiceProviderConfig", None).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["patch"]["supported"], true);
    assert_eq!(config["bulk"]["supported"], false);
    assert_eq!(config["filter"]["maxResults"], 1000);
    assert!(
        config["meta"]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!("{base}/ServiceProviderConfig"))),
        "{config}"
    );

    let (status, types) = dir.scim("GET", "/ResourceTypes", None).await;
    assert_eq!(status, 200, "{types}");
    assert_eq!(types["totalResults"], 2);
    assert_eq!(
        strings(&types["Resources"], "endpoint"),
        ["/Users", "/Groups"]
    );
    let (status, user_type) = dir.scim("GET", "/ResourceTypes/User", None).await;
    assert_eq!(status, 200, "{user_type}");
    assert_eq!(
        user_type["schemaExtensions"][0]["schema"],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    );

    let (status, schemas) = dir.scim("GET", "/Schemas", None).await;
    assert_eq!(status, 200, "{schemas}");
    let ids = strings(&schemas["Resources"], "id");
    assert!(
        ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:User")
            && ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:Group"),
        "{ids:?}"
    );
    let (status, group) = dir
        .scim(
            "GET",
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group",
            None,
        )
        .await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["name"], "Group");

    let refused = [
        ("GET", "/ResourceTypes/Device", 404),
        ("GET", "/Schemas/urn:example:nothing", 404),
        ("POST", "/ServiceProviderConfig", 405),
        ("POST", "/Bulk", 501),
        ("POST", "/Users/.search", 501),
        ("GET", "/Nowhere", 404),
    ];
    for (method, path, expected) in refused {
        let (status, error) = dir.scim(method, path, Some(json!({}))).await;
        assert_eq!(status, expected, "{method} {path}: {error}");
        assert_eq!(error["status"], expected.to_string(), "{error}");
        assert_eq!(
            error["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{error}"
        );
    }
    dir.app.finish().await;
}
