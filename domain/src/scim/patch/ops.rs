//! One PATCH operation against one target: resolving the path against the schema, the
//! mutability rules, and add/replace/remove on the JSON.

use serde_json::{Map, Value};

use super::coerce::{coerce_attribute, coerce_element};
use super::members;
use super::multi::{remove, set_in_elements, single_primary, take_array};
use super::{MemberChange, PatchError, PatchOp};
use crate::scim::schema::{AttrType, AttributeDef, Mutability, ResourceKind, COMMON_ATTRIBUTES};
use crate::scim::{AttrPath, Filter, PatchPath};

/// Where a target came from: an explicit `path`, or a key of a path-less `value`. Read-only
/// attributes in path-less values are ignored rather than refused, because Okta echoes the
/// group's `id` in them (`{"id": ..., "displayName": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    Path,
    ValueKey,
}

/// A path resolved against the schema.
pub(super) struct Target<'p> {
    /// The extension object holding the attribute; `None` for the resource root.
    pub(super) container: Option<String>,
    /// The attribute's key: its schema spelling when known.
    pub(super) key: String,
    pub(super) def: Option<&'static AttributeDef>,
    pub(super) sub: Option<&'p str>,
    pub(super) sub_def: Option<&'static AttributeDef>,
    pub(super) filter: Option<&'p Filter>,
    /// URN and name, for evaluating the value filter with the right case rules.
    pub(super) attr: AttrPath,
}

pub(super) fn apply_at(
    work: &mut Map<String, Value>,
    op: PatchOp,
    path: &PatchPath,
    value: Option<&Value>,
    kind: ResourceKind,
    member_changes: &mut Vec<MemberChange>,
    origin: Origin,
) -> Result<(), PatchError> {
    if kind == ResourceKind::Group && is_core_attr(path, kind, "members") {
        if let Some(change) = members::change(op, path, value)? {
            member_changes.push(change);
        }
        return Ok(());
    }
    let target = resolve(path, kind)?;
    if op != PatchOp::Remove && value.is_none() {
        return Err(PatchError::InvalidValue(format!(
            "'{}' requires a 'value'",
            op.as_str()
        )));
    }
    // Setting null unassigns (RFC 7643 §2.5), so it is checked and applied as a remove.
    let op = if value.is_some_and(Value::is_null) {
        PatchOp::Remove
    } else {
        op
    };
    if !check_mutability(work, &target, op, value, origin)? {
        return Ok(());
    }
    let value = match (op, value) {
        (PatchOp::Add | PatchOp::Replace, Some(v)) => Some(coerce_target(&target, v)?),
        (_, v) => v.cloned(),
    };
    let Some(container) = container_mut(work, target.container.as_deref(), op != PatchOp::Remove)?
    else {
        return Ok(());
    };
    let key = find_key(container, &target.key).unwrap_or_else(|| target.key.clone());
    match op {
        PatchOp::Remove => remove(container, &key, &target, value.as_ref(), kind),
        PatchOp::Add | PatchOp::Replace => {
            let value = value.unwrap_or(Value::Null);
            set(container, &key, &target, value, op, kind)
        }
    }?;
    if let Some(uri) = &target.container {
        // An extension emptied by a remove should not linger as `{}`.
        let empty = work
            .get(uri)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty);
        if empty {
            work.remove(uri);
        }
    }
    Ok(())
}

fn is_core_attr(path: &PatchPath, kind: ResourceKind, name: &str) -> bool {
    path.attr.is(name)
        && path
            .attr
            .uri
            .as_deref()
            .is_none_or(|u| kind.core_schema().id.eq_ignore_ascii_case(u))
}

fn resolve(path: &PatchPath, kind: ResourceKind) -> Result<Target<'_>, PatchError> {
    let attr = &path.attr;
    let (container, def, known_schema) = match &attr.uri {
        None => {
            let def = kind
                .core_schema()
                .attribute(&attr.name)
                .or_else(|| common(&attr.name));
            (None, def, false)
        }
        Some(uri) => match kind.schema(uri) {
            Some(schema) if schema.id == kind.core_schema().id => {
                (None, schema.attribute(&attr.name), true)
            }
            Some(schema) => (
                Some(schema.id.to_owned()),
                schema.attribute(&attr.name),
                true,
            ),
            None => (Some(uri.clone()), None, false),
        },
    };
    if known_schema && def.is_none() {
        return Err(PatchError::InvalidPath(format!(
            "'{attr}' is not an attribute of its schema"
        )));
    }
    let sub = path.sub_attribute();
    if path.filter.is_some() && path.attr.sub.is_some() {
        return Err(PatchError::InvalidPath(format!(
            "'{path}': a filter must follow the attribute"
        )));
    }
    let sub_def = match (def, sub) {
        (Some(def), Some(sub)) => {
            if def.kind != AttrType::Complex {
                return Err(PatchError::InvalidPath(format!(
                    "'{}' has no sub-attributes",
                    def.name
                )));
            }
            let sub_def = def.sub_attribute(sub);
            if sub_def.is_none() {
                return Err(PatchError::InvalidPath(format!(
                    "'{}' has no sub-attribute '{sub}'",
                    def.name
                )));
            }
            sub_def
        }
        _ => None,
    };
    if let (Some(def), Some(_)) = (def, &path.filter) {
        if !def.multi_valued {
            return Err(PatchError::InvalidPath(format!(
                "'{}' is single-valued and cannot take a filter",
                def.name
            )));
        }
    }
    let key = def.map_or_else(|| attr.name.clone(), |d| d.name.to_owned());
    Ok(Target {
        attr: AttrPath {
            uri: container.clone(),
            name: key.clone(),
            sub: None,
        },
        container,
        key,
        def,
        sub: sub_def.map(|d| d.name).or(sub),
        sub_def,
        filter: path.filter.as_ref(),
    })
}

