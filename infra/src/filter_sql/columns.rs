//! Attributes backed by a column of their own: the ones IdPs look users
//! and groups up by, indexed (lower-cased copies where matching ignores
//! case), and group members, held as rows.

use orgsync_domain::scim::{AttrPath, CompValue, CompareOp, ResourceKind};
use orgsync_domain::Result;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::compare::{compare_text, ordering};
use super::{invalid, Sql};

/// A column that backs an attribute directly.
#[derive(Clone, Copy)]
pub(super) enum Column {
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

pub(super) fn column(kind: ResourceKind, path: &AttrPath) -> Option<Column> {
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

impl Column {
    /// The condition on this column of `table` (`pr` when `comparison` is `None`).
    pub(super) fn condition(
        self,
        table: &str,
        comparison: Option<(CompareOp, &CompValue)>,
        sql: &mut Sql,
    ) -> Result<String> {
        let Some((op, value)) = comparison else {
            return Ok(match self {
                Column::Text { name, .. } => format!("({name} IS NOT NULL AND {name} <> '')"),
                Column::Members => format!(
                    "EXISTS (SELECT 1 FROM directory_group_members m WHERE m.group_id = {table}.id)"
                ),
                _ => "TRUE".to_owned(),
            });
        };
        match self {
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
                let Some(sym) = ordering(op) else {
                    return Err(invalid("a dateTime supports eq, ne, gt, ge, lt, le and pr"));
                };
                Ok(format!("{name} {sym} {}", sql.bind(at)))
            }
            Column::Members => {
                let inner = compare_text("m.member_value", op, value, true, true, sql)?;
                Ok(format!(
                    "EXISTS (SELECT 1 FROM directory_group_members m WHERE m.group_id = {table}.id AND {inner})"
                ))
            }
        }
    }
}
