//! Fixed resources shared by the fuzz targets: a realistic Okta/Entra-provisioned User (core +
//! enterprise extension) and a Group, in the JSON shape orgsync stores them.

use serde_json::{json, Value};

pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// A User as stored after a provisioning POST (no `password`, no `groups`).
pub fn user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "00u1a2b3c4D5e6F7g8h9",
        "userName": "Bjensen@Example.com",
        "displayName": "Babs Jensen",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": "Ms. Barbara J Jensen III"},
        "title": "",
        "active": true,
        "locale": "en-US",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [{"value": "+1 555 555 5555", "type": "mobile"}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood", "primary": true}],
        "roles": [],
        "meta": {"resourceType": "User", "lastModified": "2011-05-13T04:42:34Z", "created": "2010-01-23T04:56:22Z"},
        "x-count": 42,
        ENTERPRISE: {
            "employeeNumber": "701984",
            "department": "Tour Operations",
            "costCenter": "4130",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "John Smith"}
        }
    })
}

/// A Group as stored (members live in rows, not in the JSON).
pub fn group() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
        "externalId": "8d9f3c1e-entra",
        "displayName": "Tour Guides",
        "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z"}
    })
}

/// A Group as a client sees it, with members, for filter evaluation.
pub fn group_with_members() -> Value {
    let mut g = group();
    g["members"] = json!([
        {"value": "2819c223-7f76-453a-919d-413861904646", "type": "User", "display": "Babs Jensen"},
        {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"}
    ]);
    g
}