fn common(name: &str) -> Option<&'static AttributeDef> {
    COMMON_ATTRIBUTES
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

fn coerce_target(target: &Target<'_>, value: &Value) -> Result<Value, PatchError> {
    match (target.sub, target.filter) {
        (Some(_), _) => coerce_element(value, target.sub_def),
        (None, Some(_)) => coerce_element(value, target.def),
        (None, None) => coerce_attribute(value, target.def),
    }
}

/// `Ok(false)` means: skip this target silently.
fn check_mutability(
    work: &Map<String, Value>,
    target: &Target<'_>,
    op: PatchOp,
    value: Option<&Value>,
    origin: Origin,
) -> Result<bool, PatchError> {
    let Some(def) = target.def else {
        return Ok(true);
    };
    let read_only = def.mutability == Mutability::ReadOnly
        || target
            .sub_def
            .is_some_and(|d| d.mutability == Mutability::ReadOnly);
    if read_only {
        if origin == Origin::ValueKey {
            return Ok(false);
        }
        let current = find_key(work, def.name).and_then(|k| work.get(&k));
        let unchanged = op != PatchOp::Remove
            && target.sub.is_none()
            && target.filter.is_none()
            && current == value;
        return if unchanged {
            Ok(false)
        } else {
            Err(PatchError::Mutability(format!(
                "'{}' is read-only",
                def.name
            )))
        };
    }
    let removes_whole = target.sub.is_none() && target.filter.is_none();
    if op == PatchOp::Remove && removes_whole && def.required && value.is_none_or(Value::is_null) {
        // RFC 7644 §3.5.2.2: unassigning a required attribute is a mutability error.
        return Err(PatchError::Mutability(format!(
            "'{}' is required and cannot be removed",
            def.name
        )));
    }
    Ok(true)
}

/// The map holding the target attribute: the root or an extension object, created on demand
/// (and then listed in `schemas`).
fn container_mut<'a>(
    work: &'a mut Map<String, Value>,
    uri: Option<&str>,
    create: bool,
) -> Result<Option<&'a mut Map<String, Value>>, PatchError> {
    let Some(uri) = uri else {
        return Ok(Some(work));
    };
    let key = match find_key(work, uri) {
        Some(key) => key,
        None if create => {
            if let Some(Value::Array(schemas)) = work.get_mut("schemas") {
                if !schemas
                    .iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(uri)))
                {
                    schemas.push(Value::String(uri.to_owned()));
                }
            }
            work.insert(uri.to_owned(), Value::Object(Map::new()));
            uri.to_owned()
        }
        None => return Ok(None),
    };
    match work.get_mut(&key) {
        Some(Value::Object(map)) => Ok(Some(map)),
        _ => Err(PatchError::InvalidValue(format!(
            "'{uri}' does not hold an object"
        ))),
    }
}

/// The key spelled like `name` in `map`: exact first, then ignoring case (RFC 7643 §2.1).
pub(super) fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

pub(super) fn is_multi(
    target: &Target<'_>,
    current: Option<&Value>,
    value: Option<&Value>,
) -> bool {
    match target.def {
        Some(def) => def.multi_valued,
        None => {
            matches!(current, Some(Value::Array(_)))
                || (current.is_none() && matches!(value, Some(Value::Array(_))))
        }
    }
}

fn is_complex(target: &Target<'_>, current: Option<&Value>, value: &Value) -> bool {
    match target.def {
        Some(def) => def.kind == AttrType::Complex,
        None => current.is_some_and(Value::is_object) && value.is_object(),
    }
}

