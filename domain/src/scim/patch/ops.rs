//! One PATCH operation against its resolved target: the mutability rules,
//! and add, replace and remove on the JSON.

use serde_json::{Map, Value};

use super::coerce::{coerce_attribute, coerce_element};
use super::json::{find_key, put, with_object, ValueSet};
use super::members;
use super::multi::{remove, set_in_elements, single_primary, take_array};
use super::target::{is_complex, is_core_attr, is_multi, resolve, Origin, Target};
use super::{MemberChange, PatchError, PatchOp};
use crate::scim::schema::{Mutability, ResourceKind};
use crate::scim::PatchPath;

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
