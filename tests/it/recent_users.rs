//! A PATCH starts from the user as this process last saw it, to save a read.
//! Two processes on one database prove that this memory never decides an
//! answer: whatever the other process wrote meanwhile is kept, If-Match is
//! judged on the stored version, and an operation on what only the stored
//! user has still finds it.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test;
use orgsync_api::runtime::Runtime;
use serde_json::{json, Value};

use crate::fixtures::{add, replace};
use crate::scim::{patch, Directory};
use crate::support::{parse, settings};

/// The same SCIM directory, served by a second process.
struct Elsewhere {
    conn: String,
    token: String,
    runtime: Runtime,
}

impl Elsewhere {
    async fn start(dir: &Directory) -> Self {
        let runtime = Runtime::start(settings(&dir.app.db.url)).await.unwrap();
        Self {
            conn: dir.conn.clone(),
            token: dir.token.clone(),
            runtime,
        }
    }

    async fn patch(&self, path: &str, ops: Value) -> (u16, Value) {
        let app = test::init_service(orgsync_api::http::app(self.runtime.state.clone())).await;
        let request = patch_request(&self.conn, &self.token, path, ops, None).to_request();
        answer(test::call_service(&app, request).await).await
    }
}

/// A directory holding one user, `user_name`, which this process created
/// (and so remembers at version 1), a second process serving the same
/// directory, and the user's SCIM path.
async fn user_seen_by_two_processes(user_name: &str) -> (Directory, Elsewhere, String) {
    let dir = Directory::new().await;
    let elsewhere = Elsewhere::start(&dir).await;
    let id = dir.user(user_name).await;
    (dir, elsewhere, format!("/Users/{id}"))
}

/// A SCIM PATCH of `path` on connection `conn`, with `if_match` when given.
fn patch_request(
    conn: &str,
    token: &str,
    path: &str,
    ops: Value,
    if_match: Option<&str>,
) -> test::TestRequest {
    let request = test::TestRequest::patch()
        .uri(&format!("/scim/v2/{conn}{path}"))
        .insert_header(("authorization", format!("Bearer {token}")))
        .set_json(patch(ops));
    match if_match {
        Some(version) => request.insert_header(("if-match", version)),
        None => request,
    }
}

/// A PATCH through this process with `If-Match: version`.
async fn patch_if_match(dir: &Directory, path: &str, ops: Value, version: &str) -> (u16, Value) {
    let request = patch_request(&dir.conn, &dir.token, path, ops, Some(version));
    answer(dir.app.send(request).await).await
}

async fn answer(response: ServiceResponse<impl MessageBody>) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, parse(&test::read_body(response).await))
}

