//! One comparison of an SQL expression with a filter value: as text (with
//! SCIM's case rules and LIKE escaping), as a number, or as a boolean, in
//! each engine's spelling.

use orgsync_domain::scim::{CompValue, CompareOp};
use orgsync_domain::Result;
use sea_orm::DbBackend;

use super::{invalid, Sql};

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
pub(super) fn compare_text(
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
pub(super) fn compare(
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
    match (value, ordering(op)) {
        (CompValue::Bool(b), _) => {
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
        (CompValue::Num(n), Some(sym)) => {
            let number = n.as_f64().ok_or_else(|| invalid("number out of range"))?;
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

/// The SQL operator of an ordering comparison; `None` for the text-only ones
/// (co, sw, ew).
pub(super) fn ordering(op: CompareOp) -> Option<&'static str> {
    match op {
        CompareOp::Eq => Some("="),
        CompareOp::Ne => Some("<>"),
        CompareOp::Gt => Some(">"),
        CompareOp::Ge => Some(">="),
        CompareOp::Lt => Some("<"),
        CompareOp::Le => Some("<="),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => None,
    }
}
