//! JSON objects as SCIM reads them: keys match ignoring case (RFC 7643
//! §2.1), a bare value stands for `{"value": ..}`, and array elements are
//! compared by content whatever their key order.

use serde_json::{Map, Value};

/// The key spelled like `name` in `map`: exact first, then ignoring case (RFC 7643 §2.1).
pub(super) fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    if map.contains_key(name) {
        return Some(name.to_owned());
    }
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
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
