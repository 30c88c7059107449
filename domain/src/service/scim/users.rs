//! `/Users`: create, read, replace, PATCH and list a directory's users
//! (deleting is shared with groups, in the parent module).

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
            .ok_or_else(|| not_found(ResourceKind::User, id))
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
        self.directory
            .replace_user(self.target(conn, id, if_match), &fields, groups)
            .await
            .map_err(user_name_taken)
    }

    /// Applies a PATCH atomically: all operations or none. The groups come
    /// back with the write (`groups` is read-only on a User, so a PATCH
    /// cannot change them).
    ///
    /// The user as this process last saw it is tried first: it saves the
    /// read, and the write expects its version, so it succeeds only if that
    /// was still the current one. Anything else it leads to (a stale version,
    /// a PATCH error, no change) is decided again on the stored user.
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
        if let Some(recent) = self.directory.recent_user(conn, id) {
            if if_match.is_none_or(|expected| expected == recent.version) {
                if let Ok(Some(view)) = self.patch_once(&recent, patch, groups).await {
                    return Ok(view);
                }
            }
        }
        for _ in 0..PATCH_RETRIES {
            let current = self.get_user(conn, id, groups).await?;
            check_if_match(if_match, current.record.version)?;
            match self.patch_once(&current.record, patch, groups).await {
                Ok(Some(view)) => return Ok(view),
                Ok(None) => return Ok(current),
                Err(ScimError::PreconditionFailed(_)) if if_match.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(kept_changing())
    }

    /// One attempt of a PATCH on `base`, written only if `base` is still the
    /// stored version; `None` when the PATCH changes nothing in `base`.
    async fn patch_once(
        &self,
        base: &UserRecord,
        patch: &PatchRequest,
        groups: WithGroups,
    ) -> ScimResult<Option<UserView>> {
        let mut resource = base.fields.resource.clone();
        let outcome = apply_patch(&mut resource, &patch.operations, ResourceKind::User)?;
        if !outcome.changed {
            return Ok(None);
        }
        let fields = UserFields::from_scim(resource)?;
        self.check_user(&fields)?;
        let view = self
            .directory
            .replace_user(
                self.target(base.connection_id, base.id, Some(base.version)),
                &fields,
                groups,
            )
            .await
            .map_err(user_name_taken)?;
        Ok(Some(view))
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
}
