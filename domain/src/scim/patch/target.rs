//! A PATCH path resolved against the resource's schema: which object holds
//! the attribute, its definition, the sub-attribute and value filter, and
//! whether it is multi-valued or complex.

use serde_json::Value;

use super::PatchError;
use crate::scim::schema::{AttrType, AttributeDef, ResourceKind, COMMON_ATTRIBUTES};
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

pub(super) fn is_core_attr(path: &PatchPath, kind: ResourceKind, name: &str) -> bool {
    path.attr.is(name)
        && path
            .attr
            .uri
            .as_deref()
            .is_none_or(|u| kind.core_schema().id.eq_ignore_ascii_case(u))
}

pub(super) fn resolve(path: &PatchPath, kind: ResourceKind) -> Result<Target<'_>, PatchError> {
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

pub(super) fn is_complex(target: &Target<'_>, current: Option<&Value>, value: &Value) -> bool {
    match target.def {
        Some(def) => def.kind == AttrType::Complex,
        None => current.is_some_and(Value::is_object) && value.is_object(),
    }
}
