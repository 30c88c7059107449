//! Directory users and groups as stored: the resource exactly as the IdP sent
//! it (minus `id`, `meta`, write-only `password` and, for groups, `members`,
//! which are rows), plus the attributes that are indexed for filters.

use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ConnectionId, ScimError};
use crate::scim::{normalize_booleans, Filter, ResourceKind};

/// The `id` of a SCIM resource.
pub type ResourceId = Uuid;

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Attribute names compare case-insensitively (RFC 7643 §2.1).
fn take_ci(map: &mut Map<String, Value>, name: &str) -> Option<Value> {
    let key = map.keys().find(|k| k.eq_ignore_ascii_case(name))?.clone();
    map.remove(&key)
}

fn get_ci<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, ScimError> {
    match get_ci(map, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ScimError::InvalidValue(format!("{name} must be a string"))),
    }
}

fn into_object(body: Value) -> Result<Map<String, Value>, ScimError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ScimError::InvalidSyntax(
            "the body must be a JSON object".into(),
        )),
    }
}

/// Strips what the server owns and keeps everything else, unknown attributes included.
fn strip_server_owned(map: &mut Map<String, Value>) {
    for owned in ["id", "meta"] {
        take_ci(map, owned);
    }
}

/// The indexed view of a user, derived from its resource.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFields {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    /// The primary email, or the first one, lower-cased.
    pub email: Option<String>,
    pub resource: Value,
}

impl UserFields {
    /// Reads a POST/PUT body (or a patched resource) into a storable user.
    ///
    /// # Errors
    /// `InvalidSyntax` for a non-object, `InvalidValue` for a missing or empty
    /// `userName` or mistyped core attributes.
    pub fn from_scim(body: Value) -> Result<Self, ScimError> {
        let mut body = body;
        normalize_booleans(&mut body, ResourceKind::User);
        let mut map = into_object(body)?;
        strip_server_owned(&mut map);
        // Write-only and never returned: orgsync has no use for a password, so it never keeps one.
        take_ci(&mut map, "password");
        // Read-only, derived from group membership.
        take_ci(&mut map, "groups");
        let user_name = match get_ci(&map, "userName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ScimError::InvalidValue("userName is required".into()))
            }
            Some(_) => return Err(ScimError::InvalidValue("userName must be a string".into())),
        };
        let external_id = optional_string(&map, "externalId")?;
        let display_name = optional_string(&map, "displayName")?;
        let active = match get_ci(&map, "active") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ScimError::InvalidValue("active must be a boolean".into())),
        };
        let email = primary_email(get_ci(&map, "emails"));
        ensure_schema(&mut map, USER_SCHEMA);
        Ok(Self {
            user_name,
            external_id,
            display_name,
            active,
            email,
            resource: Value::Object(map),
        })
    }
}

fn primary_email(emails: Option<&Value>) -> Option<String> {
    let list = emails?.as_array()?;
    let value_of = |e: &Value| {
        e.get("value")
            .and_then(Value::as_str)
            .map(str::to_lowercase)
    };
    list.iter()
        .find(|e| matches!(e.get("primary"), Some(Value::Bool(true))))
        .and_then(value_of)
        .or_else(|| list.iter().find_map(value_of))
}

/// Resources without `schemas` are accepted (some IdPs omit it), and so
/// are lists without the core schema (a PATCH may replace `schemas` with
/// anything): either is stored with the core schema first, because every
/// reader of a User or Group looks for it there (RFC 7643 §3).
fn ensure_schema(map: &mut Map<String, Value>, core: &str) {
    let mut schemas = match take_ci(map, "schemas") {
        Some(Value::Array(schemas)) => schemas,
        _ => Vec::new(),
    };
    let names_core = |s: &Value| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(core));
    if !schemas.iter().any(names_core) {
        schemas.insert(0, Value::String(core.into()));
    }
    map.insert("schemas".into(), Value::Array(schemas));
}

/// A group member as the IdP referenced it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberRef {
    pub value: String,
    /// `User` or `Group` when the IdP said so.
    pub kind: Option<String>,
    /// The IdP's display label for the member, when sent.
    pub display: Option<String>,
}

