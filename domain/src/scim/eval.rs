//! Evaluating a [`Filter`] against a resource held as JSON, with RFC 7643 §2.5 / RFC 7644
//! §3.4.2.2 semantics:
//!
//! - attribute names and schema URNs match case-insensitively; string values too, unless the
//!   schema marks the attribute `caseExact`;
//! - a multi-valued attribute matches when any of its values does;
//! - `pr` needs a value that is not null, `""`, `[]` or `{}`;
//! - `gt`/`ge`/`lt`/`le` never match booleans or complex values;
//! - strings that both parse as RFC 3339 instants compare as instants, numbers numerically.
//!
//! Leniencies, because IdPs rely on them: a complex value compared with a literal is compared
//! through its `value` sub-attribute (`members eq "id"`), a stored string compared with an
//! unquoted number compares as text (`employeeNumber eq 42`), and a string literal compared
//! with a stored boolean is read as a boolean (`active eq "True"`).
//!
//! An attribute that is absent matches `ne x` and `eq null`, and nothing else.

use std::cmp::Ordering;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::schema::{find_attribute, AttrType, ResourceKind};
use super::{AttrPath, CompValue, CompareOp, Filter};

impl Filter {
    /// Whether `resource` (a User or Group in its JSON representation) matches this filter.
    pub fn matches(&self, resource: &Value, kind: ResourceKind) -> bool {
        eval(self, resource, &Scope { kind, parent: None })
    }
}

/// Where paths are resolved: at the resource root, or inside one value of a multi-valued
/// attribute (`parent`) while evaluating a value filter.
struct Scope<'a> {
    kind: ResourceKind,
    parent: Option<&'a AttrPath>,
}

impl Scope<'_> {
    /// The schema path `path` stands for, for case-exactness and type lookups.
    fn schema_path(&self, path: &AttrPath) -> AttrPath {
        match self.parent {
            Some(parent) => AttrPath {
                uri: parent.uri.clone(),
                name: parent.name.clone(),
                sub: Some(path.name.clone()),
            },
            None => path.clone(),
        }
    }

    fn case_exact(&self, path: &AttrPath) -> bool {
        find_attribute(self.kind, &self.schema_path(path)).is_some_and(|d| d.case_exact)
    }

    fn is_datetime(&self, path: &AttrPath) -> bool {
        find_attribute(self.kind, &self.schema_path(path))
            .is_some_and(|d| d.kind == AttrType::DateTime)
    }
}

fn eval(filter: &Filter, node: &Value, scope: &Scope<'_>) -> bool {
    match filter {
        Filter::And(lhs, rhs) => eval(lhs, node, scope) && eval(rhs, node, scope),
        Filter::Or(lhs, rhs) => eval(lhs, node, scope) || eval(rhs, node, scope),
        Filter::Not(inner) => !eval(inner, node, scope),
        Filter::Present(path) => resolve(node, path, scope).into_iter().any(is_present),
        Filter::Compare { path, op, value } => {
            let values: Vec<&Value> = resolve(node, path, scope)
                .into_iter()
                .filter(|v| !v.is_null())
                .collect();
            if values.is_empty() {
                return matches!(
                    (op, value),
                    (CompareOp::Ne, _) | (CompareOp::Eq, CompValue::Null)
                );
            }
            let rules = Rules {
                case_exact: scope.case_exact(path),
                datetime: scope.is_datetime(path),
            };
            values.into_iter().any(|v| compare(v, *op, value, rules))
        }
        Filter::ValuePath { attr, filter } => resolve(node, attr, scope)
            .into_iter()
            .any(|element| matches_element(filter, element, scope.kind, attr)),
    }
}

/// Whether one value of the multi-valued attribute `attr` matches a value filter, whose paths
/// are relative to that value.
pub(crate) fn matches_element(
    filter: &Filter,
    element: &Value,
    kind: ResourceKind,
    attr: &AttrPath,
) -> bool {
    let scope = Scope {
        kind,
        parent: Some(attr),
    };
    match element {
        Value::Object(_) => eval(filter, element, &scope),
        // A multi-valued primitive (e.g. `schemas`) is addressed as its own `value`.
        primitive => {
            let mut wrapped = Map::new();
            wrapped.insert("value".into(), primitive.clone());
            eval(filter, &Value::Object(wrapped), &scope)
        }
    }
}

