//! `/Users`: create, read, replace, PATCH, delete and list a directory's users.

use super::*;

impl ScimService {
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
}
