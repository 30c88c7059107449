//! SCIM filters translated to SQL, so that list queries run in the database
//! (indexed columns for the attributes IdPs look up by; JSON paths for the
//! rest) on PostgreSQL and on SQLite. Values are always bound parameters;
//! attribute names, which end up in SQL text, are restricted to the SCIM
//! name grammar and quoted.
//!
//! - `translate`: the walk over a filter, attribute by attribute;
//! - `columns`: attributes backed by a column of their own (indexed);
//! - `json`: attributes read from the stored resource's JSON;
//! - `compare`: one comparison of an expression with a filter value.

use orgsync_domain::scim::{Filter, ResourceKind};
use orgsync_domain::{Error, Result};
use sea_orm::{DbBackend, Value};

use translate::{Scope, Translator};

mod columns;
mod compare;
mod json;
mod translate;

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

    /// Binds each of `values`, giving `$n, $n+1, …` in one string: a bulk
    /// write binds millions of values, and a string apiece was a fifth of
    /// the service's CPU while it wrote.
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Value>) -> String {
        use std::fmt::Write;
        let mut list = String::new();
        for value in values {
            if !list.is_empty() {
                list.push_str(", ");
            }
            self.values.push(value);
            let _ = write!(list, "${}", self.values.len());
        }
        list
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("filter", message)
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
