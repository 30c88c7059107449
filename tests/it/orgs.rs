//! The organization tree through the admin API, in process, on PostgreSQL.

use orgsync_domain::auth::AdminRole;
use serde_json::{json, Value};

use crate::fixtures;
use crate::support::{TestApp, Timed};

/// A tenant whose name is its slug; its id.
async fn create_root(app: &TestApp, slug: &str) -> String {
    fixtures::create_root(app, slug, slug).await
}

/// An app of its own holding one tenant, `slug`: the app and the tenant's id.
async fn tenant(slug: &str) -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let root = create_root(&app, slug).await;
    (app, root)
}

async fn create_child(
    app: &TestApp,
    token: &str,
    parent: &str,
    slug: &str,
    kind: &str,
) -> (u16, Value) {
    let child = json!({"name": format!("Org {slug}"), "slug": slug, "kind": kind});
    fixtures::create_child(app, token, parent, child).await
}

/// Asks, with `token`, for a tenant as `root` describes it: the answer.
async fn post_root(app: &TestApp, token: &str, root: Value) -> (u16, Value) {
    app.call("POST", "/api/v1/orgs", Some(token), Some(root))
        .await
}

/// A standard child `slug` of `parent`, which must be created; its id.
async fn standard_child(app: &TestApp, parent: &str, slug: &str) -> String {
    let (status, child) = create_child(app, &app.tokens.platform(), parent, slug, "standard").await;
    assert_eq!(status, 201, "{child}");
    child["id"].as_str().unwrap().to_owned()
}

/// `method` (without a body) on the org itself, with `token`: the answer.
async fn on_org(app: &TestApp, method: &str, org: &str, token: &str) -> (u16, Value) {
    let path = format!("/api/v1/orgs/{org}");
    app.call(method, &path, Some(token), None).await
}

#[actix_web::test]
async fn a_tenant_grows_children_and_sandboxes_and_reads_back_as_a_tree() {
    let (app, root) = tenant("acme").await;
    let owner = app.tokens.org(root.parse().unwrap(), AdminRole::Owner);

    let (status, eu) = create_child(&app, &owner, &root, "acme-eu", "standard").await;
    assert_eq!(status, 201, "{eu}");
    assert_eq!(eu["parent_id"], root.as_str());
    assert_eq!(eu["tenant_id"], root.as_str());
    assert_eq!(eu["provisioning_mode"], "manual");
    let eu_id = eu["id"].as_str().unwrap();
    let (status, sandbox) = create_child(&app, &owner, eu_id, "acme-eu-test", "sandbox").await;
    assert_eq!(status, 201, "{sandbox}");
    assert_eq!(sandbox["kind"], "sandbox");

    let (status, tree) = app.admin_as(&owner, "GET", &root, "/tree", None).await;
    assert_eq!(status, 200);
    assert_eq!(tree["slug"], "acme");
    assert_eq!(tree["children"][0]["slug"], "acme-eu");
    assert_eq!(tree["children"][0]["children"][0]["slug"], "acme-eu-test");
    assert_eq!(tree["children"][0]["children"][0]["children"], json!([]));
    app.finish().await;
}