/// The values `path` designates under `node`, with arrays flattened one level at each step.
fn resolve<'v>(node: &'v Value, path: &AttrPath, scope: &Scope<'_>) -> Vec<&'v Value> {
    let container = match (&path.uri, scope.parent) {
        (Some(uri), None) if !scope.kind.core_schema().id.eq_ignore_ascii_case(uri) => {
            get(node, uri)
        }
        _ => Some(node),
    };
    let Some(top) = container.and_then(|c| get(c, &path.name)) else {
        return Vec::new();
    };
    let values = flatten(top);
    match &path.sub {
        None => values,
        Some(sub) => values
            .into_iter()
            .filter_map(|v| get(v, sub))
            .flat_map(flatten)
            .collect(),
    }
}

fn flatten(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Member `name` of an object, preferring an exact match, then any case.
pub(crate) fn get<'v>(node: &'v Value, name: &str) -> Option<&'v Value> {
    let obj = node.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => items.iter().any(is_present),
        Value::Object(members) => members.values().any(is_present),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

#[derive(Clone, Copy)]
struct Rules {
    case_exact: bool,
    datetime: bool,
}

fn compare(stored: &Value, op: CompareOp, literal: &CompValue, rules: Rules) -> bool {
    match (stored, literal) {
        (Value::Object(_), CompValue::Str(_) | CompValue::Num(_) | CompValue::Bool(_)) => {
            get(stored, "value").is_some_and(|v| !v.is_object() && compare(v, op, literal, rules))
        }
        (Value::String(s), CompValue::Str(l)) => compare_strings(s, op, l, rules),
        (Value::String(s), CompValue::Num(n)) => compare_strings(s, op, &n.to_string(), rules),
        (Value::Number(s), CompValue::Num(l)) => order_matches(op, compare_numbers(s, l)),
        (Value::Bool(s), CompValue::Bool(l)) => equality_matches(op, s == l),
        (Value::Bool(s), CompValue::Str(l)) => match parse_bool(l) {
            Some(l) => equality_matches(op, *s == l),
            None => op == CompareOp::Ne,
        },
        _ => op == CompareOp::Ne,
    }
}

/// `"true"`/`"false"` in any case, as IdPs send booleans inside strings.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn equality_matches(op: CompareOp, equal: bool) -> bool {
    match op {
        CompareOp::Eq => equal,
        CompareOp::Ne => !equal,
        _ => false,
    }
}

fn order_matches(op: CompareOp, ordering: Option<Ordering>) -> bool {
    let Some(ordering) = ordering else {
        return op == CompareOp::Ne;
    };
    match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Ne => ordering.is_ne(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        // Substring operators are defined on strings only.
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn compare_strings(stored: &str, op: CompareOp, literal: &str, rules: Rules) -> bool {
    let ordering_op = !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    if ordering_op && (rules.datetime || looks_like_datetime(stored)) {
        if let (Ok(a), Ok(b)) = (
            OffsetDateTime::parse(stored, &Rfc3339),
            OffsetDateTime::parse(literal, &Rfc3339),
        ) {
            return order_matches(op, Some(a.cmp(&b)));
        }
    }
    let (stored, literal) = if rules.case_exact {
        (stored.to_owned(), literal.to_owned())
    } else {
        (stored.to_lowercase(), literal.to_lowercase())
    };
    match op {
        CompareOp::Co => stored.contains(&literal),
        CompareOp::Sw => stored.starts_with(&literal),
        CompareOp::Ew => stored.ends_with(&literal),
        _ => order_matches(op, Some(stored.as_str().cmp(literal.as_str()))),
    }
}

/// Cheap pre-check so that ordinary strings are not run through the RFC 3339 parser.
fn looks_like_datetime(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10].eq_ignore_ascii_case(&b'T')
}

#[cfg(test)]
mod tests;
