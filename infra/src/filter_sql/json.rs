//! Attributes read from the stored resource's JSON, on either engine's
//! JSON functions. Keys end up in SQL text, so each is checked against the
//! SCIM name grammar and quoted.

use orgsync_domain::Result;
use sea_orm::DbBackend;

use super::invalid;
use super::translate::{Scope, Translator};

impl Translator {
    /// Text of the JSON value at `keys` under `scope`.
    pub(super) fn json_text(&self, scope: Scope, keys: &[&str]) -> Result<String> {
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
    pub(super) fn exists_elements(&self, keys: &[&str], condition: &str) -> Result<String> {
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
