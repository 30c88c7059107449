//! Directory records as SCIM resources: the stored resource plus `id`,
//! `meta` (with a weak ETag version) and derived attributes, then
//! `attributes`/`excludedAttributes` projection (RFC 7644 §3.9).

use orgsync_domain::directory::{GroupRecord, MemberRef, ResourceId, UserView};
use orgsync_domain::scim::AttrPath;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Reads an `If-Match` header: `None` for absent or `*`.
///
/// A value that names no version of ours can never match: it yields `Some(-1)`.
pub fn if_match(req: &actix_web::HttpRequest) -> Option<i64> {
    let raw = req.headers().get("if-match")?.to_str().ok()?.trim();
    if raw == "*" {
        return None;
    }
    let digits = raw.trim_start_matches("W/").trim_matches('"');
    Some(digits.parse().unwrap_or(-1))
}

fn meta(
    kind: &str,
    base: &str,
    id: ResourceId,
    version: i64,
    created: time::OffsetDateTime,
    updated: time::OffsetDateTime,
) -> Value {
    let endpoint = if kind == "User" { "Users" } else { "Groups" };
    json!({
        "resourceType": kind,
        "created": created.format(&Rfc3339).unwrap_or_default(),
        "lastModified": updated.format(&Rfc3339).unwrap_or_default(),
        "location": format!("{base}/{endpoint}/{id}"),
        "version": etag(version),
    })
}

fn with_server_fields(resource: &Value, id: ResourceId, meta: Value) -> Map<String, Value> {
    let mut map = resource.as_object().cloned().unwrap_or_default();
    map.insert("id".into(), json!(id));
    map.insert("meta".into(), meta);
    map
}

pub fn user(UserView { record, groups }: &UserView, base: &str) -> Value {
    let mut map = with_server_fields(
        &record.fields.resource,
        record.id,
        meta(
            "User",
            base,
            record.id,
            record.version,
            record.created_at,
            record.updated_at,
        ),
    );
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| json!({"value": g.id, "display": g.display_name, "$ref": format!("{base}/Groups/{}", g.id), "type": "direct"}))
        .collect();
    if !groups.is_empty() {
        map.insert("groups".into(), Value::Array(groups));
    }
    Value::Object(map)
}

pub fn group(record: &GroupRecord, members: Option<&[MemberRef]>, base: &str) -> Value {
    let mut map = with_server_fields(
        &record.fields.resource,
        record.id,
        meta(
            "Group",
            base,
            record.id,
            record.version,
            record.created_at,
            record.updated_at,
        ),
    );
    if let Some(members) = members {
        map.insert("members".into(), Value::Array(self::members(members, base)));
    }
    Value::Object(map)
}

/// Member references as SCIM values (`$ref` when the type says where they live).
pub fn members(members: &[MemberRef], base: &str) -> Vec<Value> {
    members
        .iter()
        .map(|m| {
            let mut member = json!({"value": m.value});
            if let Some(display) = &m.display {
                member["display"] = json!(display);
            }
            if let Some(kind) = &m.kind {
                member["type"] = json!(kind);
                let endpoint = if kind.eq_ignore_ascii_case("group") {
                    "Groups"
                } else {
                    "Users"
                };
                member["$ref"] = json!(format!("{base}/{endpoint}/{}", m.value));
            }
            member
        })
        .collect()
}

fn list_of(param: Option<&str>) -> Vec<AttrPath> {
    param
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|s| AttrPath::parse(s).ok())
        .collect()
}

/// Whether `name` (top-level) is asked for by the `attributes` or refused by `excludedAttributes`.
pub fn wants(name: &str, attributes: Option<&str>, excluded: Option<&str>) -> bool {
    let attributes = list_of(attributes);
    if !attributes.is_empty() {
        return attributes.iter().any(|p| p.name.eq_ignore_ascii_case(name));
    }
    !list_of(excluded)
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case(name) && p.sub.is_none())
}

