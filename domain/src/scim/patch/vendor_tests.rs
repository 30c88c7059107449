//! Whole PATCH bodies in the shapes each IdP documents and sends, run end to end from JSON.

use serde_json::{json, Value};

use super::*;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Applies a PatchOp message of `operations` to `resource`, as an IdP sends it.
fn run(resource: &mut Value, kind: ResourceKind, operations: Value) -> PatchOutcome {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": operations,
    });
    let request: PatchRequest = serde_json::from_value(body).unwrap();
    request.validate().unwrap();
    apply_patch(resource, &request.operations, kind).unwrap()
}

fn patch_user(user: &mut Value, operations: Value) -> PatchOutcome {
    run(user, ResourceKind::User, operations)
}

fn patch_group(group: &mut Value, operations: Value) -> PatchOutcome {
    run(group, ResourceKind::Group, operations)
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
        "userName": "test.user@okta.local",
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
        "active": true
    })
}

fn group() -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": "abf4dd94", "displayName": "Test SCIMv2"})
}

#[test]
fn okta_deactivates_a_user_with_a_path_less_replace() {
    let mut u = user();
    let out = patch_user(
        &mut u,
        json!([{"op": "replace", "value": {"active": false}}]),
    );
    assert!(out.changed);
    assert_eq!(u["active"], false);
}

#[test]
fn okta_renames_a_group_echoing_its_id_and_manages_members() {
    let mut g = group();
    let out = patch_group(
        &mut g,
        json!([
            {"op": "replace", "value": {"id": "abf4dd94", "displayName": "Renamed"}},
            {"op": "add", "path": "members", "value": [{"value": "23a35c27", "display": "test.user@okta.local"}]},
            {"op": "remove", "path": "members[value eq \"89bb1940\"]"}
        ]),
    );
    assert_eq!(g["displayName"], "Renamed");
    assert!(g.get("members").is_none());
    assert_eq!(
        out.member_changes,
        [
            MemberChange::Add(vec!["23a35c27".into()]),
            MemberChange::Remove(vec!["89bb1940".into()]),
        ]
    );
}

#[test]
fn okta_sets_a_password_without_storing_anything_unexpected() {
    let mut u = user();
    patch_user(
        &mut u,
        json!([{"op": "replace", "value": {"password": "t1meMa$heen"}}]),
    );
    assert_eq!(u["password"], "t1meMa$heen");
}

#[test]
fn entra_updates_a_user_with_capitalised_ops_and_filtered_paths() {
    let mut u = user();
    patch_user(
        &mut u,
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updated@contoso.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 206 555 0100"},
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Microsoft Way"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Redmond"},
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "externalId", "value": "0a21f0f2-8d2a-4f8e-bf98-7a3a9e0d4d6b"}
        ]),
    );
    assert_eq!(
        u["emails"],
        json!([{"primary": true, "value": "updated@contoso.com", "type": "work"}])
    );
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 206 555 0100"}])
    );
    assert_eq!(
        u["addresses"],
        json!([{"type": "work", "streetAddress": "1 Microsoft Way", "locality": "Redmond"}])
    );
    assert_eq!(u["active"], false);
}

#[test]
fn entra_sets_and_removes_the_manager_and_enterprise_attributes() {
    let mut u = user();
    patch_user(
        &mut u,
        json!([
            {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "2819c223-7f76-453a-919d-413861904646"},
            {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Sales"},
            {"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": 1234}
        ]),
    );
    assert_eq!(
        u[ENTERPRISE],
        json!({
            "manager": {"value": "2819c223-7f76-453a-919d-413861904646"},
            "department": "Sales",
            "employeeNumber": "1234"
        })
    );
    patch_user(
        &mut u,
        json!([
            {"op": "Remove", "path": format!("{ENTERPRISE}:manager")},
            {"op": "Remove", "path": format!("{ENTERPRISE}:department")},
            {"op": "Remove", "path": format!("{ENTERPRISE}:employeeNumber")}
        ]),
    );
    assert!(u.get(ENTERPRISE).is_none());
}

#[test]
fn entra_changes_group_membership_with_value_lists() {
    let mut g = group();
    let out = patch_group(
        &mut g,
        json!([
            {"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5-ea3e-4cf7-8a9b-5f6e1f4a3b2c"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "a9b5c2d4-0000-4e3c-9c1b-7a6d5e4f3a2b"}]},
            {"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}
        ]),
    );
    assert_eq!(
        out.member_changes,
        [
            MemberChange::Add(vec!["f648f8d5-ea3e-4cf7-8a9b-5f6e1f4a3b2c".into()]),
            MemberChange::Remove(vec!["a9b5c2d4-0000-4e3c-9c1b-7a6d5e4f3a2b".into()]),
        ]
    );
    assert_eq!(
        g["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );
}

#[test]
fn onelogin_replaces_attributes_and_removes_members_by_value() {
    let mut u = user();
    patch_user(
        &mut u,
        json!([{"op": "replace", "value": {
            "name": {"givenName": "Onelogin", "familyName": "Person"},
            "title": "Engineer",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
        }}]),
    );
    assert_eq!(
        u["name"],
        json!({"givenName": "Onelogin", "familyName": "Person"})
    );
    assert_eq!(u[ENTERPRISE]["department"], "R&D");

    let mut g = group();
    let out = patch_group(
        &mut g,
        json!([{"op": "remove", "path": "members", "value": [{"value": "u-1"}, {"value": "u-2"}]}]),
    );
    assert_eq!(
        out.member_changes,
        [MemberChange::Remove(vec!["u-1".into(), "u-2".into()])]
    );
}

#[test]
fn jumpcloud_replaces_group_members_and_updates_users() {
    let mut g = group();
    let out = patch_group(
        &mut g,
        json!([
            {"op": "replace", "path": "displayName", "value": "Engineering"},
            {"op": "replace", "path": "members", "value": [
                {"value": "5f1b3c", "display": "a@example.com", "type": "User"},
                {"value": "5f1b3d", "display": "b@example.com", "type": "User"}
            ]}
        ]),
    );
    assert_eq!(
        out.member_changes,
        [MemberChange::ReplaceAll(vec![
            "5f1b3c".into(),
            "5f1b3d".into()
        ])]
    );
    assert_eq!(g["displayName"], "Engineering");

    let mut u = user();
    patch_user(
        &mut u,
        json!([
            {"op": "replace", "path": "active", "value": false},
            {"op": "replace", "path": "emails", "value": [{"value": "new@jc.example", "type": "work", "primary": true}]}
        ]),
    );
    assert_eq!(
        u["emails"],
        json!([{"value": "new@jc.example", "type": "work", "primary": true}])
    );
    assert_eq!(u["active"], false);
}
