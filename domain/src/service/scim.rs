//! The SCIM service provider's use cases, for one connection's directory.
//! Authentication resolves the connection; every operation is scoped to it.

use std::sync::Arc;

use serde_json::Value;

use crate::directory::{
    ConnectionId, GroupFields, GroupRecord, MemberRef, ResourceId, ScimError, ScimQuery, TokenHash,
    UserFields, UserRecord, UserView, WithGroups,
};
use crate::limits::Limits;
use crate::org::OrgId;
use crate::ports::{
    Clock, ConnectionRepository, DirectoryRepository, GroupGuard, GroupPatch, Listed, WriteTarget,
};
use crate::scim::{apply_patch, MemberChange, PatchRequest, ResourceKind};
use crate::Error;

mod groups;
mod guards;
mod users;

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

fn not_found(kind: ResourceKind, id: ResourceId) -> ScimError {
    ScimError::NotFound(format!("{} {id} not found", kind.core_schema().name))
}

/// The repository's `NotFound` as SCIM's for the `kind` resource `id`; any
/// other error as it is.
fn not_found_as(kind: ResourceKind, id: ResourceId) -> impl FnOnce(Error) -> ScimError {
    move |err| match err {
        Error::NotFound { .. } => not_found(kind, id),
        other => other.into(),
    }
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

    /// A replace or delete of `id`, as of now.
    fn target(&self, conn: ConnectionId, id: ResourceId, if_match: Option<i64>) -> WriteTarget {
        WriteTarget {
            conn,
            id,
            expected_version: if_match,
            now: self.clock.now(),
        }
    }

    /// Deletes a user or a group; both answer alike.
    ///
    /// # Errors
    /// `NotFound` or `PreconditionFailed`.
    pub async fn delete(
        &self,
        kind: ResourceKind,
        conn: ConnectionId,
        id: ResourceId,
        if_match: Option<i64>,
    ) -> ScimResult<()> {
        let target = self.target(conn, id, if_match);
        match kind {
            ResourceKind::User => self.directory.delete_user(target).await,
            ResourceKind::Group => self.directory.delete_group(target).await,
        }
        .map_err(not_found_as(kind, id))
    }

    /// Checks a bearer token against the connection's live tokens, in
    /// constant time: the tenant (root org) the call then counts against.
    ///
    /// # Errors
    /// `Unauthorized` for a missing, wrong, expired or revoked token, or when
    /// directory sync is off; the message never says which.
    pub async fn authenticate(
        &self,
        conn: ConnectionId,
        bearer: Option<&str>,
    ) -> ScimResult<OrgId> {
        let unauthorized = || ScimError::Unauthorized("a valid bearer token is required".into());
        let presented = TokenHash::of(bearer.ok_or_else(unauthorized)?);
        let access = self
            .connections
            .scim_access(conn, self.clock.now())
            .await?
            .ok_or_else(unauthorized)?;
        // Compare against every live token, so timing does not depend on which matched.
        let matched = access
            .token_hashes
            .iter()
            .fold(false, |found, hash| hash.matches(&presented) | found);
        if matched {
            Ok(access.tenant)
        } else {
            Err(unauthorized())
        }
    }
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
