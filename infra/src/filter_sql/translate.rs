//! The walk over a filter: boolean structure here, each attribute handed
//! to its column (`columns`) or to its place in the resource's JSON
//! (`json`), and each comparison to `compare`.

use orgsync_domain::scim::{
    find_attribute, AttrPath, AttrType, CompValue, CompareOp, Filter, ResourceKind,
};
use orgsync_domain::Result;
use sea_orm::DbBackend;

use super::columns::{column, Column};
use super::compare::{compare, compare_text};
use super::{invalid, Sql};

/// Where JSON values come from: the resource itself, or one element of a multi-valued attribute.
#[derive(Clone, Copy)]
pub(super) enum Scope {
    Root,
    Element,
}

pub(super) struct Translator {
    pub(super) backend: DbBackend,
    pub(super) kind: ResourceKind,
    /// The table's name, for correlated sub-queries.
    pub(super) table: &'static str,
}

impl Translator {
    pub(super) fn translate(&self, filter: &Filter, scope: Scope, sql: &mut Sql) -> Result<String> {
        match filter {
            Filter::And(a, b) => Ok(format!(
                "({} AND {})",
                self.translate(a, scope, sql)?,
                self.translate(b, scope, sql)?
            )),
            Filter::Or(a, b) => Ok(format!(
                "({} OR {})",
                self.translate(a, scope, sql)?,
                self.translate(b, scope, sql)?
            )),
            Filter::Not(inner) => Ok(format!(
                "(NOT COALESCE({}, FALSE))",
                self.translate(inner, scope, sql)?
            )),
            Filter::Present(path) => self.attribute(path, None, scope, sql),
            Filter::Compare { path, op, value } => {
                self.attribute(path, Some((*op, value)), scope, sql)
            }
            Filter::ValuePath { attr, filter } => {
                if matches!(scope, Scope::Element) {
                    return Err(invalid("value filters cannot nest"));
                }
                if let Some(Column::Members) = column(self.kind, attr) {
                    return self.members(filter, sql);
                }
                let keys = self.keys(attr)?;
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                let inner = self.translate(filter, Scope::Element, sql)?;
                self.exists_elements(&keys, &inner)
            }
        }
    }

    /// JSON keys of a top-level attribute (with its extension URN, if any).
    fn keys(&self, path: &AttrPath) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        if let Some(uri) = &path.uri {
            if !uri.eq_ignore_ascii_case(self.kind.core_schema().id) {
                keys.push(uri.clone());
            }
        }
        keys.push(canonical_name(self.kind, path));
        Ok(keys)
    }

    fn attribute(
        &self,
        path: &AttrPath,
        comparison: Option<(CompareOp, &CompValue)>,
        scope: Scope,
        sql: &mut Sql,
    ) -> Result<String> {
        if let Scope::Element = scope {
            // Inside `attr[...]`, names are sub-attributes of the element.
            let sub = path.name.as_str();
            let expr = self.json_text(Scope::Element, &[sub])?;
            // Sub-attributes of multi-valued core attributes (type, value, display) are caseExact false.
            return compare(self.backend, &expr, comparison, false, sql);
        }
        if let Some(col) = column(self.kind, path) {
            return col.condition(self.table, comparison, sql);
        }
        let top = AttrPath {
            uri: path.uri.clone(),
            name: path.name.clone(),
            sub: None,
        };
        let def = find_attribute(self.kind, &top);
        let keys = self.keys(path)?;
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let multi = def.is_some_and(|d| d.multi_valued);
        let leaf_case_exact = find_attribute(self.kind, path).is_some_and(|d| d.case_exact);
        if multi {
            let complex = def.is_some_and(|d| d.kind == AttrType::Complex);
            let inner = match (&path.sub, comparison) {
                (None, None) => "TRUE".to_owned(),
                (sub, cmp) => {
                    let sub = sub.as_deref().unwrap_or(if complex { "value" } else { "" });
                    let element_keys: Vec<&str> = if sub.is_empty() { vec![] } else { vec![sub] };
                    let expr = self.json_text(Scope::Element, &element_keys)?;
                    compare(self.backend, &expr, cmp, leaf_case_exact, sql)?
                }
            };
            return self.exists_elements(&keys, &inner);
        }
        let mut full = keys.clone();
        let complex_without_sub = def.is_some_and(|d| d.kind == AttrType::Complex)
            && path.sub.is_none()
            && comparison.is_some();
        if let Some(sub) = &path.sub {
            full.push(sub);
        } else if complex_without_sub {
            full.push("value");
        }
        let expr = self.json_text(Scope::Root, &full)?;
        compare(self.backend, &expr, comparison, leaf_case_exact, sql)
    }

    fn members(&self, filter: &Filter, sql: &mut Sql) -> Result<String> {
        // Inside members[...], only `value` (and `type`) are stored.
        fn inner(f: &Filter, sql: &mut Sql) -> Result<String> {
            match f {
                Filter::And(a, b) => Ok(format!("({} AND {})", inner(a, sql)?, inner(b, sql)?)),
                Filter::Or(a, b) => Ok(format!("({} OR {})", inner(a, sql)?, inner(b, sql)?)),
                Filter::Not(a) => Ok(format!("(NOT {})", inner(a, sql)?)),
                Filter::Compare { path, op, value } if path.name.eq_ignore_ascii_case("value") => {
                    compare_text("m.member_value", *op, value, true, true, sql)
                }
                Filter::Compare { path, op, value } if path.name.eq_ignore_ascii_case("type") => {
                    compare_text("lower(m.member_type)", *op, value, false, true, sql)
                }
                Filter::Present(path) if path.name.eq_ignore_ascii_case("value") => {
                    Ok("TRUE".into())
                }
                _ => Err(invalid("members can be filtered by value and type only")),
            }
        }
        Ok(format!(
            "EXISTS (SELECT 1 FROM directory_group_members m WHERE m.group_id = {}.id AND {})",
            self.table,
            inner(filter, sql)?
        ))
    }
}

/// The canonical spelling of a schema attribute (JSON keys are stored as IdPs send them,
/// which is the canonical spelling in practice).
fn canonical_name(kind: ResourceKind, path: &AttrPath) -> String {
    let top = AttrPath {
        uri: path.uri.clone(),
        name: path.name.clone(),
        sub: None,
    };
    find_attribute(kind, &top).map_or_else(|| path.name.clone(), |d| d.name.to_owned())
}
