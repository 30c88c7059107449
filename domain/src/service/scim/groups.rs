//! `/Groups`: create, read, replace, PATCH and list a directory's groups
//! (deleting is shared with users, in the parent module), and page through
//! a group's members.

use super::*;

impl ScimService {
    /// # Errors
    /// A bad body.
    pub async fn create_group(&self, conn: ConnectionId, body: Value) -> ScimResult<GroupRecord> {
        let (fields, members) = GroupFields::from_scim(body)?;
        self.check_group(&fields)?;
        self.check_member_count(members.as_ref().map_or(0, Vec::len))?;
        Ok(self
            .directory
            .create_group(
                conn,
                &fields,
                &members.unwrap_or_default(),
                self.clock.now(),
            )
            .await?)
    }

    /// # Errors
    /// `NotFound`.
    pub async fn get_group(&self, conn: ConnectionId, id: ResourceId) -> ScimResult<GroupRecord> {
        self.directory
            .find_group(conn, id)
            .await?
            .ok_or_else(|| not_found(ResourceKind::Group, id))
    }

    /// PUT: attributes replaced; members replaced too when the body has `members`.
    ///
    /// # Errors
    /// `NotFound`, `PreconditionFailed`, or a bad body.
    pub async fn replace_group(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        body: Value,
        if_match: Option<i64>,
    ) -> ScimResult<GroupRecord> {
        let (fields, members) = GroupFields::from_scim(body)?;
        self.check_group(&fields)?;
        self.check_member_count(members.as_ref().map_or(0, Vec::len))?;
        // PUT replaces the whole resource: a body without members empties the group.
        let members = members.unwrap_or_default();
        self.directory
            .replace_group(self.target(conn, id, if_match), &fields, Some(&members))
            .await
            .map_err(not_found_as(ResourceKind::Group, id))
    }

    /// Applies a PATCH: attribute changes on the resource, member changes as
    /// row operations (so concurrent member PATCHes never lose each other).
    ///
    /// # Errors
    /// The PATCH's own errors, `NotFound`, `PreconditionFailed`.
    pub async fn patch_group(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        patch: &PatchRequest,
        if_match: Option<i64>,
    ) -> ScimResult<GroupRecord> {
        patch.validate()?;
        self.check_patch_size(patch, ResourceKind::Group)?;
        let details = member_details(patch)?;
        if if_match.is_none() && touches_only_members(patch) {
            // The group's attributes play no part: no need to read it first.
            // Members live in rows, not in the stored resource, so applying
            // the operations to an empty one yields the same member changes.
            let mut resource = Value::Object(serde_json::Map::new());
            let outcome = apply_patch(&mut resource, &patch.operations, ResourceKind::Group)?;
            if !outcome.changed {
                self.check_member_count(changed_values(&outcome.member_changes))?;
                let patch = GroupPatch {
                    conn,
                    id,
                    fields: None,
                    changes: &outcome.member_changes,
                    known: &details,
                    guard: GroupGuard::None,
                    now: self.clock.now(),
                };
                return self
                    .directory
                    .patch_group(patch)
                    .await
                    .map_err(not_found_as(ResourceKind::Group, id));
            }
        }
        for _ in 0..PATCH_RETRIES {
            let current = self.get_group(conn, id).await?;
            check_if_match(if_match, current.version)?;
            let mut resource = current.fields.resource.clone();
            let outcome = apply_patch(&mut resource, &patch.operations, ResourceKind::Group)?;
            self.check_member_count(changed_values(&outcome.member_changes))?;
            let fields = if outcome.changed {
                let fields = GroupFields::from_resource(resource)?;
                self.check_group(&fields)?;
                Some(fields)
            } else {
                None
            };
            if fields.is_none() && outcome.member_changes.is_empty() {
                return Ok(current);
            }
            let guard = match (if_match, &fields) {
                (Some(version), _) => GroupGuard::Version(version),
                (None, Some(_)) => GroupGuard::Attributes(&current.fields),
                (None, None) => GroupGuard::None,
            };
            let patch = GroupPatch {
                conn,
                id,
                fields: fields.as_ref(),
                changes: &outcome.member_changes,
                known: &details,
                guard,
                now: self.clock.now(),
            };
            match self.directory.patch_group(patch).await {
                Err(Error::PreconditionFailed(_)) if if_match.is_none() => continue,
                Err(Error::NotFound { .. }) => return Err(not_found(ResourceKind::Group, id)),
                other => return Ok(other?),
            }
        }
        Err(kept_changing())
    }

    /// # Errors
    /// `InvalidFilter` for a filter the store cannot evaluate.
    pub async fn list_groups(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> ScimResult<Listed<GroupRecord>> {
        self.directory
            .list_groups(conn, query)
            .await
            .map_err(invalid_filter)
    }

    /// One page of a group's members, in value order.
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn members(
        &self,
        conn: ConnectionId,
        group: ResourceId,
        after: Option<&str>,
        limit: u64,
    ) -> ScimResult<Vec<MemberRef>> {
        Ok(self.directory.members(conn, group, after, limit).await?)
    }
}

/// The type and display that a PATCH gives for member values (the PATCH
/// engine reports members by value only).
///
/// # Errors
/// `InvalidValue` for a member with no string `value` or an unknown `type`.
fn member_details(patch: &PatchRequest) -> ScimResult<Vec<MemberRef>> {
    let mut out = Vec::new();
    for op in &patch.operations {
        let members = match (&op.path, &op.value) {
            (Some(path), Some(value)) if path.trim().eq_ignore_ascii_case("members") => {
                Some(value.clone())
            }
            (None, Some(Value::Object(map))) => map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("members"))
                .map(|(_, v)| v.clone()),
            _ => None,
        };
        // Bare id strings carry no details; they are read by the PATCH engine.
        if let Some(members @ (Value::Object(_) | Value::Array(_))) = members {
            let all_objects = match &members {
                Value::Array(items) => items.iter().all(Value::is_object),
                _ => true,
            };
            if all_objects {
                out.extend(crate::directory::resource::parse_members(members)?);
            }
        }
    }
    Ok(out)
}

/// How many member values the changes name.
fn changed_values(changes: &[MemberChange]) -> usize {
    changes.iter().map(|change| change.values().len()).sum()
}

/// Whether every operation is about `members` alone (`members` or
/// `members[filter]`, or a path-less value holding only `members`), as the
/// PATCHes Entra ID and Okta send for membership are.
fn touches_only_members(patch: &PatchRequest) -> bool {
    let members_path = |path: &str| {
        let path = path.trim();
        let Some(head) = path.get(..7) else {
            return false;
        };
        let rest = &path[7..];
        head.eq_ignore_ascii_case("members")
            && (rest.is_empty() || (rest.starts_with('[') && rest.ends_with(']')))
    };
    patch
        .operations
        .iter()
        .all(|op| match (&op.path, &op.value) {
            (Some(path), _) => members_path(path),
            (None, Some(Value::Object(map))) => {
                !map.is_empty() && map.keys().all(|k| k.eq_ignore_ascii_case("members"))
            }
            _ => false,
        })
}
