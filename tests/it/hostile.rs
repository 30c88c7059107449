//! One tenant cannot hurt another: what a hostile or careless tenant admin or
//! IdP could send, each answered with a clear 4xx (or served correctly), never
//! a 5xx, a stall or a crash of the shared process.

use serde_json::{json, Value};

use crate::fixtures::{create_child, create_root, put_confirmed, switch_to_scim};
use crate::scim::{patch, Directory};
use crate::support::request;

#[actix_web::test]
async fn the_tree_stops_at_its_depth_limit_and_a_deep_tree_still_renders() {
    let app = crate::support::TestApp::spawn_with(|s| s.limits.org_depth = 40).await;
    let platform = app.tokens.platform();
    let root = create_root(&app, "Deep", "deep").await;
    let mut parent = root.clone();
    for level in 1..=40 {
        let (status, child) = create_child(
            &app,
            &platform,
            &parent,
            json!({"name": format!("L{level}"), "slug": format!("l{level}")}),
        )
        .await;
        assert_eq!(status, 201, "level {level}: {child}");
        parent = child["id"].as_str().unwrap().to_owned();
    }
    let (status, problem) = create_child(
        &app,
        &platform,
        &parent,
        json!({"name": "Too deep", "slug": "too-deep"}),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("limits.org_depth"),
        "{problem}"
    );

    let (status, tree) = app.admin("GET", &root, "/tree", None).await;
    assert_eq!(status, 200);
    let mut depth = 0;
    let mut node = &tree;
    while let Some(child) = node["children"].as_array().and_then(|c| c.first()) {
        depth += 1;
        node = child;
    }
    assert_eq!(depth, 40, "the tree is nested level by level");
    assert_eq!(node["name"], "L40");
    app.finish().await;
}

#[actix_web::test]
async fn a_children_limit_bounds_one_parent() {
    let app = crate::support::TestApp::spawn_with(|s| s.limits.org_children = 2).await;
    let platform = app.tokens.platform();
    let root = create_root(&app, "Wide", "wide").await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let child = json!({"name": format!("C{i}"), "slug": format!("c{i}")});
        statuses.push(create_child(&app, &platform, &root, child).await.0);
    }
    assert_eq!(statuses, [201, 201, 422]);

    // Sent at once, one past the limit: the bound holds, not only one by one.
    let crowded = create_root(&app, "Crowded", "crowded").await;
    let statuses = futures::future::join_all((0..8).map(|i| {
        let child = json!({"name": format!("D{i}"), "slug": format!("d{i}")});
        create_child(&app, &platform, &crowded, child)
    }))
    .await;
    assert_eq!(made_at_once(&statuses, 422), 2);
    app.finish().await;
}

/// How many of requests sent at once were made (201); every other one
/// must have been refused as over the limit (`refused`), nothing else.
fn made_at_once(statuses: &[(u16, Value)], refused: u16) -> usize {
    let others: Vec<_> = (statuses.iter())
        .filter(|(status, _)| ![201, refused].contains(status))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    statuses.iter().filter(|(status, _)| *status == 201).count()
}

/// Each connection is a SCIM token with a rate limit of its own: an org
/// cannot multiply what its IdPs may send by making more of them.
#[actix_web::test]
async fn a_connections_limit_bounds_one_org() {
    let app = crate::support::TestApp::spawn_with(|s| s.limits.connections_per_org = 2).await;
    let root = create_root(&app, "Many", "many").await;
    let (path, platform) = (
        format!("/api/v1/orgs/{root}/connections"),
        app.tokens.platform(),
    );
    let mut statuses = Vec::new();
    for i in 0..3 {
        let body = json!({"name": format!("IdP {i}")});
        statuses.push(app.call("POST", &path, Some(&platform), Some(body)).await.0);
    }
    assert_eq!(statuses, [201, 201, 409]);

    // Sent at once, one past the limit: still two.
    let crowded = create_root(&app, "Crowded", "crowded").await;
    let path = format!("/api/v1/orgs/{crowded}/connections");
    let statuses = futures::future::join_all((0..8).map(|i| {
        let body = json!({"name": format!("IdP {i}")});
        app.call("POST", &path, Some(&platform), Some(body))
    }))
    .await;
    assert_eq!(made_at_once(&statuses, 409), 2);
    app.finish().await;
}

