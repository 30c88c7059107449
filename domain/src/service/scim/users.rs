//! `/Users`: create, read, replace, PATCH, delete and list a directory's users.

use super::*;

impl ScimService {
    /// A new user is in no group yet.
    ///
    /// # Errors
    /// `InvalidValue`/`InvalidSyntax` for a bad body, `Uniqueness` for a taken userName.
    pub async fn create_user(&self, conn: ConnectionId, body: Value) -> ScimResult<UserView> {
        let fields = UserFields::from_scim(body)?;
        self.check_user(&fields)?;
        let record = self
            .directory
            .create_user(conn, &fields, self.clock.now())
            .await
            .map_err(user_name_taken)?;
        Ok(UserView {
            record,
            groups: Vec::new(),
        })
    }

    /// # Errors
    /// `NotFound`.
    pub async fn get_user(
        &self,
        conn: ConnectionId,
        id: ResourceId,
        groups: WithGroups,
    ) -> ScimResult<UserView> {
        self.directory
            .find_user(conn, id, groups)
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
        groups: WithGroups,
    ) -> ScimResult<UserView> {
        let fields = UserFields::from_scim(body)?;
        self.check_user(&fields)?;
        let record = self
            .directory
            .replace_user(conn, id, &fields, if_match, self.clock.now())
            .await
            .map_err(user_name_taken)?;
        let groups = match groups {
            WithGroups::Yes => self.groups_of(conn, &[id]).await?,
            WithGroups::No => Vec::new(),
        };
        Ok(UserView { record, groups })
    }

    /// Applies a PATCH atomically: all operations or none. The groups are
    /// read with the user: a PATCH cannot change them (`groups` is read-only
    /// on a User), so the answer needs no read after the write.
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
        groups: WithGroups,
    ) -> ScimResult<UserView> {
        patch.validate()?;
        self.check_patch_size(patch, ResourceKind::User)?;
        for _ in 0..PATCH_RETRIES {
            let current = self.get_user(conn, id, groups).await?;
            check_if_match(if_match, current.record.version)?;
            let mut resource = current.record.fields.resource.clone();
            let outcome = apply_patch(&mut resource, &patch.operations, ResourceKind::User)?;
            if !outcome.changed {
                return Ok(current);
            }
            let fields = UserFields::from_scim(resource)?;
            self.check_user(&fields)?;
            match self
                .directory
                .replace_user(
                    conn,
                    id,
                    &fields,
                    Some(current.record.version),
                    self.clock.now(),
                )
                .await
            {
                Err(Error::PreconditionFailed(_)) if if_match.is_none() => continue,
                Err(e) => return Err(user_name_taken(e)),
                Ok(record) => {
                    return Ok(UserView {
                        record,
                        groups: current.groups,
                    })
                }
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
        groups: WithGroups,
    ) -> ScimResult<Listed<UserView>> {
        self.directory
            .list_users(conn, query, groups)
            .await
            .map_err(invalid_filter)
    }

    async fn groups_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> ScimResult<Vec<GroupRef>> {
        Ok(self
            .directory
            .groups_of(conn, users)
            .await?
            .into_iter()
            .map(|(_, id, display_name)| GroupRef { id, display_name })
            .collect())
    }
}
