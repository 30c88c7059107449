//! Custom attribute definitions (shared by SSO and directory sync on an enterprise connection)
//! and reading their values from a directory user's SCIM resource.
//!
//! Values land in a member's `public_metadata` under the definition's key. Only scalars are
//! kept (string, number, boolean); an attribute that is absent, null, empty or complex counts as
//! absent, so the key is removed rather than holding a value no one can use.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scim::eval::get;
use crate::scim::AttrPath;
use crate::Error;

/// The core User schema: attributes under it live at the resource's top level.
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// Where one `public_metadata` key is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeDefinition {
    /// The metadata key: snake_case, 1–64 characters, unique per connection.
    pub key: String,
    /// A SCIM attribute path (`title`, `name.givenName`,
    /// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`).
    #[serde(default)]
    pub scim_path: Option<String>,
    /// The SSO claim (SAML attribute or OIDC claim) carrying the same value.
    #[serde(default)]
    pub sso_claim: Option<String>,
}

impl AttributeDefinition {
    pub const MAX_KEY_LEN: usize = 64;

    /// The parsed SCIM path, if any.
    ///
    /// # Errors
    /// `Invalid` (field `scim_path`) when the path does not parse.
    pub fn parsed_scim_path(&self) -> crate::Result<Option<AttrPath>> {
        self.scim_path
            .as_deref()
            .map(|raw| AttrPath::parse(raw).map_err(|msg| Error::invalid("scim_path", msg)))
            .transpose()
    }

    fn validate(&self, at: &str) -> crate::Result<()> {
        let key_ok = !self.key.is_empty()
            && self.key.len() <= Self::MAX_KEY_LEN
            && self.key.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return Err(Error::invalid(
                format!("{at}.key"),
                "must be snake_case: 1 to 64 lowercase letters, digits and '_', starting with a letter",
            ));
        }
        if let Some(raw) = &self.scim_path {
            AttrPath::parse(raw).map_err(|msg| Error::invalid(format!("{at}.scim_path"), msg))?;
        }
        if let Some(claim) = &self.sso_claim {
            let claim = claim.trim();
            if claim.is_empty()
                || claim.chars().count() > 256
                || claim.chars().any(char::is_control)
            {
                return Err(Error::invalid(
                    format!("{at}.sso_claim"),
                    "must be 1 to 256 characters, without control characters",
                ));
            }
        }
        Ok(())
    }
}

/// Validates a connection's definitions as a whole (field paths `attributes[i].key`, ...).
///
/// # Errors
/// `Invalid` for a malformed key, SCIM path or claim, or a key defined twice.
pub fn validate_attributes(definitions: &[AttributeDefinition]) -> crate::Result<()> {
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, definition) in definitions.iter().enumerate() {
        let at = format!("attributes[{i}]");
        definition.validate(&at)?;
        if let Some(first) = first_seen.insert(&definition.key, i) {
            return Err(Error::invalid(
                format!("{at}.key"),
                format!(
                    "key \"{}\" is already defined at attributes[{first}]",
                    definition.key
                ),
            ));
        }
    }
    Ok(())
}

/// The scalar value `path` designates in a User resource, if any.
///
/// Attribute names and schema URNs match case-insensitively (RFC 7643 §2.1). An extension
/// attribute is read from its URN object (`resource["urn:…:User"]["department"]`), or from a
/// flat `"urn:…:User:department"` key, which some clients send. For a multi-valued complex
/// attribute with a sub-attribute (`emails.value`) the primary value wins, else the first.
pub fn read_scim_value(resource: &Value, path: &AttrPath) -> Option<Value> {
    let container = match &path.uri {
        Some(uri) if !uri.eq_ignore_ascii_case(USER_SCHEMA) => get(resource, uri),
        _ => Some(resource),
    };
    let top = container.and_then(|c| get(c, &path.name)).or_else(|| {
        let flat = match &path.uri {
            Some(uri) => format!("{uri}:{}", path.name),
            None => return None,
        };
        get(resource, &flat)
    })?;
    let value = match &path.sub {
        None => top,
        Some(sub) => get(preferred_element(top)?, sub)?,
    };
    match value {
        Value::String(s) if s.is_empty() => None,
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(value.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// For a multi-valued attribute, the `primary: true` element, else the first one.
fn preferred_element(value: &Value) -> Option<&Value> {
    match value {
        Value::Array(items) => items
            .iter()
            .find(|item| matches!(get(item, "primary"), Some(Value::Bool(true))))
            .or_else(|| items.first()),
        single => Some(single),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::scim::schema::ENTERPRISE_USER_URN as ENTERPRISE;

    fn read(resource: &Value, path: &str) -> Option<Value> {
        read_scim_value(resource, &AttrPath::parse(path).unwrap())
    }

    fn def(key: &str, path: Option<&str>) -> AttributeDefinition {
        AttributeDefinition {
            key: key.into(),
            scim_path: path.map(Into::into),
            sso_claim: None,
        }
    }

    #[test]
    fn values_are_read_case_insensitively_from_core_and_extension_attributes() {
        let user = json!({
            "userName": "ada",
            "Title": "Engineer",
            "name": {"givenName": "Ada"},
            "emails": [{"value": "a@x.io"}, {"value": "ada@x.io", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "Department": "R&D", "employeeNumber": 42, "manager": {"value": "m-1"}
            }
        });
        assert_eq!(read(&user, "title"), Some(json!("Engineer")));
        assert_eq!(read(&user, "name.givenName"), Some(json!("Ada")));
        assert_eq!(read(&user, "emails.value"), Some(json!("ada@x.io")));
        assert_eq!(
            read(&user, &format!("{ENTERPRISE}:department")),
            Some(json!("R&D"))
        );
        assert_eq!(
            read(&user, &format!("{ENTERPRISE}:employeeNumber")),
            Some(json!(42))
        );
        assert_eq!(
            read(&user, &format!("{ENTERPRISE}:manager.value")),
            Some(json!("m-1"))
        );
        assert_eq!(
            read(&user, "urn:ietf:params:scim:schemas:core:2.0:User:userName"),
            Some(json!("ada"))
        );
    }

    #[test]
    fn absent_empty_null_and_complex_values_count_as_absent() {
        let user = json!({"title": "", "nickName": null, "name": {"givenName": "Ada"}});
        for path in [
            "title",
            "nickName",
            "name",
            "costCenter",
            &format!("{ENTERPRISE}:department"),
        ] {
            assert_eq!(read(&user, path), None, "{path}");
        }
    }

    #[test]
    fn a_flat_extension_key_is_read_too() {
        let user = json!({ format!("{ENTERPRISE}:department"): "Ops" });
        assert_eq!(
            read(&user, &format!("{ENTERPRISE}:department")),
            Some(json!("Ops"))
        );
    }

    #[test]
    fn definitions_need_snake_case_unique_keys_and_valid_paths() {
        let ok = [
            def("department", Some(&format!("{ENTERPRISE}:department"))),
            def("cost_center", None),
        ];
        assert!(validate_attributes(&ok).is_ok());
        let cases: [(Vec<AttributeDefinition>, &str); 4] = [
            (vec![def("Department", None)], "attributes[0].key"),
            (vec![def("", None)], "attributes[0].key"),
            (vec![def("a", None), def("a", None)], "attributes[1].key"),
            (vec![def("a", Some("name.a.b"))], "attributes[0].scim_path"),
        ];
        for (defs, expected) in cases {
            match validate_attributes(&defs) {
                Err(Error::Invalid { field, .. }) => assert_eq!(field, expected),
                other => panic!("expected {expected}, got {other:?}"),
            }
        }
    }
}
