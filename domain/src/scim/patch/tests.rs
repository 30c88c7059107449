use serde_json::{json, Value};

use super::*;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn ops(value: Value) -> Vec<PatchOperation> {
    serde_json::from_value(value).unwrap()
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "2819c223",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "active": true,
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
        "meta": {"resourceType": "User"}
    })
}

fn patch(
    resource: &mut Value,
    kind: ResourceKind,
    operations: Value,
) -> Result<PatchOutcome, PatchError> {
    apply_patch(resource, &ops(operations), kind)
}

fn patched(operations: Value) -> Value {
    let mut u = user();
    patch(&mut u, ResourceKind::User, operations).unwrap();
    u
}

fn fails(operations: Value) -> PatchError {
    let mut u = user();
    let err = patch(&mut u, ResourceKind::User, operations).unwrap_err();
    assert_eq!(
        u,
        user(),
        "a failed patch must leave the resource untouched"
    );
    err
}

#[test]
fn op_names_are_case_insensitive_and_the_envelope_is_checked() {
    let req: PatchRequest = serde_json::from_value(json!({
        "schemas": [PATCH_OP_SCHEMA],
        "Operations": [{"op": "Add", "path": "title", "value": "x"}, {"op": "REPLACE", "value": {}}, {"op": "remove", "path": "title"}]
    }))
    .unwrap();
    let kinds: Vec<PatchOp> = req.operations.iter().map(|o| o.op).collect();
    assert_eq!(kinds, [PatchOp::Add, PatchOp::Replace, PatchOp::Remove]);
    assert!(req.validate().is_ok());
    let bad = PatchRequest {
        schemas: vec![],
        operations: req.operations,
    };
    assert_eq!(bad.validate().unwrap_err().scim_type(), "invalidSyntax");
    assert!(
        serde_json::from_value::<PatchRequest>(json!({"Operations": [{"op": "merge"}]})).is_err()
    );
}

#[test]
fn simple_attributes_are_added_replaced_and_removed() {
    let u = patched(json!([{"op": "add", "path": "title", "value": "Tour Guide"}]));
    assert_eq!(u["title"], "Tour Guide");
    let u = patched(json!([{"op": "replace", "path": "NAME.givenName", "value": "Babs"}]));
    assert_eq!(
        u["name"],
        json!({"givenName": "Babs", "familyName": "Jensen"})
    );
    let u = patched(
        json!([{"op": "remove", "path": "name.givenName"}, {"op": "remove", "path": "name.familyName"}]),
    );
    assert!(
        u.get("name").is_none(),
        "an emptied complex attribute goes away"
    );
    let u = patched(
        json!([{"op": "replace", "path": "name", "value": {"formatted": "Ms. Barbara J Jensen"}}]),
    );
    assert_eq!(
        u["name"]["givenName"], "Barbara",
        "replace keeps sub-attributes it does not name"
    );
}

#[test]
fn outcome_reports_whether_the_json_changed() {
    let mut u = user();
    let out = patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "replace", "path": "active", "value": true}]),
    )
    .unwrap();
    assert_eq!(out, PatchOutcome::default());
    let out = patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "replace", "path": "active", "value": false}]),
    )
    .unwrap();
    assert!(out.changed);
}

#[test]
fn path_less_values_may_use_paths_and_extension_objects_as_keys() {
    let u = patched(json!([{"op": "replace", "value": {
        "name.givenName": "Babs",
        "emails[type eq \"work\"].value": "babs@example.com",
        format!("{ENTERPRISE}:department"): "Sales",
        ENTERPRISE: {"costCenter": "4130", "manager": {"value": "m-1"}},
        "schemas": ["ignored"]
    }}]));
    assert_eq!(u["name"]["givenName"], "Babs");
    assert_eq!(u["emails"][0]["value"], "babs@example.com");
    assert_eq!(
        u[ENTERPRISE],
        json!({"department": "Sales", "costCenter": "4130", "manager": {"value": "m-1"}})
    );
    assert_eq!(
        u["schemas"][1], ENTERPRISE,
        "a new extension is listed in schemas"
    );
}