impl MemberRef {
    /// A member known by its value only.
    pub fn value(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            kind: None,
            display: None,
        }
    }
}

/// The indexed view of a group, and the members it was sent with.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFields {
    pub display_name: String,
    pub external_id: Option<String>,
    pub resource: Value,
}

impl GroupFields {
    /// Reads a POST/PUT body into a storable group and its members (`None`
    /// when the body has no `members` attribute at all).
    ///
    /// # Errors
    /// `InvalidSyntax` for a non-object, `InvalidValue` for a missing
    /// `displayName` or malformed members.
    pub fn from_scim(body: Value) -> Result<(Self, Option<Vec<MemberRef>>), ScimError> {
        let mut body = body;
        normalize_booleans(&mut body, ResourceKind::Group);
        let mut map = into_object(body)?;
        strip_server_owned(&mut map);
        let members = take_ci(&mut map, "members")
            .map(parse_members)
            .transpose()?;
        let fields = Self::from_map(map)?;
        Ok((fields, members))
    }

    /// Reads a group resource that has no `members` (after a PATCH).
    ///
    /// # Errors
    /// As [`GroupFields::from_scim`].
    pub fn from_resource(resource: Value) -> Result<Self, ScimError> {
        let mut map = into_object(resource)?;
        strip_server_owned(&mut map);
        take_ci(&mut map, "members");
        Self::from_map(map)
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, ScimError> {
        let display_name = match get_ci(&map, "displayName") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(ScimError::InvalidValue("displayName is required".into())),
        };
        let external_id = optional_string(&map, "externalId")?;
        ensure_schema(&mut map, GROUP_SCHEMA);
        Ok(Self {
            display_name,
            external_id,
            resource: Value::Object(map),
        })
    }
}

/// Parses a `members` value: an array of `{"value": ..., "type"?, "display"?, "$ref"?}`.
///
/// # Errors
/// `InvalidValue` when it is not an array of objects with a string `value`.
pub fn parse_members(value: Value) -> Result<Vec<MemberRef>, ScimError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        single @ Value::Object(_) => vec![single],
        _ => return Err(ScimError::InvalidValue("members must be an array".into())),
    };
    let mut seen = std::collections::HashSet::new();
    let mut members = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(map) = item else {
            return Err(ScimError::InvalidValue(
                "each member must be an object".into(),
            ));
        };
        let value = match get_ci(&map, "value") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(ScimError::InvalidValue(
                    "each member needs a string value".into(),
                ))
            }
        };
        let kind = optional_string(&map, "type")?
            .map(|kind| member_type(&kind))
            .transpose()?;
        let display = optional_string(&map, "display")?;
        if seen.insert(value.clone()) {
            members.push(MemberRef {
                value,
                kind,
                display,
            });
        }
    }
    Ok(members)
}

/// RFC 7643 §4.2: a member's `type` is "User" or "Group" (canonical values;
/// IdPs vary the case). Anything else names no resource orgsync could hold.
fn member_type(kind: &str) -> Result<String, ScimError> {
    ["User", "Group"]
        .into_iter()
        .find(|canonical| canonical.eq_ignore_ascii_case(kind.trim()))
        .map(str::to_owned)
        .ok_or_else(|| {
            ScimError::InvalidValue("a member's type must be \"User\" or \"Group\"".into())
        })
}

/// A stored directory user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: ResourceId,
    pub connection_id: ConnectionId,
    pub fields: UserFields,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl UserRecord {
    /// The user as its creation stores it: the first version, created `now`.
    pub fn created(
        id: ResourceId,
        connection_id: ConnectionId,
        fields: UserFields,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            connection_id,
            fields,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A group a user is in, as the user's read-only `groups` attribute shows it
/// (RFC 7643 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: ResourceId,
    pub display_name: String,
}

/// A user as a SCIM answer shows it: the record and, when asked for, the
/// groups it is in, ordered by displayName (case-insensitive), then id.
#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub record: UserRecord,
    pub groups: Vec<GroupRef>,
}

/// Whether a read of users brings each user's groups along (a SCIM answer
/// shows them unless `attributes`/`excludedAttributes` leave them out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithGroups {
    Yes,
    No,
}

