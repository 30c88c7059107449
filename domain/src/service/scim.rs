//! The SCIM service provider's use cases, for one connection's directory.
//! Authentication resolves the connection; every operation is scoped to it.

use std::sync::Arc;

use serde_json::Value;

use crate::directory::{
    ConnectionId, GroupFields, GroupRecord, MemberRef, ResourceId, ScimError, ScimQuery, TokenHash,
    UserFields, UserRecord,
};
use crate::limits::Limits;
use crate::ports::{Clock, ConnectionRepository, DirectoryRepository, Listed};
use crate::scim::{apply_patch, MemberChange, PatchRequest, ResourceKind};
use crate::Error;

/// Optimistic-concurrency retries for a PATCH without `If-Match` that races another writer.
const PATCH_RETRIES: usize = 5;

#[derive(Clone)]
pub struct ScimService {
    connections: Arc<dyn ConnectionRepository>,
    directory: Arc<dyn DirectoryRepository>,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

type ScimResult<T> = Result<T, ScimError>;

fn user_not_found(id: ResourceId) -> ScimError {
    ScimError::NotFound(format!("User {id} not found"))
}

fn group_not_found(id: ResourceId) -> ScimError {
    ScimError::NotFound(format!("Group {id} not found"))
}

fn user_name_taken(err: Error) -> ScimError {
    match err {
        Error::Conflict { .. } => {
            ScimError::Uniqueness("userName is already taken in this directory".into())
        }
        other => other.into(),
    }
}

impl ScimService {
    pub fn new(
        connections: Arc<dyn ConnectionRepository>,
        directory: Arc<dyn DirectoryRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            connections,
            directory,
            clock,
            limits: Limits::default(),
        }
    }

    /// The same service with other bounds than the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A stored resource stays within `limits.scim_resource_bytes` and
    /// `limits.scim_attribute_values` per multi-valued attribute, however it
    /// was built up (one POST, or many PATCHes each adding a little).
    fn check_resource(&self, resource: &Value) -> ScimResult<()> {
        let mut pending: Vec<(&str, &Value)> = vec![("", resource)];
        while let Some((name, value)) = pending.pop() {
            match value {
                // PostgreSQL text and JSON cannot hold NUL: refuse it here
                // rather than fail in the store.
                Value::String(text) if text.contains('\0') => {
                    return Err(ScimError::InvalidValue(format!(
                        "'{name}' contains a NUL character"
                    )));
                }
                Value::Array(items) => {
                    if items.len() > self.limits.scim_attribute_values {
                        return Err(ScimError::InvalidValue(format!(
                            "'{name}' would hold {} values; at most {} are allowed (limits.scim_attribute_values)",
                            items.len(),
                            self.limits.scim_attribute_values
                        )));
                    }
                    pending.extend(items.iter().map(|item| (name, item)));
                }
                Value::Object(map) => {
                    if map.keys().any(|k| k.contains('\0')) {
                        return Err(ScimError::InvalidValue(
                            "an attribute name contains a NUL character".into(),
                        ));
                    }
                    pending.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
                }
                _ => {}
            }
        }
        let size = serialized_len(resource);
        if size > self.limits.scim_resource_bytes {
            return Err(ScimError::InvalidValue(format!(
                "the resource would be {size} bytes; at most {} are kept (limits.scim_resource_bytes)",
                self.limits.scim_resource_bytes
            )));
        }
        Ok(())
    }

    /// Bounds the work a PATCH can ask for before any of it is done: each
    /// operation costs up to the size of the attribute it edits, so both the
    /// operations and the values they carry are counted.
    /// Identifiers are looked up through indexes, whose entries are bounded
    /// in size; no IdP sends a userName or displayName anywhere near this.
    fn check_user(&self, fields: &UserFields) -> ScimResult<()> {
        self.check_resource(&fields.resource)?;
        check_identifier("userName", Some(&fields.user_name))?;
        check_identifier("externalId", fields.external_id.as_deref())?;
        check_identifier("displayName", fields.display_name.as_deref())?;
        check_identifier("emails", fields.email.as_deref())
    }

    fn check_group(&self, fields: &GroupFields) -> ScimResult<()> {
        self.check_resource(&fields.resource)?;
        check_identifier("displayName", Some(&fields.display_name))?;
        check_identifier("externalId", fields.external_id.as_deref())
    }