fn set(
    map: &mut Map<String, Value>,
    key: &str,
    target: &Target<'_>,
    value: Value,
    op: PatchOp,
    kind: ResourceKind,
) -> Result<(), PatchError> {
    let current = map.get(key);
    let multi = is_multi(target, current, Some(&value));
    if multi && (target.filter.is_some() || target.sub.is_some()) {
        let items = take_array(map, key);
        let items = set_in_elements(items, target, value, op, kind)?;
        map.insert(key.to_owned(), Value::Array(items));
        return Ok(());
    }
    if multi {
        let incoming = match value {
            Value::Array(items) => items,
            single => vec![single],
        };
        let mut items = if op == PatchOp::Add {
            take_array(map, key)
        } else {
            Vec::new()
        };
        // Linear, not quadratic: a PATCH may carry tens of thousands of values.
        let mut present = ValueSet::of(&items);
        let mut newest_primary = None;
        for item in incoming {
            if present.insert(&items, &item) {
                if item.get("primary").and_then(Value::as_bool) == Some(true) {
                    newest_primary = Some(items.len());
                }
                items.push(item);
            }
        }
        if let Some(last) = newest_primary {
            single_primary(&mut items, last);
        }
        if items.is_empty() {
            map.remove(key);
        } else {
            map.insert(key.to_owned(), Value::Array(items));
        }
        return Ok(());
    }
    if let Some(sub) = target.sub {
        with_object(map, key, |parent| put(parent, sub, value));
        return Ok(());
    }
    if is_complex(target, current, &value) {
        // RFC 7644 §3.5.2.3: sub-attributes not in `value` are left unchanged, for add and replace.
        let Value::Object(incoming) = value else {
            return Err(PatchError::InvalidValue(format!(
                "'{key}' expects an object"
            )));
        };
        with_object(map, key, |parent| {
            for (name, v) in incoming {
                put(parent, &name, v);
            }
        });
        return Ok(());
    }
    map.insert(key.to_owned(), value);
    Ok(())
}

/// Which values an array already holds, by a hash of their content (JSON
/// values are not `Hash`); equal hashes are confirmed with `==`.
pub(super) struct ValueSet(std::collections::HashMap<u64, Vec<usize>>);

impl ValueSet {
    pub(super) fn of(items: &[Value]) -> Self {
        let mut set = Self(std::collections::HashMap::with_capacity(items.len()));
        for (i, item) in items.iter().enumerate() {
            set.0.entry(content_hash(item)).or_default().push(i);
        }
        set
    }

    /// Records `item` as the next element of `items` unless an equal one is
    /// there; `true` when it was new.
    pub(super) fn insert(&mut self, items: &[Value], item: &Value) -> bool {
        let slots = self.0.entry(content_hash(item)).or_default();
        if slots
            .iter()
            .any(|&i| items.get(i).is_some_and(|existing| existing == item))
        {
            return false;
        }
        slots.push(items.len());
        true
    }
}

/// A hash of a JSON value that equal values share whatever their key order.
pub(super) fn content_hash(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Null => 0u8.hash(&mut hasher),
            Value::Bool(b) => (1u8, b).hash(&mut hasher),
            Value::Number(n) => (2u8, n.to_string()).hash(&mut hasher),
            Value::String(s) => (3u8, s).hash(&mut hasher),
            Value::Array(items) => {
                (4u8, items.len()).hash(&mut hasher);
                pending.extend(items.iter().rev());
            }
            Value::Object(map) => {
                // Keys in sorted order, so insertion order does not matter.
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                (5u8, keys.len()).hash(&mut hasher);
                for key in keys.iter().rev() {
                    if let Some(v) = map.get(*key) {
                        pending.push(v);
                    }
                }
                keys.hash(&mut hasher);
            }
        }
    }
    hasher.finish()
}

/// Sets `name` in `map` reusing an existing key's spelling; null removes it.
pub(super) fn put(map: &mut Map<String, Value>, name: &str, value: Value) {
    let key = find_key(map, name).unwrap_or_else(|| name.to_owned());
    if value.is_null() {
        map.remove(&key);
    } else {
        map.insert(key, value);
    }
}

/// Runs `f` on the object at `key`, creating it, or wrapping a bare value as `{"value": ..}`
/// (Entra sends `manager` as a bare id); an object left empty is removed.
pub(super) fn with_object(
    map: &mut Map<String, Value>,
    key: &str,
    f: impl FnOnce(&mut Map<String, Value>),
) {
    let mut inner = match map.remove(key) {
        Some(Value::Object(inner)) => inner,
        Some(Value::Null) | None => Map::new(),
        Some(other) => wrap(other),
    };
    f(&mut inner);
    if !inner.is_empty() {
        map.insert(key.to_owned(), Value::Object(inner));
    }
}

pub(super) fn wrap(value: Value) -> Map<String, Value> {
    let mut element = Map::new();
    if !value.is_null() {
        element.insert("value".into(), value);
    }
    element
}
