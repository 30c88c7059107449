//! SCIM filters translated to SQL, so that list queries run in the database
//! (indexed columns for the attributes IdPs look up by; JSON paths for the
//! rest) on PostgreSQL and on SQLite. Values are always bound parameters;
//! attribute names, which end up in SQL text, are restricted to the SCIM
//! name grammar and quoted.

use orgsync_domain::scim::{
    find_attribute, AttrPath, AttrType, CompValue, CompareOp, Filter, ResourceKind,
};
use orgsync_domain::{Error, Result};
use sea_orm::{DbBackend, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// SQL text under construction with its bound values (`$1`, `$2`, ...; both
/// engines accept numbered parameters).
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub values: Vec<Value>,
}

impl Sql {
    pub fn bind(&mut self, value: impl Into<Value>) -> String {
        self.values.push(value.into());
        format!("${}", self.values.len())
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("filter", message)
}

/// A column that backs an attribute directly.
#[derive(Clone, Copy)]
enum Column {
    Uuid(&'static str),
    /// Text; `lower` is a lower-cased copy (or `None` to lower on the fly) for case-insensitive use.
    Text {
        name: &'static str,
        lower: Option<&'static str>,
        case_exact: bool,
    },
    Bool(&'static str),
    Time(&'static str),
    /// Group members, held as rows.
    Members,
}

fn column(kind: ResourceKind, path: &AttrPath) -> Option<Column> {
    let core = path
        .uri
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(kind.core_schema().id));
    if !core {
        return None;
    }
    let name = path.name.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    let col = match (kind, name.as_str(), sub.as_deref()) {
        (_, "id", None) => Column::Uuid("id"),
        (_, "externalid", None) => Column::Text {
            name: "external_id",
            lower: None,
            case_exact: true,
        },
        (_, "meta", Some("created")) => Column::Time("created_at"),
        (_, "meta", Some("lastmodified")) => Column::Time("updated_at"),
        (ResourceKind::User, "username", None) => Column::Text {
            name: "user_name",
            lower: Some("user_name_lower"),
            case_exact: false,
        },
        (ResourceKind::User, "displayname", None) => Column::Text {
            name: "display_name",
            lower: None,
            case_exact: false,
        },
        (ResourceKind::User, "active", None) => Column::Bool("active"),
        (ResourceKind::Group, "displayname", None) => Column::Text {
            name: "display_name",
            lower: Some("display_name_lower"),
            case_exact: false,
        },
        (ResourceKind::Group, "members", None | Some("value")) => Column::Members,
        _ => return None,
    };
    Some(col)
}

fn check_name(name: &str) -> Result<&str> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-$.:".contains(&b))
    {
        Ok(name)
    } else {
        Err(invalid(format!("unsupported attribute name {name:?}")))
    }
}

/// Where JSON values come from: the resource itself, or one element of a multi-valued attribute.
#[derive(Clone, Copy)]
enum Scope {
    Root,
    Element,
}

struct Translator {
    backend: DbBackend,
    kind: ResourceKind,
    /// The table's name, for correlated sub-queries.
    table: &'static str,
}

impl Translator {
    /// Text of the JSON value at `keys` under `scope`.
    fn json_text(&self, scope: Scope, keys: &[&str]) -> Result<String> {
        for key in keys {
            check_name(key)?;
        }
        Ok(match (self.backend, scope) {
            (DbBackend::Postgres, Scope::Root) => {
                format!("(resource #>> '{{{}}}')", quoted_list(keys))
            }
            (DbBackend::Postgres, Scope::Element) => {
                format!("(e.v #>> '{{{}}}')", quoted_list(keys))
            }
            (_, Scope::Root) => format!("json_extract(resource, '{}')", json_path(keys)),
            (_, Scope::Element) if keys.is_empty() => "e.value".to_owned(),
            (_, Scope::Element) => format!("json_extract(e.value, '{}')", json_path(keys)),
        })
    }