#[test]
fn multi_valued_add_appends_without_duplicates_and_keeps_one_primary() {
    let u = patched(json!([{"op": "add", "path": "emails", "value": [
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@jensen.org", "type": "home", "primary": "True"}
    ]}]));
    let emails = u["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[0]["primary"], false);
    assert_eq!(emails[1]["primary"], true);
    let u = patched(
        json!([{"op": "replace", "path": "emails", "value": [{"value": "new@example.com"}]}]),
    );
    assert_eq!(u["emails"], json!([{"value": "new@example.com"}]));
}

#[test]
fn filtered_replace_updates_matches_or_creates_the_described_element() {
    let u = patched(
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"}]),
    );
    assert_eq!(
        u["emails"],
        json!([{"value": "new@example.com", "type": "work", "primary": true}])
    );
    let u = patched(
        json!([{"op": "replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"}]),
    );
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    let u = patched(
        json!([{"op": "replace", "path": "addresses[type eq \"work\"]", "value": {"locality": "Hollywood"}}]),
    );
    assert_eq!(
        u["addresses"],
        json!([{"type": "work", "locality": "Hollywood"}])
    );
    let err =
        fails(json!([{"op": "replace", "path": "emails[value co \"zzz\"].display", "value": "x"}]));
    assert_eq!(err.scim_type(), "noTarget");
}

#[test]
fn filtered_remove_drops_matching_elements_and_is_idempotent() {
    let mut u = user();
    patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "add", "path": "emails", "value": [{"value": "b@h.org", "type": "home"}]}]),
    )
    .unwrap();
    patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
    )
    .unwrap();
    assert_eq!(u["emails"], json!([{"value": "b@h.org", "type": "home"}]));
    let out = patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
    )
    .unwrap();
    assert!(!out.changed);
    patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "remove", "path": "emails[type eq \"home\"].value"}]),
    )
    .unwrap();
    assert!(
        u.get("emails").is_none(),
        "an element left with only its selector is dropped"
    );
}

#[test]
fn remove_with_a_value_list_removes_those_elements() {
    let mut u = user();
    patch(&mut u, ResourceKind::User, json!([{"op": "add", "path": "roles", "value": [{"value": "admin"}, {"value": "viewer", "display": "Viewer"}]}])).unwrap();
    patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "remove", "path": "roles", "value": [{"value": "viewer"}]}]),
    )
    .unwrap();
    assert_eq!(u["roles"], json!([{"value": "admin"}]));
}

#[test]
fn string_booleans_are_coerced_and_garbage_is_an_invalid_value() {
    assert_eq!(
        patched(json!([{"op": "Replace", "path": "active", "value": "False"}]))["active"],
        false
    );
    assert_eq!(
        patched(json!([{"op": "replace", "value": {"active": "TRUE"}}]))["active"],
        true
    );
    assert_eq!(
        fails(json!([{"op": "replace", "path": "active", "value": "nope"}])).scim_type(),
        "invalidValue"
    );
    assert_eq!(
        fails(json!([{"op": "replace", "path": "userName", "value": {"a": 1}}])).scim_type(),
        "invalidValue"
    );
    assert_eq!(
        fails(json!([{"op": "add", "path": "title"}])).scim_type(),
        "invalidValue"
    );
}

