//! Applying SCIM PATCH operations (RFC 7644 §3.5.2) to a resource held as JSON.
//!
//! The request model accepts what identity providers actually send: `op` in any case
//! (`Add`, `replace`, `Remove`), path-less values whose keys are paths (`name.givenName`,
//! `urn:...:enterprise:2.0:User:department`) or whole extension objects, booleans inside
//! strings (`"False"`), a bare id where a complex value is expected (Entra's `manager`), and
//! a filtered `add`/`replace` that matches nothing creating the element it describes.
//!
//! Invariants:
//! - All operations of a request apply, or none: [`apply_patch`] works on a copy and writes
//!   it back only when every operation succeeded.
//! - Data outside the known schemas is kept as sent; orgsync never drops what a client stored.
//! - A Group's `members` never live in its JSON (a group may have 100k members, stored as
//!   rows), so member operations are returned as [`MemberChange`]s for the caller to apply.

mod coerce;
mod json;
mod members;
mod multi;
mod ops;
mod target;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::schema::ResourceKind;
use super::{AttrPath, PatchPath};

pub use coerce::normalize_booleans;

/// The `schemas` value every PATCH request must carry.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PATCH request body.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PatchRequest {
    #[serde(default)]
    pub schemas: Vec<String>,
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOperation>,
}