/// A stored directory group (its members are fetched separately: a group may have 100k).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: ResourceId,
    pub connection_id: ConnectionId,
    pub fields: GroupFields,
    pub member_count: i64,
    pub version: i64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What `sortBy` may name: attributes with an index behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Id,
    UserName,
    DisplayName,
    ExternalId,
    Created,
    LastModified,
}

impl SortKey {
    /// # Errors
    /// `InvalidValue` for an attribute orgsync cannot sort by.
    pub fn parse(raw: &str, kind: ResourceKind) -> Result<Self, ScimError> {
        let name = raw
            .rsplit_once(':')
            .map_or(raw, |(_, n)| n)
            .to_ascii_lowercase();
        let key = match name.as_str() {
            "id" => Self::Id,
            "username" if kind == ResourceKind::User => Self::UserName,
            "displayname" => Self::DisplayName,
            "externalid" => Self::ExternalId,
            "meta.created" => Self::Created,
            "meta.lastmodified" => Self::LastModified,
            _ => {
                return Err(ScimError::InvalidValue(format!(
                    "cannot sort by {raw}; sortable: id, userName, displayName, externalId, meta.created, meta.lastModified"
                )))
            }
        };
        Ok(key)
    }
}

/// A list request: filter, order and window (1-based `start_index`).
#[derive(Debug, Clone)]
pub struct ScimQuery {
    pub filter: Option<Filter>,
    pub sort: Option<(SortKey, bool)>,
    pub start_index: u64,
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_user_keeps_unknown_attributes_and_drops_what_the_server_owns() {
        let user = UserFields::from_scim(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:custom"],
            "id": "client-chosen", "meta": {"version": "x"}, "password": "hunter2",
            "userName": "Alice@Example.com", "active": "False",
            "emails": [{"value": "a@x.com"}, {"value": "Alice@Example.com", "primary": true}],
            "urn:example:custom": {"badge": 7}
        }))
        .unwrap();
        assert_eq!(user.user_name, "Alice@Example.com");
        assert!(!user.active, "string booleans are coerced");
        assert_eq!(user.email.as_deref(), Some("alice@example.com"));
        assert_eq!(user.resource["urn:example:custom"]["badge"], 7);
        for gone in ["id", "meta", "password"] {
            assert!(user.resource.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn the_core_schema_is_always_listed_and_extensions_kept() {
        let core = json!("urn:ietf:params:scim:schemas:core:2.0:User");
        for (schemas, expected) in [
            (json!(null), json!([core])),
            (json!("urn:x"), json!([core])),
            (json!([]), json!([core])),
            (json!(["urn:x"]), json!([core, "urn:x"])),
            (json!(["urn:x", core]), json!(["urn:x", core])),
        ] {
            let user = UserFields::from_scim(json!({"schemas": schemas, "userName": "a"})).unwrap();
            assert_eq!(user.resource["schemas"], expected, "{schemas}");
        }
        let (group, _) =
            GroupFields::from_scim(json!({"schemas": ["urn:x"], "displayName": "g"})).unwrap();
        assert_eq!(
            group.resource["schemas"],
            json!(["urn:ietf:params:scim:schemas:core:2.0:Group", "urn:x"])
        );
    }

    #[test]
    fn a_user_without_user_name_is_refused() {
        for body in [
            json!({}),
            json!({"userName": ""}),
            json!({"userName": 3}),
            json!([1]),
        ] {
            assert!(UserFields::from_scim(body.clone()).is_err(), "{body}");
        }
    }

    #[test]
    fn group_members_are_read_with_or_without_type_and_deduplicated() {
        let (group, members) = GroupFields::from_scim(json!({
            "displayName": "Engineering",
            "members": [{"value": "u1", "type": "User", "display": "U"}, {"value": "u2", "$ref": "x"}, {"value": "u1"}]
        }))
        .unwrap();
        assert_eq!(group.display_name, "Engineering");
        assert!(group.resource.get("members").is_none());
        let members = members.unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].kind.as_deref(), Some("User"));
        assert_eq!(members[1].kind, None);
    }
}