#[test]
fn read_only_and_required_attributes_are_protected() {
    for path in ["id", "meta", "meta.resourceType", "groups"] {
        let err = fails(json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_eq!(err.scim_type(), "mutability", "{path}");
    }
    assert_eq!(
        fails(json!([{"op": "remove", "path": "userName"}])).scim_type(),
        "mutability"
    );
    assert_eq!(
        fails(json!([{"op": "replace", "path": "userName", "value": null}])).scim_type(),
        "mutability"
    );
    // Echoing the current id, or read-only keys in a path-less value, is harmless.
    assert_eq!(
        patched(json!([{"op": "replace", "path": "id", "value": "2819c223"}])),
        user()
    );
    assert_eq!(
        patched(json!([{"op": "replace", "value": {"id": "other", "meta": {}}}])),
        user()
    );
    let mut group = json!({"displayName": "Admins"});
    let err = patch(
        &mut group,
        ResourceKind::Group,
        json!([{"op": "remove", "path": "displayName"}]),
    )
    .unwrap_err();
    assert_eq!(err.scim_type(), "mutability");
}

#[test]
fn paths_that_do_not_fit_the_schema_are_invalid() {
    for path in [
        "emails[type eq",
        "name.nickname",
        "title.sub",
        "active[value eq true]",
        &format!("{ENTERPRISE}:nope"),
    ] {
        let err = fails(json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_eq!(err.scim_type(), "invalidPath", "{path}");
    }
    assert_eq!(fails(json!([{"op": "remove"}])).scim_type(), "noTarget");
    assert_eq!(
        fails(json!([{"op": "add", "value": "x"}])).scim_type(),
        "invalidValue"
    );
}

#[test]
fn unknown_attributes_outside_known_schemas_are_kept() {
    let custom = "urn:ietf:params:scim:schemas:extension:CustomExtension:2.0:User";
    let u = patched(json!([
        {"op": "add", "path": "favoriteColor", "value": "teal"},
        {"op": "add", "value": {custom: {"badge": 42}}},
        {"op": "add", "path": format!("{custom}:floor"), "value": "3"}
    ]));
    assert_eq!(u["favoriteColor"], "teal");
    assert_eq!(u[custom], json!({"badge": 42, "floor": "3"}));
}

#[test]
fn errors_are_atomic_and_name_the_failing_operation() {
    let err = fails(json!([
        {"op": "replace", "path": "title", "value": "changed"},
        {"op": "replace", "path": "id", "value": "other"}
    ]));
    assert_eq!(
        err,
        PatchError::Mutability("Operations[1]: 'id' is read-only".into())
    );
}

#[test]
fn group_members_become_member_changes_and_never_touch_the_json() {
    let mut group = json!({"displayName": "Admins"});
    let out = patch(&mut group, ResourceKind::Group, json!([
        {"op": "add", "path": "members", "value": [{"value": "u1", "display": "One", "$ref": "https://x/Users/u1"}, {"value": "u2", "type": "User"}]},
        {"op": "remove", "path": "members[value eq \"u3\"]"},
        {"op": "remove", "path": "members[value eq \"u4\" or value eq \"u5\"]"},
        {"op": "remove", "path": "members", "value": [{"value": "u6"}]},
        {"op": "replace", "path": "members", "value": [{"value": "u7"}]},
        {"op": "remove", "path": "members"},
        {"op": "replace", "value": {"displayName": "Admins 2", "members": [{"value": "u8"}]}},
        {"op": "add", "value": {"members": [{"value": "u9"}]}}
    ])).unwrap();
    assert_eq!(
        out.member_changes,
        [
            MemberChange::Add(vec!["u1".into(), "u2".into()]),
            MemberChange::Remove(vec!["u3".into()]),
            MemberChange::Remove(vec!["u4".into(), "u5".into()]),
            MemberChange::Remove(vec!["u6".into()]),
            MemberChange::ReplaceAll(vec!["u7".into()]),
            MemberChange::RemoveAll,
            MemberChange::ReplaceAll(vec!["u8".into()]),
            MemberChange::Add(vec!["u9".into()]),
        ]
    );
    assert_eq!(group, json!({"displayName": "Admins 2"}));
}

#[test]
fn malformed_member_operations_are_refused() {
    for operation in [
        json!({"op": "add", "path": "members", "value": [{"display": "no id"}]}),
        json!({"op": "add", "path": "members"}),
        json!({"op": "remove", "path": "members[type eq \"User\"]"}),
        json!({"op": "replace", "path": "members[value eq \"u1\"]", "value": {"value": "u2"}}),
        json!({"op": "replace", "path": "members.value", "value": "u2"}),
    ] {
        let mut group = json!({"displayName": "Admins"});
        assert!(
            apply_patch(
                &mut group,
                &ops(json!([operation.clone()])),
                ResourceKind::Group
            )
            .is_err(),
            "{operation}"
        );
    }
}

#[test]
fn normalize_booleans_fixes_post_bodies_per_schema() {
    let mut body = json!({
        "userName": "x", "active": "False", "title": "true",
        "emails": [{"value": "a@b", "primary": "True"}],
        ENTERPRISE: {"department": "true"}
    });
    normalize_booleans(&mut body, ResourceKind::User);
    assert_eq!(body["active"], false);
    assert_eq!(body["title"], "true", "only Boolean attributes are touched");
    assert_eq!(body["emails"][0]["primary"], true);
    assert_eq!(body[ENTERPRISE]["department"], "true");
}

#[test]
fn scim_types_match_rfc_7644() {
    let types: Vec<&str> = [
        PatchError::InvalidPath(String::new()),
        PatchError::NoTarget(String::new()),
        PatchError::InvalidValue(String::new()),
        PatchError::Mutability(String::new()),
        PatchError::InvalidSyntax(String::new()),
    ]
    .iter()
    .map(PatchError::scim_type)
    .collect();
    assert_eq!(
        types,
        [
            "invalidPath",
            "noTarget",
            "invalidValue",
            "mutability",
            "invalidSyntax"
        ]
    );
}

#[test]
fn a_path_naming_a_whole_extension_targets_its_object() {
    let mut u = patched(
        json!([{"op": "add", "path": ENTERPRISE, "value": {"department": "Sales", "division": "EMEA"}}]),
    );
    assert_eq!(
        u[ENTERPRISE],
        json!({"department": "Sales", "division": "EMEA"})
    );
    patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "replace", "path": ENTERPRISE, "value": {"costCenter": "1"}}]),
    )
    .unwrap();
    assert_eq!(u[ENTERPRISE], json!({"costCenter": "1"}));
    patch(
        &mut u,
        ResourceKind::User,
        json!([{"op": "remove", "path": ENTERPRISE}]),
    )
    .unwrap();
    assert!(u.get(ENTERPRISE).is_none());
}