#[actix_web::test]
async fn a_patch_keeps_what_another_process_wrote_since_this_one_last_saw_the_user() {
    let (dir, elsewhere, path) = user_seen_by_two_processes("dana@example.com").await;

    // This process remembers version 1 (it created the user); the other writes version 2.
    let (status, user) = elsewhere.patch(&path, add("title", "Engineer")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["meta"]["version"], "W/\"2\"");

    // A PATCH here must apply on top of version 2, not on the remembered version 1.
    let (status, user) = dir.scim_patch(&path, replace("displayName", "Dana")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(
        user["title"], "Engineer",
        "the other process's change was lost"
    );
    assert_eq!(user["displayName"], "Dana");
    assert_eq!(user["meta"]["version"], "W/\"3\"");

    // Back and forth, each side remembering a version the other has moved past.
    for round in 0..4 {
        let (status, _) = elsewhere
            .patch(&path, replace("nickName", format!("n{round}")))
            .await;
        assert_eq!(status, 200);
        let (status, user) = dir
            .scim_patch(&path, replace("profileUrl", format!("https://p/{round}")))
            .await;
        assert_eq!(status, 200, "{user}");
        assert_eq!(user["nickName"], format!("n{round}"));
    }
    let stored = dir.scim_get(&path).await;
    assert_eq!(stored["meta"]["version"], "W/\"11\"");
    assert_eq!(stored["title"], "Engineer");
    assert_eq!(stored["displayName"], "Dana");
    assert_eq!(stored["nickName"], "n3");
    assert_eq!(stored["profileUrl"], "https://p/3");
    dir.app.finish().await;
}

#[actix_web::test]
async fn if_match_is_judged_on_the_stored_version_not_the_remembered_one() {
    let (dir, elsewhere, path) = user_seen_by_two_processes("erin@example.com").await;
    let (status, _) = elsewhere.patch(&path, replace("displayName", "E")).await;
    assert_eq!(status, 200);

    // This process remembers version 1, the store holds 2.
    let rename = replace("displayName", "Erin");
    let (status, error) = patch_if_match(&dir, &path, rename.clone(), "W/\"1\"").await;
    assert_eq!(status, 412, "a stale If-Match must fail: {error}");
    let (status, user) = patch_if_match(&dir, &path, rename, "W/\"2\"").await;
    assert_eq!(status, 200, "the current version must pass: {user}");
    assert_eq!(user["meta"]["version"], "W/\"3\"");
    dir.app.finish().await;
}

#[actix_web::test]
async fn an_operation_on_what_only_the_stored_user_has_finds_it() {
    let (dir, elsewhere, path) = user_seen_by_two_processes("finn@example.com").await;
    let phone = json!([{"value": "+1 555 0100", "type": "work"}]);
    let (status, _) = elsewhere.patch(&path, add("phoneNumbers", phone)).await;
    assert_eq!(status, 200);

    // The remembered version 1 has no phone numbers: an operation that
    // needs one (a filter no new element can be made from) must find the
    // stored one, not answer noTarget.
    let work_phone_type = "phoneNumbers[value co \"0100\"].type";
    let (status, user) = dir
        .scim_patch(&path, replace(work_phone_type, "mobile"))
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["phoneNumbers"][0]["type"], "mobile");
    assert_eq!(user["meta"]["version"], "W/\"3\"");

    // This process remembers title "Lead" (version 4); the other process
    // changes it. Setting "Lead" again changes nothing in the remembered
    // user but does in the stored one, so it must be written.
    let lead = replace("title", "Lead");
    let (status, _) = dir.scim_patch(&path, lead.clone()).await;
    assert_eq!(status, 200);
    let (status, _) = elsewhere.patch(&path, replace("title", "Manager")).await;
    assert_eq!(status, 200);
    let (status, user) = dir.scim_patch(&path, lead.clone()).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["title"], "Lead");
    assert_eq!(user["meta"]["version"], "W/\"6\"");
    let stored = dir.scim_get(&path).await;
    assert_eq!(stored["title"], "Lead");

    // And a PATCH that changes nothing in the stored user answers with it.
    let (status, _) = elsewhere.patch(&path, replace("nickName", "F")).await;
    assert_eq!(status, 200);
    let (status, user) = dir.scim_patch(&path, lead).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["nickName"], "F", "a no-op answers the stored user");
    assert_eq!(user["meta"]["version"], "W/\"7\"");
    dir.app.finish().await;
}

/// On SQLite the groups come from a second look-up after the write; the
/// answers of a PATCH and of a PUT carry them all the same.
#[actix_web::test]
async fn on_sqlite_patch_and_put_answer_with_the_users_groups() {
    use reqwest::Method;

    let embedded = crate::support::EmbeddedDirectory::start().await;
    let scim = |method: Method, path: String, body: Value| {
        let embedded = &embedded;
        async move { embedded.scim(method, &path, body).await }
    };

    let (status, user) = scim(
        Method::POST,
        "/Users".into(),
        json!({"userName": "gus@example.com", "active": true}),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    let (status, group) = scim(
        Method::POST,
        "/Groups".into(),
        json!({"displayName": "Engineering", "members": [{"value": id}]}),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let engineering = json!([{"value": group["id"], "display": "Engineering"}]);
    let groups_of = |user: &Value| {
        json!(user["groups"].as_array().map(|groups| groups
            .iter()
            .map(|g| json!({"value": g["value"], "display": g["display"]}))
            .collect::<Vec<_>>()))
    };

    // Each PATCH starts from the user this process wrote last.
    for title in ["Engineer", "Lead"] {
        let (status, patched) = scim(
            Method::PATCH,
            format!("/Users/{id}"),
            patch(json!([{"op": "replace", "path": "title", "value": title}])),
        )
        .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["title"], title);
        assert_eq!(groups_of(&patched), engineering, "{patched}");
    }
    let (status, replaced) = scim(
        Method::PUT,
        format!("/Users/{id}"),
        json!({"userName": "gus@example.com", "active": false}),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["active"], false);
    assert_eq!(groups_of(&replaced), engineering, "{replaced}");
}
