use super::*;

use crate::scim::schema::ENTERPRISE_USER_URN as ENTERPRISE;

fn path(text: &str) -> AttrPath {
    AttrPath::parse(text).unwrap()
}

#[test]
fn user_schema_has_every_rfc_7643_attribute() {
    let names: Vec<&str> = USER.attributes.iter().map(|a| a.name).collect();
    for expected in [
        "userName",
        "name",
        "displayName",
        "nickName",
        "profileUrl",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "active",
        "password",
        "emails",
        "phoneNumbers",
        "ims",
        "photos",
        "addresses",
        "groups",
        "entitlements",
        "roles",
        "x509Certificates",
    ] {
        assert!(names.contains(&expected), "missing {expected}");
    }
}

#[test]
fn lookup_ignores_case_and_reaches_sub_attributes() {
    let def = find_attribute(ResourceKind::User, &path("NAME.GIVENNAME")).unwrap();
    assert_eq!(def.name, "givenName");
    let def = find_attribute(ResourceKind::User, &path("emails.primary")).unwrap();
    assert_eq!(def.kind, AttrType::Boolean);
    assert!(find_attribute(ResourceKind::User, &path("name.nope")).is_none());
    assert!(find_attribute(ResourceKind::User, &path("nope")).is_none());
}

#[test]
fn lookup_honours_the_schema_urn() {
    let def = find_attribute(
        ResourceKind::User,
        &path(&format!("{ENTERPRISE}:manager.value")),
    )
    .unwrap();
    assert!(def.case_exact);
    let upper = ENTERPRISE.to_uppercase();
    assert!(find_attribute(ResourceKind::User, &path(&format!("{upper}:department"))).is_some());
    // Extension attributes are not reachable without their URN, nor from Groups.
    assert!(find_attribute(ResourceKind::User, &path("department")).is_none());
    assert!(find_attribute(
        ResourceKind::Group,
        &path(&format!("{ENTERPRISE}:department"))
    )
    .is_none());
    let core = "urn:ietf:params:scim:schemas:core:2.0:User:userName";
    assert_eq!(
        find_attribute(ResourceKind::User, &path(core))
            .unwrap()
            .name,
        "userName"
    );
}

#[test]
fn common_attributes_resolve_with_their_case_rules() {
    let id = find_attribute(ResourceKind::Group, &path("id")).unwrap();
    assert!(id.case_exact && id.mutability == Mutability::ReadOnly);
    assert!(
        find_attribute(ResourceKind::User, &path("externalId"))
            .unwrap()
            .case_exact
    );
    let modified = find_attribute(ResourceKind::User, &path("meta.lastModified")).unwrap();
    assert_eq!(modified.kind, AttrType::DateTime);
}

#[test]
fn mutability_and_returned_follow_the_rfc() {
    let password = USER.attribute("password").unwrap();
    assert_eq!(
        (password.mutability, password.returned),
        (Mutability::WriteOnly, Returned::Never)
    );
    assert_eq!(
        USER.attribute("groups").unwrap().mutability,
        Mutability::ReadOnly
    );
    assert!(USER.attribute("userName").unwrap().required);
    assert!(GROUP.attribute("displayName").unwrap().required);
    let members = GROUP.attribute("members").unwrap();
    let subs: Vec<&str> = members.sub_attributes.iter().map(|a| a.name).collect();
    assert_eq!(subs, ["value", "$ref", "type", "display"]);
}

#[test]
fn resource_kinds_know_their_schemas() {
    assert_eq!(
        ResourceKind::User.core_schema().id,
        "urn:ietf:params:scim:schemas:core:2.0:User"
    );
    assert_eq!(ResourceKind::User.extensions()[0].id, ENTERPRISE);
    assert!(ResourceKind::Group.extensions().is_empty());
    assert_eq!(ResourceKind::Group.core_schema().name, "Group");
}

#[test]
fn schema_json_matches_rfc_7643_section_7() {
    let doc = schema_json(&ENTERPRISE_USER, "https://sync.example.com/scim/v2/");
    assert_eq!(doc["id"], ENTERPRISE);
    assert_eq!(doc["meta"]["resourceType"], "Schema");
    assert_eq!(
        doc["meta"]["location"],
        format!("https://sync.example.com/scim/v2/Schemas/{ENTERPRISE}")
    );
    let manager = doc["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "manager")
        .unwrap();
    assert_eq!(manager["type"], "complex");
    assert!(manager.get("caseExact").is_none());
    let reference = &manager["subAttributes"][1];
    assert_eq!(reference["name"], "$ref");
    assert_eq!(reference["referenceTypes"], serde_json::json!(["User"]));

    let user = schema_json(&USER, "https://x");
    let emails = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "emails")
        .unwrap();
    assert_eq!(emails["multiValued"], true);
    assert_eq!(
        emails["subAttributes"][2]["canonicalValues"],
        serde_json::json!(["work", "home", "other"])
    );
    let password = user["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "password")
        .unwrap();
    assert_eq!(
        (
            password["mutability"].as_str(),
            password["returned"].as_str()
        ),
        (Some("writeOnly"), Some("never"))
    );
}