/// The reported stall: one `add` of 120,000 values took 44 s (a `contains`
/// per value). Hashing makes it linear; the bound is generous for debug builds.
#[test]
fn a_large_multi_valued_add_and_remove_take_linear_time() {
    let mut resource = json!({"userName": "a"});
    let values: Vec<Value> = (0..120_000).map(|i| json!(i)).collect();
    let started = std::time::Instant::now();
    let ops = [PatchOperation {
        op: PatchOp::Add,
        path: Some("x".into()),
        value: Some(Value::Array(values.clone())),
    }];
    apply_patch(&mut resource, &ops, ResourceKind::User).expect("applies");
    let again = [PatchOperation {
        op: PatchOp::Add,
        path: Some("x".into()),
        value: Some(Value::Array(values)),
    }];
    apply_patch(&mut resource, &again, ResourceKind::User).expect("applies");
    assert_eq!(resource["x"].as_array().map(Vec::len), Some(120_000));
    let removal: Vec<Value> = (0..60_000).map(|i| json!({"value": i * 2})).collect();
    let remove = [PatchOperation {
        op: PatchOp::Remove,
        path: Some("x".into()),
        value: Some(Value::Array(removal)),
    }];
    apply_patch(&mut resource, &remove, ResourceKind::User).expect("applies");
    assert_eq!(resource["x"].as_array().map(Vec::len), Some(60_000));
    assert_eq!(resource["x"][0], json!(1));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_newest_primary_value_wins_among_many_added() {
    let mut resource = json!({"userName": "a", "emails": [{"value": "old@x", "primary": true}]});
    let ops = [PatchOperation {
        op: PatchOp::Add,
        path: Some("emails".into()),
        value: Some(json!([
            {"value": "a@x", "primary": true},
            {"value": "b@x", "primary": true},
            {"value": "c@x"}
        ])),
    }];
    apply_patch(&mut resource, &ops, ResourceKind::User).expect("applies");
    let primaries: Vec<&str> = resource["emails"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["primary"] == json!(true))
        .filter_map(|e| e["value"].as_str())
        .collect();
    assert_eq!(primaries, ["b@x"]);
}