#[actix_web::test]
async fn children_are_listed_oldest_first_with_a_cursor() {
    let (app, root) = tenant("pager").await;
    let token = app.tokens.platform();
    for i in 0..5 {
        let (status, _) =
            create_child(&app, &token, &root, &format!("child-{i}"), "standard").await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/orgs/{root}/children?limit=2");
    loop {
        let (status, page) = app.call("GET", &path, Some(&token), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["data"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|o| o["slug"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/orgs/{root}/children?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["child-0", "child-1", "child-2", "child-3", "child-4"]
    );

    let (status, problem) = app
        .admin("GET", &root, "/children?cursor=%21%21", None)
        .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = app.admin("GET", &root, "/children?limit=0", None).await;
    assert_eq!(status, 422);
    app.finish().await;
}

#[actix_web::test]
async fn slugs_are_validated_and_unique_within_a_tenant() {
    let app = TestApp::spawn().await;
    let token = app.tokens.platform();
    let a = create_root(&app, "tenant-a").await;
    let b = create_root(&app, "tenant-b").await;

    let (status, problem) = create_child(&app, &token, &a, "Not A Slug", "standard").await;
    assert_eq!(status, 422);
    assert_eq!(problem["type"], "https://orgsync.dev/problems/validation");
    assert_eq!(problem["invalid_params"][0]["name"], "slug");

    assert_eq!(
        create_child(&app, &token, &a, "shared", "standard").await.0,
        201
    );
    let (status, problem) = create_child(&app, &token, &a, "shared", "sandbox").await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "https://orgsync.dev/problems/already-exists"
    );
    // Another tenant may use the same slug.
    assert_eq!(
        create_child(&app, &token, &b, "shared", "standard").await.0,
        201
    );
    // Among the roots, slugs are unique too.
    let (status, _) = post_root(&app, &token, json!({"name": "again", "slug": "tenant-a"})).await;
    assert_eq!(status, 409);
    let sandbox = json!({"name": "x", "slug": "sbx", "kind": "sandbox"});
    let (status, _) = post_root(&app, &token, sandbox).await;
    assert_eq!(status, 422, "a root cannot be a sandbox");
    let (status, _) = create_child(&app, &token, &a, "weird-kind", "galaxy").await;
    assert_eq!(status, 422);
    app.finish().await;
}

#[actix_web::test]
async fn an_org_with_children_cannot_be_deleted_and_a_leaf_can() {
    let (app, root) = tenant("deleter").await;
    let token = app.tokens.platform();
    let child = &standard_child(&app, &root, "leaf").await;

    let (status, problem) = on_org(&app, "DELETE", &root, &token).await;
    assert_eq!(status, 409);
    assert_eq!(problem["type"], "https://orgsync.dev/problems/has-children");
    assert_eq!(on_org(&app, "GET", &root, &token).await.0, 200);

    assert_eq!(on_org(&app, "DELETE", child, &token).await.0, 204);
    assert_eq!(on_org(&app, "GET", child, &token).await.0, 404);
    assert_eq!(on_org(&app, "DELETE", &root, &token).await.0, 204);
    app.finish().await;
}

/// Deleting an org removes its members, so it goes through the same gate
/// as every removal: refused with what it would do until the request
/// carries the confirmation of exactly that, which a member joining since
/// makes stale.
#[actix_web::test]
async fn deleting_an_org_with_members_needs_the_confirmation_of_its_preview() {
    let (app, root) = tenant("gated").await;
    let token = app.tokens.platform();
    let child = &standard_child(&app, &root, "gated-lab").await;
    let join =
        |email: &'static str| app.admin("POST", child, "/members", Some(json!({ "email": email })));
    for email in ["ada@example.com", "grace@example.com"] {
        assert_eq!(join(email).await.0, 201);
    }
    let members = || async {
        let (_, page) = app.admin("GET", child, "/members", None).await;
        page["data"].as_array().map_or(0, Vec::len)
    };

    let (status, problem) = on_org(&app, "DELETE", child, &token).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(
        problem["type"],
        "https://orgsync.dev/problems/confirmation-required"
    );
    assert_eq!(problem["effects"][0]["counts"]["removals"], 2, "{problem}");
    assert_eq!(
        problem["effects"][0]["removals"][0]["email"],
        "ada@example.com"
    );
    let refused = problem["confirmation"].as_str().unwrap().to_owned();
    assert_eq!(members().await, 2, "nothing removed");

    let (status, preview) = app.admin("GET", child, "/deletion-preview", None).await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["confirmation"], refused.as_str());
    assert_eq!(preview["counts"]["removals"], 2);
    assert_eq!(
        preview["changes"]["removals"][1]["reason"],
        json!({"kind": "org_deleted"}),
        "{preview}"
    );

    for query in ["?confirm=not-the-token", "?confirmed=yes"] {
        let (status, body) = app.admin("DELETE", child, query, None).await;
        assert!(matches!(status, 400 | 409), "{query}: {status} {body}");
    }
    assert_eq!(join("linus@example.com").await.0, 201);
    let stale = format!("?confirm={refused}");
    let (status, problem) = app.admin("DELETE", child, &stale, None).await;
    assert_eq!(status, 409, "a preview from before someone joined");
    assert_eq!(problem["effects"][0]["counts"]["removals"], 3);
    assert_eq!(members().await, 3);

    let current = format!("?confirm={}", problem["confirmation"].as_str().unwrap());
    let (status, body) = app.admin("DELETE", child, &current, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(on_org(&app, "GET", child, &token).await.0, 404);
    let (_, log) = app.admin("GET", &root, "/audit-log", None).await;
    let entry = &log["data"][0];
    assert_eq!(entry["action"], "org.deleted", "{log}");
    assert_eq!(entry["before"]["members_removed"], 3);
    app.finish().await;
}

/// The store's own guard behind the gate: a member who joined after the
/// removals (a sign-in, an admin's add) stops the delete instead of going
/// with the org by the key's cascade.
#[actix_web::test]
async fn the_store_refuses_to_delete_an_org_that_still_has_members() {
    use orgsync_domain::error::ConflictCode;
    use orgsync_domain::ports::OrgRepository;
    let (app, root) = tenant("guarded").await;
    let member = json!({"email": "ada@example.com"});
    assert_eq!(app.add_member(&root, member).await.0, 201);
    let repo = orgsync_infra::SqlOrgRepository::new(app.runtime.db.clone());
    let org = orgsync_domain::org::OrgId(root.parse().unwrap());
    let refused = repo
        .delete_leaf(org, time::OffsetDateTime::now_utc())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            orgsync_domain::Error::Conflict {
                code: ConflictCode::HasMembers,
                ..
            }
        ),
        "{refused:?}"
    );
    let (status, page) = app.admin("GET", &root, "/members", None).await;
    assert_eq!(status, 200);
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    app.finish().await;
}

/// Writes racing an org's deletion (a second delete, members joining, a
/// mode switch, a webhook) each get a clear answer, never a 5xx, and no
/// member whose add succeeded disappears without a `member.removed` event.
#[actix_web::test]
async fn writes_racing_an_orgs_deletion_get_clear_answers_and_lose_no_one() {
    const JOINS: u64 = 10;
    let (app, root) = tenant("racing").await;
    let token = app.tokens.platform();
    for round in 0..8u64 {
        let (_, child) =
            create_child(&app, &token, &root, &format!("race-{round}"), "standard").await;
        let org = format!("/api/v1/orgs/{}", child["id"].as_str().unwrap());
        // Members join from before the delete's plan to after its commit.
        let mut requests: Vec<Timed> = (0..JOINS)
            .map(|i| {
                let member = json!({ "email": format!("p{i}-{round}@example.com") });
                Timed::at(
                    round * 2 + i * 5,
                    "POST",
                    format!("{org}/members"),
                    Some(member),
                )
            })
            .collect();
        requests.extend([
            Timed::at(0, "DELETE", org.clone(), None),
            Timed::at(round, "DELETE", org.clone(), None),
            Timed::at(
                3 * round,
                "PUT",
                format!("{org}/provisioning"),
                Some(json!({"mode": "jit"})),
            ),
            Timed::at(
                round,
                "POST",
                format!("{org}/webhooks"),
                Some(json!({"url": "https://hooks.example.com/orgsync"})),
            ),
        ]);
        let answers = app.race(requests).await;
        for (status, body) in &answers {
            assert!(*status < 500, "round {round}: {status} {body}");
        }
        let (status, _) = app.call("GET", &org, Some(&token), None).await;
        if status == 200 {
            continue;
        }
        // The org is gone: whoever joined it left through the gate, recorded.
        let (_, events) = app
            .admin(
                "GET",
                &root,
                "/events?include_descendants=true&types=member.removed&limit=1000",
                None,
            )
            .await;
        let removed: Vec<&str> = events["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["data"]["id"].as_str())
            .collect();
        for (status, member) in &answers[..JOINS as usize] {
            if *status == 201 {
                let id = member["id"].as_str().unwrap();
                assert!(
                    removed.contains(&id),
                    "round {round}: {member} went silently"
                );
            }
        }
    }
    app.finish().await;
}

#[actix_web::test]
async fn renames_are_validated_and_bad_bodies_change_nothing() {
    let (app, root) = tenant("renamer").await;
    let token = app.tokens.platform();
    let path = format!("/api/v1/orgs/{root}");

    let rename = json!({"name": "  Renamed Inc "});
    let (status, org) = app.call("PATCH", &path, Some(&token), Some(rename)).await;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["name"], "Renamed Inc");
    assert_ne!(org["updated_at"], org["created_at"]);

    for bad in [
        json!({"name": ""}),
        json!({"slug": "nope"}),
        json!({"name": 42}),
    ] {
        let (status, problem) = app
            .call("PATCH", &path, Some(&token), Some(bad.clone()))
            .await;
        assert_eq!(status, 422, "{bad} → {problem}");
    }
    let (_, org) = app.call("GET", &path, Some(&token), None).await;
    assert_eq!(org["name"], "Renamed Inc");
    app.finish().await;
}

#[actix_web::test]
async fn roles_decide_what_a_token_may_do_within_its_reach() {
    let (app, root) = tenant("roles").await;
    let root_id = root.parse().unwrap();
    let member = app.tokens.org(root_id, AdminRole::Member);
    let admin = app.tokens.org(root_id, AdminRole::Admin);

    assert_eq!(on_org(&app, "GET", &root, &member).await.0, 200);
    let (status, problem) = create_child(&app, &member, &root, "nope", "standard").await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "https://orgsync.dev/problems/forbidden");

    let (status, child) = create_child(&app, &admin, &root, "yes", "standard").await;
    assert_eq!(status, 201);
    let (status, _) = on_org(&app, "DELETE", &root, &admin).await;
    assert_eq!(status, 403, "a token cannot delete its own org");
    let child = child["id"].as_str().unwrap();
    assert_eq!(on_org(&app, "DELETE", child, &admin).await.0, 204);

    let (status, _) = post_root(&app, &admin, json!({"name": "x", "slug": "x"})).await;
    assert_eq!(status, 403, "only the platform creates tenants");
    app.finish().await;
}