    fn check_patch_size(&self, patch: &PatchRequest, kind: ResourceKind) -> ScimResult<()> {
        let operations = patch.operations.len();
        if operations > self.limits.scim_patch_operations {
            return Err(ScimError::TooLarge(format!(
                "the PATCH has {operations} operations; at most {} are allowed per request (limits.scim_patch_operations)",
                self.limits.scim_patch_operations
            )));
        }
        let carried: usize = patch
            .operations
            .iter()
            .filter_map(|op| op.value.as_ref())
            .map(array_elements)
            .sum();
        // A group's members are bounded on their own (scim_members_per_request).
        let allowed = match kind {
            ResourceKind::User => self.limits.scim_attribute_values,
            ResourceKind::Group => {
                self.limits.scim_attribute_values + self.limits.scim_members_per_request
            }
        };
        if carried > allowed {
            return Err(ScimError::TooLarge(format!(
                "the PATCH carries {carried} values; at most {allowed} are allowed per request (limits.scim_attribute_values)"
            )));
        }
        Ok(())
    }

    fn check_member_count(&self, named: usize) -> ScimResult<()> {
        if named > self.limits.scim_members_per_request {
            return Err(ScimError::TooLarge(format!(
                "the request names {named} group members; at most {} are allowed per request (limits.scim_members_per_request)",
                self.limits.scim_members_per_request
            )));
        }
        Ok(())
    }

    /// Checks a bearer token against the connection's live tokens, in constant time.
    ///
    /// # Errors
    /// `Unauthorized` for a missing, wrong, expired or revoked token, or when
    /// directory sync is off; the message never says which.
    pub async fn authenticate(&self, conn: ConnectionId, bearer: Option<&str>) -> ScimResult<()> {
        let unauthorized = || ScimError::Unauthorized("a valid bearer token is required".into());
        let presented = TokenHash::of(bearer.ok_or_else(unauthorized)?);
        let live = self
            .connections
            .live_token_hashes(conn, self.clock.now())
            .await?;
        // Compare against every live token, so timing does not depend on which matched.
        let matched = live
            .iter()
            .fold(false, |found, hash| hash.matches(&presented) | found);
        if matched {
            Ok(())
        } else {
            Err(unauthorized())
        }
    }

    /// # Errors
    /// `InvalidValue`/`InvalidSyntax` for a bad body, `Uniqueness` for a taken userName.
    pub async fn create_user(&self, conn: ConnectionId, body: Value) -> ScimResult<UserRecord> {
        let fields = UserFields::from_scim(body)?;
        self.check_user(&fields)?;
        self.directory
            .create_user(conn, &fields, self.clock.now())
            .await
            .map_err(user_name_taken)
    }

    /// # Errors
    /// `NotFound`.
    pub async fn get_user(&self, conn: ConnectionId, id: ResourceId) -> ScimResult<UserRecord> {
        self.directory
            .find_user(conn, id)
            .await?
            .ok_or_else(|| user_not_found(id))
    }