    /// `EXISTS` over the elements of the multi-valued attribute at `keys`.
    fn exists_elements(&self, keys: &[&str], condition: &str) -> Result<String> {
        for key in keys {
            check_name(key)?;
        }
        Ok(match self.backend {
            DbBackend::Postgres => {
                let at = format!("resource #> '{{{}}}'", quoted_list(keys));
                format!(
                    "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({at}) = 'array' \
                     THEN {at} ELSE '[]'::jsonb END) AS e(v) WHERE {condition})"
                )
            }
            _ => format!(
                "EXISTS (SELECT 1 FROM json_each(resource, '{}') AS e WHERE {condition})",
                json_path(keys)
            ),
        })
    }

    fn translate(&self, filter: &Filter, scope: Scope, sql: &mut Sql) -> Result<String> {
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
            return self.column(col, comparison, sql);
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

    fn column(
        &self,
        col: Column,
        comparison: Option<(CompareOp, &CompValue)>,
        sql: &mut Sql,
    ) -> Result<String> {
        let Some((op, value)) = comparison else {
            return Ok(match col {
                Column::Text { name, .. } => format!("({name} IS NOT NULL AND {name} <> '')"),
                Column::Members => format!(
                    "EXISTS (SELECT 1 FROM directory_group_members m WHERE m.group_id = {}.id)",
                    self.table
                ),
                _ => "TRUE".to_owned(),
            });
        };
        match col {
            Column::Uuid(name) => {
                let id = match value {
                    CompValue::Str(s) => uuid::Uuid::parse_str(s).ok(),
                    _ => None,
                };
                match (op, id) {
                    (CompareOp::Eq, Some(id)) => Ok(format!("{name} = {}", sql.bind(id))),
                    (CompareOp::Eq, None) => Ok("FALSE".into()),
                    (CompareOp::Ne, Some(id)) => Ok(format!("{name} <> {}", sql.bind(id))),
                    (CompareOp::Ne, None) => Ok("TRUE".into()),
                    _ => Err(invalid("id supports only eq, ne and pr")),
                }
            }
            Column::Text {
                name,
                lower,
                case_exact,
            } => {
                let expr = match (case_exact, lower) {
                    (true, _) => name.to_owned(),
                    (false, Some(lower)) => lower.to_owned(),
                    (false, None) => format!("lower({name})"),
                };
                compare_text(&expr, op, value, case_exact, true, sql)
            }
            Column::Bool(name) => match (op, value) {
                (CompareOp::Eq, CompValue::Bool(b)) => Ok(format!("{name} = {}", sql.bind(*b))),
                (CompareOp::Ne, CompValue::Bool(b)) => Ok(format!("{name} <> {}", sql.bind(*b))),
                _ => Err(invalid(
                    "a boolean attribute supports only eq, ne and pr with true or false",
                )),
            },
            Column::Time(name) => {
                let CompValue::Str(text) = value else {
                    return Err(invalid("a dateTime must be compared with a string"));
                };
                let at = OffsetDateTime::parse(text, &Rfc3339)
                    .map_err(|_| invalid(format!("{text:?} is not an RFC 3339 dateTime")))?;
                let sym = match op {
                    CompareOp::Eq => "=",
                    CompareOp::Ne => "<>",
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    CompareOp::Le => "<=",
                    _ => return Err(invalid("a dateTime supports eq, ne, gt, ge, lt, le and pr")),
                };
                Ok(format!("{name} {sym} {}", sql.bind(at)))
            }
            Column::Members => {
                let inner = compare_text("m.member_value", op, value, true, true, sql)?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM directory_group_members m WHERE m.group_id = {}.id AND {inner})",
                    self.table
                ))
            }
        }
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

fn quoted_list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(",")
}

fn json_path(keys: &[&str]) -> String {
    let mut path = "$".to_owned();
    for key in keys {
        path.push_str(&format!(".\"{key}\""));
    }
    path
}

fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Compares a text expression (already lower-cased when `!case_exact` and `expr_is_lowered`).
fn compare_text(
    expr: &str,
    op: CompareOp,
    value: &CompValue,
    case_exact: bool,
    expr_is_lowered: bool,
    sql: &mut Sql,
) -> Result<String> {
    let expr = if case_exact || expr_is_lowered {
        expr.to_owned()
    } else {
        format!("lower({expr})")
    };
    let text = match value {
        CompValue::Str(s) => s.clone(),
        CompValue::Num(n) => n.to_string(),
        CompValue::Bool(b) => b.to_string(),
        CompValue::Null => {
            return match op {
                CompareOp::Eq => Ok(format!("{expr} IS NULL")),
                CompareOp::Ne => Ok(format!("{expr} IS NOT NULL")),
                _ => Err(invalid("null can only be compared with eq or ne")),
            }
        }
    };
    let text = if case_exact {
        text
    } else {
        text.to_lowercase()
    };
    Ok(match op {
        CompareOp::Eq => format!("{expr} = {}", sql.bind(text)),
        CompareOp::Ne => format!("({expr} IS NULL OR {expr} <> {})", sql.bind(text)),
        CompareOp::Co => format!(
            "{expr} LIKE {} ESCAPE '\\'",
            sql.bind(format!("%{}%", like_escape(&text)))
        ),
        CompareOp::Sw => format!(
            "{expr} LIKE {} ESCAPE '\\'",
            sql.bind(format!("{}%", like_escape(&text)))
        ),
        CompareOp::Ew => format!(
            "{expr} LIKE {} ESCAPE '\\'",
            sql.bind(format!("%{}", like_escape(&text)))
        ),
        CompareOp::Gt => format!("{expr} > {}", sql.bind(text)),
        CompareOp::Ge => format!("{expr} >= {}", sql.bind(text)),
        CompareOp::Lt => format!("{expr} < {}", sql.bind(text)),
        CompareOp::Le => format!("{expr} <= {}", sql.bind(text)),
    })
}

/// Compares a JSON-derived text expression with a filter value.
fn compare(
    backend: DbBackend,
    expr: &str,
    comparison: Option<(CompareOp, &CompValue)>,
    case_exact: bool,
    sql: &mut Sql,
) -> Result<String> {
    let Some((op, value)) = comparison else {
        return Ok(format!(
            "({expr} IS NOT NULL AND {expr} <> '' AND {expr} <> '[]')"
        ));
    };
    match value {
        CompValue::Bool(b) => {
            // PostgreSQL's #>> yields 'true'/'false'; SQLite's json_extract yields 1/0.
            let literal = match (backend, b) {
                (DbBackend::Postgres, true) => "'true'",
                (DbBackend::Postgres, false) => "'false'",
                (_, true) => "1",
                (_, false) => "0",
            };
            match op {
                CompareOp::Eq => Ok(format!("{expr} = {literal}")),
                CompareOp::Ne => Ok(format!("({expr} IS NULL OR {expr} <> {literal})")),
                _ => Err(invalid("a boolean supports only eq, ne and pr")),
            }
        }
        CompValue::Num(n) if !matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) => {
            let number = n.as_f64().ok_or_else(|| invalid("number out of range"))?;
            let sym = match op {
                CompareOp::Eq => "=",
                CompareOp::Ne => "<>",
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
                CompareOp::Lt => "<",
                _ => "<=",
            };
            let numeric = match backend {
                DbBackend::Postgres => format!(
                    "(CASE WHEN {expr} ~ '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$' THEN ({expr})::double precision END)"
                ),
                _ => expr.to_owned(),
            };
            Ok(format!("{numeric} {sym} {}", sql.bind(number)))
        }
        _ => compare_text(expr, op, value, case_exact, false, sql),
    }
}

/// Translates `filter` into a SQL condition over the users (or groups) table.
///
/// # Errors
/// `Invalid` (field `filter`) for comparisons the store cannot express.
pub fn condition(
    backend: DbBackend,
    kind: ResourceKind,
    filter: &Filter,
    sql: &mut Sql,
) -> Result<String> {
    let table = match kind {
        ResourceKind::User => "directory_users",
        ResourceKind::Group => "directory_groups",
    };
    Translator {
        backend,
        kind,
        table,
    }
    .translate(filter, Scope::Root, sql)
}