/// The member role reads and never writes: every write route under an org
/// refuses it before reading the request's body or the resources it names,
/// so a read-only token learns nothing from a write (not whether a body
/// would have been valid, nor whether a connection or member exists).
#[actix_web::test]
async fn the_member_role_is_refused_by_every_write_route_before_its_body_is_read() {
    let (app, root) = tenant("read-only").await;
    let member = app.tokens.org(root.parse().unwrap(), AdminRole::Member);
    let writes: Vec<_> = orgsync_api::http::route_docs()
        .into_iter()
        .filter(|route| route.method != "GET" && route.path.contains("/orgs/{org}"))
        .collect();
    assert!(writes.len() > 30, "{} write routes", writes.len());
    let mut answers = Vec::new();
    for route in &writes {
        // Every other id is one that exists nowhere, and the body is one no route accepts.
        let path = route
            .path
            .split('/')
            .map(|segment| match segment {
                "{org}" => root.clone(),
                s if s.starts_with('{') => uuid::Uuid::new_v4().to_string(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let body = json!({"not_a_field_of_any_route": true});
        let (status, problem) = app
            .call(route.method.as_str(), &path, Some(&member), Some(body))
            .await;
        answers.push((
            route.method.to_string(),
            route.path.clone(),
            status,
            problem,
        ));
    }
    let not_refused: Vec<_> = answers
        .iter()
        .filter(|(_, _, status, problem)| {
            *status != 403 || problem["type"] != "https://orgsync.dev/problems/forbidden"
        })
        .map(|(method, path, status, _)| format!("{method} {path} → {status}"))
        .collect();
    assert!(not_refused.is_empty(), "{not_refused:#?}");
    app.finish().await;
}

#[actix_web::test]
async fn malformed_requests_get_problem_json_not_plain_text() {
    let app = TestApp::spawn().await;
    let token = app.tokens.platform();
    let req = actix_web::test::TestRequest::post()
        .uri("/api/v1/orgs")
        .insert_header(("authorization", format!("Bearer {token}")))
        .insert_header(("content-type", "application/json"))
        .set_payload("{not json");
    let response = app.send(req).await;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    assert_eq!(
        app.call("GET", "/api/v1/orgs/not-a-uuid", Some(&token), None)
            .await
            .0,
        404
    );
    let (status, problem) = app.call("GET", "/no/such/route", None, None).await;
    assert_eq!(status, 404);
    assert_eq!(problem["status"], 404);
    app.finish().await;
}
