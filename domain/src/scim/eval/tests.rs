use serde_json::json;

use crate::scim::{Filter, ResourceKind};

fn user() -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "AbC123",
        "userName": "Bjensen@Example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "title": "",
        "active": true,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [],
        "meta": {"lastModified": "2011-05-13T04:42:34Z", "created": "2010-01-23T04:56:22Z"},
        "x-count": 42,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    })
}

fn matches(filter: &str) -> bool {
    Filter::parse(filter)
        .unwrap()
        .matches(&user(), ResourceKind::User)
}

#[test]
fn names_are_case_insensitive_and_strings_too_unless_case_exact() {
    assert!(matches(r#"USERNAME eq "bjensen@example.com""#));
    assert!(matches(r#"name.GIVENNAME sw "bar""#));
    // id and externalId are caseExact.
    assert!(matches(r#"externalId eq "AbC123""#));
    assert!(!matches(r#"externalId eq "abc123""#));
    assert!(!matches(r#"id eq "2819C223-7F76-453A-919D-413861904646""#));
}

#[test]
fn string_operators() {
    assert!(matches(r#"userName co "EXAMPLE""#));
    assert!(matches(r#"userName sw "bjen""#));
    assert!(matches(r#"userName ew ".com""#));
    assert!(matches(r#"userName gt "a""#));
    assert!(!matches(r#"userName lt "a""#));
    assert!(matches(r#"userName ne "someone""#));
}

#[test]
fn presence_needs_a_non_empty_value() {
    assert!(matches("name pr"));
    assert!(matches("emails pr"));
    assert!(!matches("title pr"));
    assert!(!matches("phoneNumbers pr"));
    assert!(!matches("nickName pr"));
    assert!(matches(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr"
    ));
}

#[test]
fn multi_valued_attributes_match_when_any_value_does() {
    assert!(matches(r#"emails.value eq "babs@jensen.org""#));
    assert!(matches(r#"emails.type eq "home""#));
    assert!(matches(r#"emails[type eq "work" and primary eq true]"#));
    assert!(!matches(r#"emails[type eq "home" and primary eq true]"#));
    assert!(matches(
        r#"emails[type eq "work"].value eq "BJENSEN@example.com""#
    ));
    assert!(!matches(
        r#"emails[type eq "home"].value eq "bjensen@example.com""#
    ));
}

#[test]
fn extension_attributes_are_found_under_their_urn() {
    assert!(matches(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#
    ));
    assert!(!matches(r#"department eq "Tour Operations""#));
    // A stored string compared with an unquoted number compares as text.
    assert!(matches(
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq 701984"
    ));
}

#[test]
fn booleans_compare_for_equality_only() {
    assert!(matches("active eq true"));
    assert!(matches(r#"active eq "True""#));
    assert!(!matches("active eq false"));
    assert!(!matches("active gt false"));
    assert!(matches("active ne false"));
}

#[test]
fn date_times_compare_as_instants() {
    assert!(matches(
        r#"meta.lastModified gt "2011-05-13T04:42:34+01:00""#
    ));
    assert!(matches(
        r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#
    ));
    assert!(matches(r#"meta.created lt "2011-01-01T00:00:00Z""#));
}

#[test]
fn numbers_compare_numerically_and_complex_values_not_by_order() {
    assert!(matches("x-count gt 9"));
    assert!(matches("x-count eq 42.0"));
    assert!(!matches("x-count lt 42"));
    assert!(!matches(r#"name gt "a""#));
}

#[test]
fn absent_attributes_match_only_ne_and_eq_null() {
    assert!(matches(r#"nickName ne "x""#));
    assert!(matches("nickName eq null"));
    assert!(!matches(r#"nickName eq "x""#));
    assert!(!matches(r#"nickName co "x""#));
}

#[test]
fn logical_operators_combine() {
    assert!(matches(r#"userName sw "b" and not (title pr)"#));
    assert!(matches(r#"userName eq "nobody" or active eq true"#));
    assert!(!matches(r#"not (userName pr)"#));
}

#[test]
fn complex_values_compare_through_their_value_sub_attribute() {
    let group = json!({"displayName": "Admins", "members": [{"value": "u1"}, {"value": "u2"}]});
    let f = Filter::parse(r#"displayName eq "admins" and members eq "u2""#).unwrap();
    assert!(f.matches(&group, ResourceKind::Group));
    let f = Filter::parse(r#"members[value eq "U2"]"#).unwrap();
    assert!(
        !f.matches(&group, ResourceKind::Group),
        "member ids are caseExact"
    );
}
