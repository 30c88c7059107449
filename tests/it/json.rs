//! Reading the JSON the service answers: the items of a list and the
//! strings they hold, failing the test with the document when its shape is
//! not the one asked for.

use serde_json::Value;

/// The items of a JSON array.
pub(crate) fn items(list: &Value) -> std::slice::Iter<'_, Value> {
    match list.as_array() {
        Some(items) => items.iter(),
        None => panic!("expected an array, got {list}"),
    }
}

/// The string `key` of each item of a JSON array, in the list's order.
pub(crate) fn strings<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    items(list)
        .map(|item| match item[key].as_str() {
            Some(value) => value,
            None => panic!("expected a string {key} in {item}"),
        })
        .collect()
}
