//! Edits inside multi-valued attributes: selecting values by filter, creating the value a
//! filter describes when none matches, removing by filter or by value, and keeping a single
//! `primary`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::json::{content_hash, find_key, put, wrap};
use super::target::{is_multi, Target};
use super::{PatchError, PatchOp};
use crate::scim::eval::matches_element;
use crate::scim::schema::ResourceKind;
use crate::scim::{CompValue, CompareOp, Filter};

/// Add/replace inside a multi-valued attribute, through a filter and/or a sub-attribute.
pub(super) fn set_in_elements(
    mut items: Vec<Value>,
    target: &Target<'_>,
    value: Value,
    op: PatchOp,
    kind: ResourceKind,
) -> Result<Vec<Value>, PatchError> {
    let selected: Vec<usize> = match target.filter {
        Some(filter) => (0..items.len())
            .filter(|&i| matches_element(filter, &items[i], kind, &target.attr))
            .collect(),
        None => (0..items.len()).collect(),
    };
    if selected.is_empty() {
        // Entra replaces `emails[type eq "work"].value` on users without a work email and
        // expects the element to be created; RFC 7644 would answer noTarget.
        let mut element = match target.filter {
            Some(filter) => template(filter).ok_or_else(|| {
                PatchError::NoTarget(format!(
                    "no value of '{}' matches the filter, and it cannot describe a new one",
                    target.key
                ))
            })?,
            None => Map::new(),
        };
        merge_into(&mut element, target.sub, value);
        items.push(Value::Object(element));
        let last = items.len().saturating_sub(1);
        single_primary(&mut items, last);
        return Ok(items);
    }
    for &i in &selected {
        let Some(slot) = items.get_mut(i) else {
            continue;
        };
        if !slot.is_object() {
            *slot = Value::Object(wrap(slot.take()));
        }
        if let (Value::Object(element), None, PatchOp::Replace) = (&mut *slot, target.sub, op) {
            // A whole-element replace keeps what the filter selected on, so the element still
            // answers to the same filter.
            let mut fresh = target.filter.and_then(template).unwrap_or_default();
            merge_into(&mut fresh, None, value.clone());
            *element = fresh;
        } else if let Value::Object(element) = slot {
            merge_into(element, target.sub, value.clone());
        }
    }
    if let Some(&last) = selected.last() {
        single_primary(&mut items, last);
    }
    Ok(items)
}

/// Writes `value` into one element: at `sub`, or merged when it is an object, or as the
/// element's `value` when it is a bare primitive.
fn merge_into(element: &mut Map<String, Value>, sub: Option<&str>, value: Value) {
    match (sub, value) {
        (Some(sub), value) => put(element, sub, value),
        (None, Value::Object(incoming)) => {
            for (name, v) in incoming {
                put(element, &name, v);
            }
        }
        (None, other) => put(element, "value", other),
    }
}

/// The element a filter of `eq` clauses joined by `and` describes, e.g. `type eq "work"`.
fn template(filter: &Filter) -> Option<Map<String, Value>> {
    let mut element = Map::new();
    collect_eq(filter, &mut element)?;
    (!element.is_empty()).then_some(element)
}

fn collect_eq(filter: &Filter, element: &mut Map<String, Value>) -> Option<()> {
    match filter {
        Filter::And(lhs, rhs) => {
            collect_eq(lhs, element)?;
            collect_eq(rhs, element)
        }
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.uri.is_none() && path.sub.is_none() => {
            let value = match value {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::Num(n) => Value::Number(n.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Null => return None,
            };
            element.insert(path.name.clone(), value);
            Some(())
        }
        _ => None,
    }
}

pub(super) fn remove(
    map: &mut Map<String, Value>,
    key: &str,
    target: &Target<'_>,
    value: Option<&Value>,
    kind: ResourceKind,
) -> Result<(), PatchError> {
    let Some(current) = map.get_mut(key) else {
        return Ok(());
    };
    let multi = is_multi(target, Some(current), None);
    match (multi, target.filter, target.sub) {
        (true, None, None) => match value {
            // OneLogin/Entra: `{"op":"remove","path":"emails","value":[{"value":"a@b"}]}`.
            Some(given) if !given.is_null() => {
                let given = match given {
                    Value::Array(items) => items.clone(),
                    single => vec![single.clone()],
                };
                // Hashed, not a scan per stored value: both lists may be long.
                let mut whole: HashMap<u64, Vec<&Value>> = HashMap::new();
                let mut ids: HashMap<u64, Vec<Value>> = HashMap::new();
                for g in &given {
                    whole.entry(content_hash(g)).or_default().push(g);
                    if let Some(id) = value_id(g).filter(|id| !id.is_null()) {
                        ids.entry(content_hash(&id)).or_default().push(id);
                    }
                }
                let mut items = take_array(map, key);
                items.retain(|item| {
                    let equal = whole
                        .get(&content_hash(item))
                        .is_some_and(|bucket| bucket.contains(&item));
                    let same_id = value_id(item).is_some_and(|id| {
                        ids.get(&content_hash(&id))
                            .is_some_and(|bucket| bucket.contains(&id))
                    });
                    !(equal || same_id)
                });
                restore_array(map, key, items);
            }
            _ => {
                map.remove(key);
            }
        },
        (true, filter, sub) => {
            let mut items = take_array(map, key);
            let template = filter.and_then(template).unwrap_or_default();
            items.retain_mut(|item| {
                let selected = filter.is_none_or(|f| matches_element(f, item, kind, &target.attr));
                match (selected, sub, item.as_object_mut()) {
                    (false, _, _) => true,
                    (true, None, _) => false,
                    (true, Some(sub), Some(element)) => {
                        if let Some(k) = find_key(element, sub) {
                            element.remove(&k);
                        }
                        // `remove emails[type eq "work"].value` leaves `{"type": "work"}`,
                        // which describes nothing; drop such husks.
                        element.keys().any(|k| {
                            !template.contains_key(k) && !k.eq_ignore_ascii_case("primary")
                        })
                    }
                    (true, Some(_), None) => true,
                }
            });
            restore_array(map, key, items);
        }
        (false, _, Some(sub)) => {
            if let Value::Object(parent) = current {
                if let Some(k) = find_key(parent, sub) {
                    parent.remove(&k);
                }
                if parent.is_empty() {
                    map.remove(key);
                }
            }
        }
        (false, _, None) => {
            map.remove(key);
        }
    }
    Ok(())
}

/// What identifies an element: its `value`, or the element itself when it is a primitive.
fn value_id(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => find_key(m, "value").and_then(|k| m.get(&k).cloned()),
        other => Some(other.clone()),
    }
}

pub(super) fn take_array(map: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match map.remove(key) {
        Some(Value::Array(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(single) => vec![single],
    }
}

fn restore_array(map: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    if !items.is_empty() {
        map.insert(key.to_owned(), Value::Array(items));
    }
}

/// RFC 7643 §2.4: at most one value may be `primary`. The element just written wins.
pub(super) fn single_primary(items: &mut [Value], keep: usize) {
    let is_primary = |v: &Value| v.get("primary").and_then(Value::as_bool) == Some(true);
    if !items.get(keep).is_some_and(is_primary) {
        return;
    }
    for (i, item) in items.iter_mut().enumerate() {
        if i != keep && is_primary(item) {
            if let Some(element) = item.as_object_mut() {
                element.insert("primary".into(), Value::Bool(false));
            }
        }
    }
}
