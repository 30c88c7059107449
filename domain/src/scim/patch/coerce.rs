//! Bringing client values to the types the schema declares, leniently: IdPs send booleans as
//! strings (`"False"`), numbers where strings are due (`employeeNumber: 42`) and a bare id
//! where a complex value is due (Entra's `manager`). What cannot be read as the declared type
//! is an `invalidValue` error; attributes outside the schema pass through untouched.

use serde_json::{Map, Value};

use super::PatchError;
use crate::scim::eval::parse_bool;
use crate::scim::schema::{AttrType, AttributeDef, ResourceKind, COMMON_ATTRIBUTES};

/// A whole attribute's value: an array (or a single element) for multi-valued attributes.
pub(super) fn coerce_attribute(
    value: &Value,
    def: Option<&AttributeDef>,
) -> Result<Value, PatchError> {
    match (def, value) {
        (Some(d), Value::Array(items)) if d.multi_valued => items
            .iter()
            .map(|item| coerce_element(item, def))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        (Some(d), Value::Array(_)) => Err(PatchError::InvalidValue(format!(
            "'{}' is single-valued and cannot take an array",
            d.name
        ))),
        _ => coerce_element(value, def),
    }
}

/// One value of an attribute (the whole value when single-valued).
pub(super) fn coerce_element(
    value: &Value,
    def: Option<&AttributeDef>,
) -> Result<Value, PatchError> {
    let Some(def) = def else {
        return Ok(value.clone());
    };
    let invalid =
        |expected: &str| PatchError::InvalidValue(format!("'{}' expects {expected}", def.name));
    Ok(match (def.kind, value) {
        (_, Value::Null) => Value::Null,
        (AttrType::Boolean, Value::Bool(_)) => value.clone(),
        (AttrType::Boolean, Value::String(s)) => {
            Value::Bool(parse_bool(s.trim()).ok_or_else(|| invalid("a boolean"))?)
        }
        (AttrType::Boolean, _) => return Err(invalid("a boolean")),
        (AttrType::Integer | AttrType::Decimal, Value::Number(_)) => value.clone(),
        (AttrType::Integer | AttrType::Decimal, Value::String(s)) => {
            Value::Number(serde_json::from_str(s.trim()).map_err(|_| invalid("a number"))?)
        }
        (AttrType::Integer | AttrType::Decimal, _) => return Err(invalid("a number")),
        (AttrType::Complex, Value::Object(members)) => {
            let mut out = Map::new();
            for (name, v) in members {
                let coerced = match def.sub_attribute(name) {
                    Some(sub) => coerce_element(v, Some(sub))?,
                    None => v.clone(),
                };
                out.insert(name.clone(), coerced);
            }
            Value::Object(out)
        }
        (AttrType::Complex, Value::Array(_)) => return Err(invalid("an object")),
        (AttrType::Complex, primitive) => {
            let mut out = Map::new();
            out.insert(
                "value".into(),
                coerce_element(primitive, def.sub_attribute("value"))?,
            );
            Value::Object(out)
        }
        (_, Value::String(_)) => value.clone(),
        (_, Value::Number(n)) => Value::String(n.to_string()),
        (_, Value::Bool(b)) => Value::String(b.to_string()),
        (_, Value::Array(_) | Value::Object(_)) => return Err(invalid("a string")),
    })
}

/// Turns string booleans (`"True"`, `"false"`) into JSON booleans wherever the schema says
/// Boolean, in a POST or PUT body of a `kind` resource. Anything else is left as it is; this
/// never fails, so validation stays with the caller.
pub fn normalize_booleans(resource: &mut Value, kind: ResourceKind) {
    let Value::Object(top) = resource else {
        return;
    };
    for (key, value) in top.iter_mut() {
        if let Some(schema) = kind.extension(key) {
            if let Value::Object(inner) = value {
                for (name, v) in inner.iter_mut() {
                    fix_booleans(v, schema.attribute(name));
                }
            }
            continue;
        }
        let def = kind.core_schema().attribute(key).or_else(|| {
            COMMON_ATTRIBUTES
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(key))
        });
        fix_booleans(value, def);
    }
}

fn fix_booleans(value: &mut Value, def: Option<&AttributeDef>) {
    let Some(def) = def else {
        return;
    };
    match value {
        Value::String(s) if def.kind == AttrType::Boolean => {
            if let Some(b) = parse_bool(s.trim()) {
                *value = Value::Bool(b);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| fix_booleans(item, Some(def))),
        Value::Object(members) if def.kind == AttrType::Complex => {
            for (name, v) in members.iter_mut() {
                fix_booleans(v, def.sub_attribute(name));
            }
        }
        _ => {}
    }
}
