//! Group membership operations, turned into [`MemberChange`]s instead of JSON edits.
//!
//! Shapes accepted, as sent by the IdPs:
//! - `add`/`replace` `members` with `[{"value": id, "display"?, "type"?, "$ref"?}, ...]`
//!   (Okta, Entra, JumpCloud, OneLogin), a single such object, or bare id strings;
//! - `remove` `members` with the same `value` list (Entra, OneLogin) or without a value
//!   (everyone);
//! - `remove` `members[value eq "id"]` (Okta), also `value eq "a" or value eq "b"`.

use serde_json::Value;

use super::{MemberChange, PatchError, PatchOp};
use crate::scim::{CompValue, CompareOp, Filter, PatchPath};

/// `Ok(None)` when the operation changes nothing (an empty list to add or remove).
pub(super) fn change(
    op: PatchOp,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<Option<MemberChange>, PatchError> {
    if path.sub_attribute().is_some() {
        return Err(PatchError::InvalidPath(
            "members are changed whole, not by sub-attribute".into(),
        ));
    }
    if let Some(filter) = &path.filter {
        if op != PatchOp::Remove {
            return Err(PatchError::InvalidPath(
                "a filtered 'members' path can only be removed".into(),
            ));
        }
        let mut ids = Vec::new();
        ids_from_filter(filter, &mut ids).ok_or_else(|| {
            PatchError::InvalidPath("a 'members' filter must select members by 'value eq'".into())
        })?;
        return Ok(Some(MemberChange::Remove(ids)));
    }
    let value = value.filter(|v| !v.is_null());
    Ok(match (op, value) {
        (PatchOp::Add, None) => {
            return Err(PatchError::InvalidValue(
                "'add' to members requires a 'value'".into(),
            ))
        }
        (PatchOp::Add, Some(v)) => non_empty(ids(v)?).map(MemberChange::Add),
        (PatchOp::Replace, v) => Some(MemberChange::ReplaceAll(
            v.map(ids).transpose()?.unwrap_or_default(),
        )),
        (PatchOp::Remove, None) => Some(MemberChange::RemoveAll),
        (PatchOp::Remove, Some(v)) => non_empty(ids(v)?).map(MemberChange::Remove),
    })
}

fn non_empty(ids: Vec<String>) -> Option<Vec<String>> {
    (!ids.is_empty()).then_some(ids)
}

fn ids(value: &Value) -> Result<Vec<String>, PatchError> {
    match value {
        Value::Array(items) => items.iter().map(id).collect(),
        single => id(single).map(|id| vec![id]),
    }
}

fn id(item: &Value) -> Result<String, PatchError> {
    let value = match item {
        Value::Object(member) => member
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("value"))
            .map(|(_, v)| v),
        other => Some(other),
    };
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(PatchError::InvalidValue(
            "each member needs a 'value' holding the member's id".into(),
        )),
    }
}

/// Ids from `value eq "id"` clauses joined by `or`; `and` may add other tests on the same
/// member (`value eq "id" and type eq "User"`), which orgsync does not need to check.
fn ids_from_filter(filter: &Filter, ids: &mut Vec<String>) -> Option<()> {
    match filter {
        Filter::Or(lhs, rhs) => {
            ids_from_filter(lhs, ids)?;
            ids_from_filter(rhs, ids)
        }
        Filter::And(lhs, rhs) => {
            let (mut left, mut right) = (Vec::new(), Vec::new());
            match (
                ids_from_filter(lhs, &mut left),
                ids_from_filter(rhs, &mut right),
            ) {
                (Some(()), None) => ids.extend(left),
                (None, Some(())) => ids.extend(right),
                _ => return None,
            }
            Some(())
        }
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.is("value") && path.sub.is_none() => {
            match value {
                CompValue::Str(s) => ids.push(s.clone()),
                CompValue::Num(n) => ids.push(n.to_string()),
                CompValue::Bool(_) | CompValue::Null => return None,
            }
            Some(())
        }
        _ => None,
    }
}