    /// # Errors
    /// `NotFound`, `PreconditionFailed`, `Uniqueness`, or a bad body.
    pub async fn replace_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        body: Value,
        if_match: Option<i64>,
    ) -> ScimResult<UserRecord> {
        let fields = UserFields::from_scim(body)?;
        self.check_user(&fields)?;
        self.directory
            .replace_user(conn, id, &fields, if_match, self.clock.now())
            .await
            .map_err(user_name_taken)
    }

    /// Applies a PATCH atomically: all operations or none.
    ///
    /// # Errors
    /// The PATCH's own errors (`invalidPath`, `noTarget`, ...), `NotFound`,
    /// `PreconditionFailed`, `Uniqueness`.
    pub async fn patch_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        patch: &PatchRequest,
        if_match: Option<i64>,
    ) -> ScimResult<UserRecord> {
        patch.validate()?;
        self.check_patch_size(patch, ResourceKind::User)?;
        for _ in 0..PATCH_RETRIES {
            let current = self.get_user(conn, id).await?;
            check_if_match(if_match, current.version)?;
            let mut resource = current.fields.resource.clone();
            let outcome = apply_patch(&mut resource, &patch.operations, ResourceKind::User)?;
            if !outcome.changed {
                return Ok(current);
            }
            let fields = UserFields::from_scim(resource)?;
            self.check_user(&fields)?;
            match self
                .directory
                .replace_user(conn, id, &fields, Some(current.version), self.clock.now())
                .await
            {
                Err(Error::PreconditionFailed(_)) if if_match.is_none() => continue,
                other => return other.map_err(user_name_taken),
            }
        }
        Err(kept_changing())
    }

    /// # Errors
    /// `NotFound` or `PreconditionFailed`.
    pub async fn delete_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        if_match: Option<i64>,
    ) -> ScimResult<()> {
        self.directory
            .delete_user(conn, id, if_match, self.clock.now())
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => user_not_found(id),
                other => other.into(),
            })
    }

    /// # Errors
    /// `InvalidFilter` for a filter the store cannot evaluate.
    pub async fn list_users(
        &self,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> ScimResult<Listed<UserRecord>> {
        self.directory
            .list_users(conn, query)
            .await
            .map_err(invalid_filter)
    }

    /// `(user, group id, group displayName)` for each of `users`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn groups_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> ScimResult<Vec<(ResourceId, ResourceId, String)>> {
        Ok(self.directory.groups_of(conn, users).await?)
    }

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
            .ok_or_else(|| group_not_found(id))
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
            .replace_group(
                conn,
                id,
                &fields,
                Some(&members),
                if_match,
                self.clock.now(),
            )
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => group_not_found(id),
                other => other.into(),
            })
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
        for _ in 0..PATCH_RETRIES {
            let current = self.get_group(conn, id).await?;
            check_if_match(if_match, current.version)?;
            let mut resource = current.fields.resource.clone();
            let outcome = apply_patch(&mut resource, &patch.operations, ResourceKind::Group)?;
            self.check_member_count(
                outcome
                    .member_changes
                    .iter()
                    .map(|change| match change {
                        MemberChange::Add(values)
                        | MemberChange::Remove(values)
                        | MemberChange::ReplaceAll(values) => values.len(),
                        MemberChange::RemoveAll => 0,
                    })
                    .sum(),
            )?;
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
            // Member-only changes need no version check: they are row operations.
            let expected = if_match.or(fields.as_ref().map(|_| current.version));
            match self
                .directory
                .patch_group(
                    conn,
                    id,
                    fields.as_ref(),
                    &outcome.member_changes,
                    &details,
                    expected,
                    self.clock.now(),
                )
                .await
            {
                Err(Error::PreconditionFailed(_)) if if_match.is_none() => continue,
                Err(Error::NotFound { .. }) => return Err(group_not_found(id)),
                other => return Ok(other?),
            }
        }
        Err(kept_changing())
    }

    /// # Errors
    /// `NotFound` or `PreconditionFailed`.
    pub async fn delete_group(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        if_match: Option<i64>,
    ) -> ScimResult<()> {
        self.directory
            .delete_group(conn, id, if_match, self.clock.now())
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => group_not_found(id),
                other => other.into(),
            })
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

/// Longest identifier (userName, externalId, displayName, email) kept, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 1024;

fn check_identifier(name: &str, value: Option<&str>) -> ScimResult<()> {
    match value {
        Some(value) if value.len() > MAX_IDENTIFIER_BYTES => Err(ScimError::InvalidValue(format!(
            "'{name}' is {} bytes; at most {MAX_IDENTIFIER_BYTES} are allowed",
            value.len()
        ))),
        _ => Ok(()),
    }
}

/// How many array elements `value` holds at any depth.
fn array_elements(value: &Value) -> usize {
    let mut count = 0;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Array(items) => {
                count += items.len();
                pending.extend(items);
            }
            Value::Object(map) => pending.extend(map.values()),
            _ => {}
        }
    }
    count
}

/// The length of `value` as compact JSON, without building the string.
fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing a Value to an infallible sink cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

fn check_if_match(if_match: Option<i64>, current: i64) -> ScimResult<()> {
    match if_match {
        Some(expected) if expected != current => Err(ScimError::PreconditionFailed(
            "the resource has changed since that version".into(),
        )),
        _ => Ok(()),
    }
}

/// A PATCH without `If-Match` lost the optimistic race [`PATCH_RETRIES`] times in a row.
fn kept_changing() -> ScimError {
    ScimError::Unavailable("the resource kept changing under this PATCH; retry".into())
}

fn invalid_filter(err: Error) -> ScimError {
    match err {
        Error::Invalid { message, .. } => ScimError::InvalidFilter(message),
        other => other.into(),
    }
}