impl PatchRequest {
    /// Checks the envelope: the PatchOp schema URN and at least one operation.
    ///
    /// # Errors
    /// [`PatchError::InvalidSyntax`] when either is missing.
    pub fn validate(&self) -> Result<(), PatchError> {
        if !self
            .schemas
            .iter()
            .any(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        {
            return Err(PatchError::InvalidSyntax(format!(
                "'schemas' must contain \"{PATCH_OP_SCHEMA}\""
            )));
        }
        if self.operations.is_empty() {
            return Err(PatchError::InvalidSyntax(
                "'Operations' must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// One entry of `Operations`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PatchOperation {
    pub op: PatchOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Some(Value::Null)` for an explicit `"value": null`, which unassigns (RFC 7643 §2.5);
    /// `None` when the member is missing.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchOp {
    Add,
    Remove,
    Replace,
}

impl PatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Replace => "replace",
        }
    }
}

// By hand rather than derived: Entra sends `Add`/`Replace`/`Remove`, the RFC lowercase.
impl<'de> Deserialize<'de> for PatchOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        [Self::Add, Self::Remove, Self::Replace]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown PATCH op '{text}', expected add, remove or replace"
                ))
            })
    }
}

impl Serialize for PatchOp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A change to a Group's membership, for the caller to apply to its member rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    RemoveAll,
    ReplaceAll(Vec<String>),
}

impl MemberChange {
    /// The member values the change names (a clear names none).
    pub fn values(&self) -> &[String] {
        match self {
            Self::Add(values) | Self::Remove(values) | Self::ReplaceAll(values) => values,
            Self::RemoveAll => &[],
        }
    }
}

/// What [`apply_patch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchOutcome {
    /// Whether the resource's JSON changed.
    pub changed: bool,
    /// Membership changes, in request order (Groups only).
    pub member_changes: Vec<MemberChange>,
}

/// Why a PATCH was refused; each maps to an RFC 7644 §3.12 `scimType`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    NoTarget(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    Mutability(String),
    #[error("{0}")]
    InvalidSyntax(String),
}

impl PatchError {
    pub fn scim_type(&self) -> &'static str {
        match self {
            Self::InvalidPath(_) => "invalidPath",
            Self::NoTarget(_) => "noTarget",
            Self::InvalidValue(_) => "invalidValue",
            Self::Mutability(_) => "mutability",
            Self::InvalidSyntax(_) => "invalidSyntax",
        }
    }

    /// Prefixes the message with the operation's index, so clients see which one failed.
    fn in_operation(self, index: usize) -> Self {
        let at = |m: String| format!("Operations[{index}]: {m}");
        match self {
            Self::InvalidPath(m) => Self::InvalidPath(at(m)),
            Self::NoTarget(m) => Self::NoTarget(at(m)),
            Self::InvalidValue(m) => Self::InvalidValue(at(m)),
            Self::Mutability(m) => Self::Mutability(at(m)),
            Self::InvalidSyntax(m) => Self::InvalidSyntax(at(m)),
        }
    }
}

/// Applies `ops` in order to `resource`, a `kind` resource's JSON object.
///
/// Atomic: the operations run on a copy that replaces `resource` only if all succeed, so on
/// `Err` the resource is untouched and no member change should be applied. Callers that keep
/// the resource elsewhere still pass a copy they can discard.
///
/// # Errors
/// The first failing operation's [`PatchError`], its message prefixed with its index.
pub fn apply_patch(
    resource: &mut Value,
    ops: &[PatchOperation],
    kind: ResourceKind,
) -> Result<PatchOutcome, PatchError> {
    let Value::Object(original) = resource else {
        return Err(PatchError::InvalidValue(
            "the resource is not a JSON object".into(),
        ));
    };
    let mut work = original.clone();
    let mut member_changes = Vec::new();
    for (index, op) in ops.iter().enumerate() {
        apply_one(&mut work, op, kind, &mut member_changes).map_err(|e| e.in_operation(index))?;
    }
    let changed = work != *original;
    if changed {
        *original = work;
    }
    Ok(PatchOutcome {
        changed,
        member_changes,
    })
}

fn apply_one(
    work: &mut Map<String, Value>,
    op: &PatchOperation,
    kind: ResourceKind,
    members: &mut Vec<MemberChange>,
) -> Result<(), PatchError> {
    let path = op.path.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let Some(path) = path else {
        return apply_without_path(work, op, kind, members);
    };
    if let Some(schema) = kind.extension(path) {
        return apply_to_extension(work, op, schema.id, kind, members);
    }
    let path = PatchPath::parse(path).map_err(|e| PatchError::InvalidPath(e.to_string()))?;
    ops::apply_at(
        work,
        op.op,
        &path,
        op.value.as_ref(),
        kind,
        members,
        target::Origin::Path,
    )
}

/// A path naming a whole extension: its object is replaced, merged into, or removed.
fn apply_to_extension(
    work: &mut Map<String, Value>,
    op: &PatchOperation,
    uri: &str,
    kind: ResourceKind,
    members: &mut Vec<MemberChange>,
) -> Result<(), PatchError> {
    let existing = work.keys().find(|k| k.eq_ignore_ascii_case(uri)).cloned();
    match (op.op, &op.value) {
        (PatchOp::Remove, _) | (_, Some(Value::Null)) => {
            if let Some(key) = existing {
                work.remove(&key);
            }
            Ok(())
        }
        (_, Some(Value::Object(_))) => {
            if let (PatchOp::Replace, Some(key)) = (op.op, existing) {
                work.remove(&key);
            }
            let mut wrapped = Map::new();
            wrapped.insert(uri.to_owned(), op.value.clone().unwrap_or_default());
            let as_path_less = PatchOperation {
                op: op.op,
                path: None,
                value: Some(Value::Object(wrapped)),
            };
            apply_without_path(work, &as_path_less, kind, members)
        }
        _ => Err(PatchError::InvalidValue(format!(
            "'{uri}' expects an object"
        ))),
    }
}

/// Path-less add/replace: each key of `value` is a target of its own (RFC 7644 §3.5.2.1).
fn apply_without_path(
    work: &mut Map<String, Value>,
    op: &PatchOperation,
    kind: ResourceKind,
    members: &mut Vec<MemberChange>,
) -> Result<(), PatchError> {
    if op.op == PatchOp::Remove {
        return Err(PatchError::NoTarget("'remove' requires a 'path'".into()));
    }
    let Some(Value::Object(attributes)) = &op.value else {
        return Err(PatchError::InvalidValue(format!(
            "'{}' without a 'path' needs a 'value' object of attributes",
            op.op.as_str()
        )));
    };
    let mut apply_key = |path: &PatchPath, value: &Value| {
        ops::apply_at(
            work,
            op.op,
            path,
            Some(value),
            kind,
            members,
            target::Origin::ValueKey,
        )
    };
    for (key, value) in attributes {
        // `schemas` describes the resource rather than being an attribute of it.
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        match extension_object(key, value, kind) {
            Some((uri, inner)) => {
                for (name, value) in inner {
                    // Some clients echo `schemas` inside an extension object; it is not an attribute.
                    if name.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    let mut path = parse_key(name)?;
                    path.attr.uri = Some(uri.to_owned());
                    apply_key(&path, value)?;
                }
            }
            None => apply_key(&parse_key(key)?, value)?,
        }
    }
    Ok(())
}

/// Whether a path-less key is a whole schema's object (`"urn:...:enterprise:2.0:User": {..}`)
/// rather than one attribute. Known schema URNs are recognised exactly; an unknown `urn:` key
/// holding an object is taken as a custom extension (Okta and OneLogin send those), since a
/// complex attribute named by a full URN is far rarer.
fn extension_object<'v>(
    key: &'v str,
    value: &'v Value,
    kind: ResourceKind,
) -> Option<(&'v str, &'v Map<String, Value>)> {
    let Value::Object(inner) = value else {
        return None;
    };
    if kind.schema(key).is_some() {
        return Some((key, inner));
    }
    let attr = AttrPath::parse(key).ok()?;
    let uri = attr.uri.as_deref()?;
    match kind.schema(uri) {
        Some(_) => None,
        None => Some((key, inner)),
    }
}

fn parse_key(key: &str) -> Result<PatchPath, PatchError> {
    PatchPath::parse(key).map_err(|e| PatchError::InvalidPath(format!("value key '{key}': {e}")))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vendor_tests;