#[actix_web::test]
async fn oversized_multi_valued_patches_are_refused_by_name_and_change_nothing() {
    let dir = Directory::new().await;
    let user = dir.user("ada@example.com").await;
    let path = format!("/Users/{user}");
    let add_to_x = async |values: Vec<u32>| {
        dir.scim_patch(&path, json!([{"op": "add", "path": "x", "value": values}]))
            .await
    };
    // The reported attack: one add of 120,000 values (0.8 MB, under the body limit).
    let (status, error) = add_to_x((0..120_000).collect()).await;
    assert_eq!(status, 413, "{error}");
    assert!(error["detail"]
        .as_str()
        .unwrap()
        .contains("limits.scim_attribute_values"));

    // Within the limits it applies, and values already there collapse.
    let (status, patched) = add_to_x((0..600).collect()).await;
    assert_eq!(status, 200, "{patched}");
    let (status, patched) = add_to_x((300..1000).collect()).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["x"].as_array().unwrap().len(), 1000);
    // Growing it one PATCH at a time stops at the same bound.
    let (status, error) = add_to_x(vec![5000]).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["scimType"], "invalidValue");
    assert!(error["detail"]
        .as_str()
        .unwrap()
        .contains("limits.scim_attribute_values"));

    // Too many operations in one request.
    let ops: Vec<Value> = (0..1001)
        .map(|i| json!({"op": "replace", "path": "displayName", "value": format!("n{i}")}))
        .collect();
    let (status, error) = dir.scim_patch(&path, json!(ops)).await;
    assert_eq!(status, 413, "{error}");
    assert!(error["detail"]
        .as_str()
        .unwrap()
        .contains("limits.scim_patch_operations"));

    // A resource past the size bound.
    let (status, error) = dir
        .scim_patch(
            &path,
            json!([{"op": "replace", "path": "title", "value": "t".repeat(70_000)}]),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(error["detail"]
        .as_str()
        .unwrap()
        .contains("limits.scim_resource_bytes"));
    let current = dir.scim_get(&path).await;
    assert!(current.get("title").is_none(), "nothing was changed");
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_group_with_an_extension_object_is_answered_as_valid_json() {
    let dir = Directory::new().await;
    let user = dir.user("ada@example.com").await;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "urn:example:ext:1.0"],
        "displayName": "Finance",
        "urn:example:ext:1.0": {"cost": "42", "nested": {"deeper": {"x": 1}}},
        "members": [{"value": user}]
    });
    let (status, created) = dir.scim("POST", "/Groups", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert!(created.is_object(), "not JSON: {created}");
    assert_eq!(created["urn:example:ext:1.0"]["nested"]["deeper"]["x"], 1);
    assert_eq!(created["members"][0]["value"], user.as_str());
    let id = created["id"].as_str().unwrap();

    let (status, fetched) = dir.scim("GET", &format!("/Groups/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["urn:example:ext:1.0"]["cost"], "42", "{fetched}");
    let (status, patched) = dir
        .scim_patch(
            &format!("/Groups/{id}"),
            json!([{"op": "replace", "path": "displayName", "value": "Finance EU"}]),
        )
        .await;
    assert_eq!(status, 204, "{patched}");
    let patched = dir.scim_get(&format!("/Groups/{id}")).await;
    assert_eq!(patched["displayName"], "Finance EU");
    assert_eq!(patched["members"].as_array().unwrap().len(), 1);
    dir.app.finish().await;
}

#[actix_web::test]
async fn an_unknown_member_type_is_refused_and_known_ones_are_normalised() {
    let dir = Directory::new().await;
    let user = dir.user("ada@example.com").await;
    let long_type = "x".repeat(40);
    let (status, error) = dir
        .scim(
            "POST",
            "/Groups",
            Some(json!({"displayName": "G", "members": [{"value": user, "type": long_type}]})),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["scimType"], "invalidValue");
    let (status, group) = dir
        .scim(
            "POST",
            "/Groups",
            Some(json!({"displayName": "G", "members": [{"value": user, "type": "user"}]})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    assert_eq!(group["members"][0]["type"], "User");
    let id = group["id"].as_str().unwrap();
    let (status, error) = dir
        .scim_patch(
            &format!("/Groups/{id}"),
            json!([{"op": "add", "path": "members",
                "value": [{"value": user, "type": "y".repeat(40)}]}]),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    dir.app.finish().await;
}

#[actix_web::test]
async fn exported_cells_that_spreadsheets_would_run_are_defused() {
    let dir = Directory::new().await;
    let formula = json!({"email": "eve@example.com", "name": "=HYPERLINK(\"http://x\",\"y\")"});
    let (status, member) = dir.add_member(formula).await;
    assert_eq!(status, 201, "{member}");
    let response = dir
        .app
        .send(crate::support::request(
            "GET",
            &format!("/api/v1/orgs/{}/members.csv", dir.org),
            Some(&dir.app.tokens.platform()),
            None,
        ))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let csv = String::from_utf8(actix_web::test::read_body(response).await.to_vec()).unwrap();
    assert!(
        csv.contains("'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")"),
        "{csv}"
    );
    assert!(!csv.contains("\"=HYPERLINK"), "{csv}");
    dir.app.finish().await;
}

#[actix_web::test]
async fn a_group_filter_reaches_only_the_orgs_own_directory() {
    let dir = Directory::new().await;
    let (_, group) = dir.user_in_group("ada@example.com", "G").await;
    let (status, _) = dir
        .admin("GET", &format!("/members?group={group}"), None)
        .await;
    assert_eq!(status, 200);
    let elsewhere = uuid::Uuid::now_v7();
    let (status, problem) = dir
        .admin("GET", &format!("/members?group={elsewhere}"), None)
        .await;
    assert_eq!(status, 422, "{problem}");
    dir.app.finish().await;
}

#[actix_web::test]
async fn concurrent_adds_of_one_email_make_one_member() {
    let dir = Directory::new().await;
    let attempts = futures::future::join_all((0..8).map(|i| {
        let email = if i % 2 == 0 {
            "Same@Example.com"
        } else {
            "same@example.com"
        };
        dir.add_member(json!({ "email": email }))
    }))
    .await;
    let created = attempts.iter().filter(|(status, _)| *status == 201).count();
    let conflicts = attempts.iter().filter(|(status, _)| *status == 409).count();
    assert_eq!((created, conflicts), (1, 7), "{attempts:?}");
    dir.app.finish().await;
}

#[actix_web::test]
async fn previews_answer_a_page_at_a_time_with_one_confirmation() {
    let dir = Directory::new().await;
    for i in 0..5 {
        dir.user(&format!("u{i}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut confirmations = Vec::new();
    loop {
        let query = match &cursor {
            Some(c) => format!("/provisioning/preview?limit=2&cursor={c}"),
            None => "/provisioning/preview?limit=2".to_owned(),
        };
        let (status, page) = dir
            .admin("POST", &query, Some(json!({"mode": "scim"})))
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["counts"]["adds"], 5);
        confirmations.push(page["confirmation"].clone());
        let adds = page["changes"]["adds"].as_array().unwrap();
        assert!(adds.len() <= 2);
        seen.extend(
            adds.iter()
                .map(|a| a["member"]["email"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "every add once: {seen:?}");
    assert!(confirmations.windows(2).all(|w| w[0] == w[1]));
    let (status, _) = dir
        .admin(
            "POST",
            "/provisioning/preview?limit=100000",
            Some(json!({"mode": "scim"})),
        )
        .await;
    assert_eq!(status, 422, "a page larger than limits.preview_page");
    dir.app.finish().await;
}

#[test]
fn deploy_files_ship_no_usable_secret() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let compose = std::fs::read_to_string(deploy.join("compose.yaml")).unwrap();
    assert!(
        compose.contains("${ORGSYNC_JWT_SECRET:?"),
        "compose must require the operator's secret"
    );
    let example = std::fs::read_to_string(deploy.join("k8s/secret.example.yaml")).unwrap();
    for line in compose.lines().chain(example.lines()) {
        if let Some((_, value)) = line.split_once("JWT_SECRET:") {
            let value = value.split('#').next().unwrap().trim().trim_matches('"');
            assert!(
                value.is_empty() || value.starts_with("${"),
                "a literal secret ships in deploy/: {line}"
            );
        }
    }
}

/// Odd but well-formed HTTP: every answer is a 4xx (or success) with a valid
/// JSON body, never a 5xx.
#[actix_web::test]
async fn malformed_scim_queries_and_bodies_get_clear_client_errors() {
    let dir = Directory::new().await;
    let user = dir.user("ada@example.com").await;
    let nested = format!(
        "{}userName%20eq%20%22x%22{}",
        "%28".repeat(40),
        "%29".repeat(40)
    );
    let queries = [
        "/Users?startIndex=99999999999999999999".to_owned(),
        "/Users?startIndex=-5&count=-3".to_owned(),
        "/Users?count=99999999999".to_owned(),
        "/Users?startIndex=9223372036854775807&count=1000".to_owned(),
        "/Users?sortBy=%00&sortOrder=sideways".to_owned(),
        format!("/Users?filter={nested}"),
        "/Users?filter=meta.created%20gt%20%22not-a-date%22".to_owned(),
        "/Users?filter=userName%20gt%201e999".to_owned(),
        "/Users?filter=active%20eq%20%22yes%22".to_owned(),
        "/Users?attributes=%5B%5B%5B&excludedAttributes=....".to_owned(),
        "/Users/not-a-uuid".to_owned(),
        "/Groups?filter=members%5Bvalue%20eq%20%22x%22%5D".to_owned(),
    ];
    for query in &queries {
        let (status, body) = dir.scim("GET", query, None).await;
        assert!((200..500).contains(&status), "{query}: {status} {body}");
        assert!(body.is_object(), "{query}: not JSON: {body}");
    }
    let bodies = [
        ("PUT", format!("/Users/{user}"), json!([1, 2, 3])),
        ("PUT", format!("/Users/{user}"), json!({"userName": ["x"]})),
        (
            "POST",
            "/Users".to_owned(),
            json!({"userName": "z".repeat(100_000)}),
        ),
        ("POST", "/Users".to_owned(), json!({"userName": "\u{0}"})),
        (
            "PATCH",
            format!("/Users/{user}"),
            patch(
                json!([{"op": "replace", "path": "emails[type eq \"work\"].value.x.y", "value": "a"}]),
            ),
        ),
        (
            "PATCH",
            format!("/Users/{user}"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": "x"}),
        ),
        (
            "POST",
            "/Groups".to_owned(),
            json!({"displayName": "g", "members": [{"value": 1}]}),
        ),
    ];
    for (method, path, body) in bodies {
        let (status, answer) = dir.scim(method, &path, Some(body)).await;
        assert!(
            (200..500).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        assert!(answer.is_object(), "{method} {path}: not JSON: {answer}");
    }
    dir.app.finish().await;
}

/// PostgreSQL text cannot hold NUL: admin input carrying one is refused, never a 500.
#[actix_web::test]
async fn nul_characters_in_admin_input_are_refused() {
    let dir = Directory::new().await;
    let cases = [
        (
            "POST",
            "/members",
            json!({"email": "eve@example.com", "name": "E\u{0}ve"}),
        ),
        (
            "POST",
            "/members",
            json!({"email": "eve2@example.com", "public_metadata": {"k\u{0}": "v"}}),
        ),
        (
            "POST",
            "/members",
            json!({"email": "eve3@example.com", "public_metadata": {"k": "v\u{0}"}}),
        ),
        ("POST", "/children", json!({"name": "N\u{0}", "slug": "n"})),
        ("POST", "/connections", json!({"name": "C\u{0}"})),
        (
            "PUT",
            "/roles",
            json!({"roles": [{"name": "r\u{0}", "capabilities": []}]}),
        ),
        ("PUT", "/seat-tiers", json!({"seat_tiers": ["t\u{0}"]})),
        ("GET", "/audit-log?action=a%00", Value::Null),
        ("GET", "/members?role=a%00", Value::Null),
    ];
    for (method, rest, body) in cases {
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = dir.admin(method, rest, body).await;
        assert!(
            (200..500).contains(&status),
            "{method} {rest}: {status} {answer}"
        );
    }
    dir.app.finish().await;
}

/// What an admin writes onto a member or into an org's lists travels with
/// every plan, list page, audit entry, event and webhook: it is bounded, and
/// what goes over is refused by name with nothing changed.
#[actix_web::test]
async fn member_names_metadata_and_an_orgs_lists_are_bounded() {
    let dir = Directory::new().await;
    let (status, answer) = dir
        .add_member(json!({"email": "ann@example.com", "name": "a".repeat(201)}))
        .await;
    assert_eq!(status, 422, "{answer}");
    let (status, member) = dir
        .add_member(json!({"email": "ann@example.com", "name": " Ann "}))
        .await;
    assert_eq!(status, 201, "{member}");
    assert_eq!(member["name"], "Ann", "trimmed");
    let id = member["id"].as_str().unwrap().to_owned();

    // 10 KiB at a time: the first fits 16 KiB, the second would not.
    let chunk = |key: &str| json!({"public_metadata": {key: "x".repeat(10 * 1024)}});
    let (status, answer) = dir
        .admin("PATCH", &format!("/members/{id}"), Some(chunk("a")))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, problem) = dir
        .admin("PATCH", &format!("/members/{id}"), Some(chunk("b")))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem.to_string().contains("limits.member_metadata_bytes"),
        "{problem}"
    );
    let (_, stored) = dir.admin("GET", &format!("/members/{id}"), None).await;
    assert!(
        stored["public_metadata"].get("b").is_none(),
        "nothing changed: {stored}"
    );
    // Taking a key away is always allowed.
    let (status, answer) = dir
        .admin(
            "PATCH",
            &format!("/members/{id}"),
            Some(json!({"public_metadata": {"a": null}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    let tiers: Vec<String> = (0..101).map(|i| format!("tier{i}")).collect();
    let (status, problem) = dir
        .admin("PUT", "/seat-tiers", Some(json!({"seat_tiers": tiers})))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem.to_string().contains("limits.catalog_entries"),
        "{problem}"
    );
    let capabilities: Vec<String> = (0..101).map(|i| format!("cap{i}")).collect();
    let roles = json!({"roles": [{"name": "auditor", "capabilities": capabilities}]});
    let (status, problem) = dir.admin("PUT", "/roles", Some(roles)).await;
    assert_eq!(status, 422, "{problem}");
    let (status, roles) = dir.admin("GET", "/roles", None).await;
    assert_eq!(status, 200);
    assert!(
        !roles.to_string().contains("auditor"),
        "nothing saved: {roles}"
    );
    dir.app.finish().await;
}

/// A sync's defaults are its widest reach (both scopes, every org below,
/// sandboxes too): a body that says something else but cannot be read must
/// be refused, never taken for no body at all.
#[actix_web::test]
async fn a_sync_request_it_cannot_read_starts_nothing() {
    let dir = Directory::new().await;
    let token = dir.app.tokens.platform();
    let unreadable = [
        ("application/json", r#"{"scope": "everything"}"#, 422),
        ("application/json", r#"{"cascde": false}"#, 422),
        ("application/json", r#"{"cascade": "no"}"#, 422),
        ("application/json", r#"{"scope": "members""#, 400),
        // What `curl -d` sends when no content type is given.
        (
            "application/x-www-form-urlencoded",
            r#"{"cascade": false}"#,
            400,
        ),
    ];
    for rest in ["/syncs", "/syncs/preview"] {
        for (content_type, body, refused) in unreadable {
            let path = format!("/api/v1/orgs/{}{rest}", dir.org);
            let response = dir
                .app
                .send(
                    request("POST", &path, Some(&token), None)
                        .insert_header(("content-type", content_type))
                        .set_payload(body),
                )
                .await;
            assert_eq!(response.status(), refused, "{rest} {content_type} {body}");
            let problem = response.headers().get("content-type").unwrap();
            assert_eq!(problem, "application/problem+json", "{rest} {body}");
        }
    }
    let runs = dir.get("/syncs").await;
    assert_eq!(runs["data"], json!([]), "nothing was started: {runs}");

    // No body, or an empty one, still asks for the defaults.
    let (status, run) = dir.admin("POST", "/syncs", None).await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["scope"], "both", "{run}");
    let path = format!("/api/v1/orgs/{}/syncs/preview", dir.org);
    let empty = request("POST", &path, Some(&token), None)
        .insert_header(("content-type", "application/json"))
        .set_payload("");
    assert_eq!(dir.app.send(empty).await.status(), 200);
    dir.app.finish().await;
}

/// A group-mapping save with a field it does not know (a misspelt
/// `seat_tier`) is refused naming it; saved without it, the org would lose
/// its tier mappings and every member's tier with them.
#[actix_web::test]
async fn a_mapping_save_with_a_field_it_does_not_know_changes_nothing() {
    let dir = Directory::new().await;
    let (status, answer) = dir
        .admin("PUT", "/seat-tiers", Some(json!({"seat_tiers": ["gold"]})))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (_, staff) = dir.user_in_group("ann@example.com", "Staff").await;
    let mappings = json!({
        "enabled": true,
        "roles": [{"group": staff, "role": "admin"}],
        "seat_tiers": [{"group": staff, "tier": "gold"}],
    });
    switch_to_scim(&dir, &dir.org).await;
    put_confirmed(&dir, &dir.org, "/group-mappings", mappings.clone()).await;
    let misspelt = json!({
        "enabled": true,
        "roles": [{"group": staff, "role": "admin"}],
        "seat_tier": [{"group": staff, "tier": "gold"}],
    });
    for (method, path) in [
        ("POST", "/group-mappings/preview"),
        ("PUT", "/group-mappings"),
    ] {
        let (status, problem) = dir.admin(method, path, Some(misspelt.clone())).await;
        assert_eq!(status, 422, "{path}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("seat_tier"), "{path}: {problem}");
    }
    let saved = dir.get("/group-mappings").await;
    assert_eq!(saved["seat_tiers"], mappings["seat_tiers"], "{saved}");
    let members = dir.get("/members").await;
    assert_eq!(members["data"][0]["seat_tier"], "gold", "{members}");
    dir.app.finish().await;
}

/// The 5xx answers of a race that sent `per` requests for each of
/// `labels`, in order, each named by its label.
fn server_errors(
    labels: impl Iterator<Item = String>,
    answers: &[(u16, Value)],
    per: usize,
) -> Vec<String> {
    labels
        .zip(answers.chunks(per))
        .flat_map(|(label, answers)| {
            answers
                .iter()
                .filter(|(status, _)| *status >= 500)
                .map(move |(status, body)| format!("{label}: {status} {body}"))
        })
        .collect()
}

/// The same settings saved many times at once, the first save of each (the
/// one that creates its row) among them: each request is answered without
/// a 5xx, and the settings read back as saved.
#[actix_web::test]
async fn settings_saved_many_times_at_once_are_answered_without_a_5xx() {
    use crate::support::Timed;
    let dir = Directory::new().await;
    let org = format!("/api/v1/orgs/{}", dir.org);
    let conn = format!("{org}/connections/{}", dir.conn);
    let department = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department";
    let saves = [
        (
            format!("{org}/roles"),
            json!({"roles": [{"name": "auditor", "capabilities": ["audit:read"]}]}),
        ),
        (
            format!("{org}/seat-tiers"),
            json!({"seat_tiers": ["standard", "pro"]}),
        ),
        (
            format!("{conn}/attributes"),
            json!({"attributes": [{"key": "department", "scim_path": department}]}),
        ),
        (
            format!("{org}/deletion-protection"),
            json!({"max_removals": 25}),
        ),
        (
            format!("{org}/provisioning/jit"),
            json!({"default_role": "user"}),
        ),
        (format!("{org}/group-mappings"), json!({"enabled": false})),
        (format!("{org}/provisioning"), json!({"mode": "jit"})),
    ];
    let requests = saves
        .iter()
        .flat_map(|(path, body)| {
            (0..6).map(|i| Timed::at(i % 3, "PUT", path.clone(), Some(body.clone())))
        })
        .collect();
    let answers = dir.app.race(requests).await;
    let labels = saves.iter().map(|(path, _)| format!("PUT {path}"));
    let failed = server_errors(labels, &answers, 6);
    assert!(failed.is_empty(), "{failed:#?}");
    for (path, _) in &saves {
        let (status, _) = dir
            .app
            .call("GET", path, Some(&dir.app.tokens.platform()), None)
            .await;
        assert_eq!(status, 200, "GET {path}");
    }
    let protection = dir.get("/deletion-protection").await;
    assert_eq!(protection["max_removals"], 25, "{protection}");
    dir.app.finish().await;
}

/// The same creation or deletion sent many times at once (an admin's
/// double click, a retrying client): each answered without a 5xx, the
/// unique ones created once.
#[actix_web::test]
async fn creations_and_deletions_repeated_at_once_are_answered_without_a_5xx() {
    use crate::support::Timed;
    let dir = Directory::new().await;
    let org = format!("/api/v1/orgs/{}", dir.org);
    let (_, member) = dir.add_member(json!({"email": "ada@example.com"})).await;
    let member = format!("{org}/members/{}", member["id"].as_str().unwrap());
    let (_, hook) = dir
        .admin(
            "POST",
            "/webhooks",
            Some(json!({"url": "https://hooks.example.com/a"})),
        )
        .await;
    let hook = format!("{org}/webhooks/{}", hook["id"].as_str().unwrap());
    let (_, spare) = dir
        .admin("POST", "/connections", Some(json!({"name": "Spare"})))
        .await;
    let spare = format!("{org}/connections/{}", spare["id"].as_str().unwrap());
    let repeated = [
        (
            "POST",
            format!("{org}/children"),
            Some(json!({"name": "Lab", "slug": "lab"})),
        ),
        (
            "POST",
            format!("{org}/connections"),
            Some(json!({"name": "Entra"})),
        ),
        (
            "PUT",
            format!("{spare}/directory-sync"),
            Some(json!({"enabled": true})),
        ),
        ("POST", format!("{spare}/directory-sync/token"), None),
        ("DELETE", member.clone(), None),
        ("DELETE", hook, None),
    ];
    let requests = repeated
        .iter()
        .flat_map(|(method, path, body)| {
            (0..6).map(|i| Timed::at(i % 2, method, path.clone(), body.clone()))
        })
        .collect();
    let answers = dir.app.race(requests).await;
    let labels = repeated
        .iter()
        .map(|(method, path, _)| format!("{method} {path}"));
    let failed = server_errors(labels, &answers, 6);
    assert!(failed.is_empty(), "{failed:#?}");
    let created = |chunk: &[(u16, Value)]| chunk.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created(&answers[0..6]), 1, "one child of a slug");
    let (status, _) = dir
        .app
        .call("GET", &member, Some(&dir.app.tokens.platform()), None)
        .await;
    assert_eq!(status, 404);
    dir.app.finish().await;
}

/// A tenant's runaway script spends its own admin budget, not the process:
/// past its burst it is told when to come back (429, `Retry-After`, a
/// problem document), while another tenant's admins and the platform
/// operator are served.
#[actix_web::test]
async fn one_orgs_admin_tokens_have_a_request_budget_and_others_keep_theirs() {
    use orgsync_domain::auth::AdminRole;

    let app = crate::support::TestApp::spawn_with(|s| s.limits.admin_requests_per_second = 1).await;
    let busy = create_root(&app, "Busy", "busy").await;
    let quiet = create_root(&app, "Quiet", "quiet").await;
    let token_of = |org: &str| {
        let id = uuid::Uuid::parse_str(org).unwrap();
        app.tokens.org(id, AdminRole::Admin)
    };
    let (busy_token, quiet_token) = (token_of(&busy), token_of(&quiet));
    for _ in 0..2 {
        let (status, org) = app.admin_as(&busy_token, "GET", &busy, "", None).await;
        assert_eq!(status, 200, "the burst: {org}");
    }
    let refused = app
        .send(request(
            "GET",
            &format!("/api/v1/orgs/{busy}"),
            Some(&busy_token),
            None,
        ))
        .await;
    assert_eq!(refused.status().as_u16(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let problem = crate::support::parse(&actix_web::test::read_body(refused).await);
    assert_eq!(
        problem["type"], "https://orgsync.dev/problems/too-many-requests",
        "{problem}"
    );
    let (status, _) = app.admin_as(&quiet_token, "GET", &quiet, "", None).await;
    assert_eq!(status, 200, "another tenant's admins are served");
    for _ in 0..5 {
        let (status, _) = app.admin("GET", &busy, "", None).await;
        assert_eq!(status, 200, "the platform operator is not limited");
    }
    app.finish().await;
}