fn find_key(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Applies `attributes` / `excludedAttributes`; `id` and `schemas` always stay.
pub fn project(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(source) = resource else {
        return resource;
    };
    let wanted = list_of(attributes);
    if !wanted.is_empty() {
        let mut out = Map::new();
        for always in ["schemas", "id"] {
            if let Some(v) = source.get(always) {
                out.insert(always.into(), v.clone());
            }
        }
        for path in wanted {
            copy_path(&source, &mut out, &path);
        }
        return Value::Object(out);
    }
    let mut out = source;
    for path in list_of(excluded) {
        remove_path(&mut out, &path);
    }
    Value::Object(out)
}

/// The object holding `path`'s attribute: the resource, or its extension object.
fn container_key(source: &Map<String, Value>, path: &AttrPath) -> Option<Option<String>> {
    match &path.uri {
        Some(uri) if !uri.starts_with("urn:ietf:params:scim:schemas:core:") => {
            find_key(source, uri).map(Some)
        }
        _ => Some(None),
    }
}

fn copy_path(source: &Map<String, Value>, out: &mut Map<String, Value>, path: &AttrPath) {
    let Some(container) = container_key(source, path) else {
        return;
    };
    let from = match &container {
        Some(key) => source.get(key).and_then(Value::as_object),
        None => Some(source),
    };
    let Some(from) = from else { return };
    let Some(key) = find_key(from, &path.name) else {
        return;
    };
    let Some(value) = from.get(&key) else { return };
    let value = match (&path.sub, value) {
        (Some(sub), Value::Object(obj)) => match find_key(obj, sub) {
            Some(k) => json!({ k.clone(): obj[&k].clone() }),
            None => return,
        },
        (Some(sub), Value::Array(items)) => Value::Array(
            items
                .iter()
                .filter_map(|item| {
                    let obj = item.as_object()?;
                    let k = find_key(obj, sub)?;
                    Some(json!({ k.clone(): obj[&k].clone() }))
                })
                .collect(),
        ),
        (_, v) => v.clone(),
    };
    let target = match container {
        Some(ext) => {
            let entry = out.entry(ext).or_insert_with(|| Value::Object(Map::new()));
            match entry.as_object_mut() {
                Some(obj) => obj,
                None => return,
            }
        }
        None => out,
    };
    match (target.get_mut(&key), value) {
        (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
        (_, value) => {
            target.insert(key, value);
        }
    }
}

fn remove_path(out: &mut Map<String, Value>, path: &AttrPath) {
    if path.name.eq_ignore_ascii_case("id") || path.name.eq_ignore_ascii_case("schemas") {
        return;
    }
    let Some(container) = container_key(out, path) else {
        return;
    };
    let target = match container {
        Some(key) => match out.get_mut(&key).and_then(Value::as_object_mut) {
            Some(obj) => obj,
            None => return,
        },
        None => out,
    };
    let Some(key) = find_key(target, &path.name) else {
        return;
    };
    match &path.sub {
        None => {
            target.remove(&key);
        }
        Some(sub) => match target.get_mut(&key) {
            Some(Value::Object(obj)) => {
                if let Some(k) = find_key(obj, sub) {
                    obj.remove(&k);
                }
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(k) = find_key(item, sub) {
                        item.remove(&k);
                    }
                }
            }
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_keeps_what_is_asked_and_always_id_and_schemas() {
        let resource = json!({
            "schemas": ["s"], "id": "1", "userName": "a", "displayName": "A",
            "name": {"givenName": "G", "familyName": "F"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D", "costCenter": "C"}
        });
        let only = project(resource.clone(), Some("userName,name.givenName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"), None);
        assert_eq!(
            only,
            json!({
                "schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "G"},
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "D"}
            })
        );
        let without = project(resource, None, Some("displayName,id,name.familyName"));
        assert!(without.get("displayName").is_none());
        assert_eq!(without["id"], "1");
        assert_eq!(without["name"], json!({"givenName": "G"}));
    }

    #[test]
    fn if_match_reads_weak_and_strong_tags() {
        let req = |v: &str| {
            actix_web::test::TestRequest::default()
                .insert_header(("if-match", v))
                .to_http_request()
        };
        assert_eq!(if_match(&req("W/\"3\"")), Some(3));
        assert_eq!(if_match(&req("\"4\"")), Some(4));
        assert_eq!(if_match(&req("*")), None);
        assert_eq!(if_match(&req("garbage")), Some(-1));
    }
}
