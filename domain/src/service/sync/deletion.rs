//! Deleting an org. Its members are removed first, through the same
//! preview and confirmation as every other change that removes people, and
//! each removal is recorded with its `member.removed` event; only then does
//! the org go, and its parent hears of it (`organization.deleted`).

use super::settings::require_confirmation_described;
use super::*;

impl SyncService {
    /// What deleting `org` would do: every member removed.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Delete`; `Conflict(HasChildren)`
    /// while it has children (it could not be deleted).
    pub async fn preview_org_deletion(&self, principal: &Principal, org: OrgId) -> Result<Preview> {
        let org = self.orgs.authorize(principal, org, Action::Delete).await?;
        self.require_leaf(org.id).await?;
        let plan = self.plan_removing_everyone(org.id, Waiter::Request).await?;
        Ok(Preview::of(plan.changes, &deletion_of(org.id)))
    }

    /// Deletes `org` and its members. When it has any, `confirm` must be the
    /// confirmation of the preview listing them.
    ///
    /// # Errors
    /// As [`Self::preview_org_deletion`]; `Conflict(ConfirmationRequired)`
    /// when members would go unconfirmed (or the preview is out of date);
    /// `Conflict(HasMembers)` when someone joined while the removals were
    /// applied (those are done and recorded; the org stays).
    pub async fn delete_org(
        &self,
        principal: &Principal,
        org: OrgId,
        confirm: Option<&str>,
    ) -> Result<()> {
        let org = self.orgs.authorize(principal, org, Action::Delete).await?;
        self.as_writer(org.id, self.delete_org_as_writer(principal, &org, confirm))
            .await
    }

    async fn delete_org_as_writer(
        &self,
        principal: &Principal,
        org: &Organization,
        confirm: Option<&str>,
    ) -> Result<()> {
        // Refused before anyone is removed: a parent cannot be deleted at all.
        self.require_leaf(org.id).await?;
        let plan = self.plan_removing_everyone(org.id, Waiter::Request).await?;
        let preview = Preview::of(plan.changes, &deletion_of(org.id));
        let id = org.id;
        require_confirmation_described(id, &preview, confirm, |counts, token| {
            format!(
                "deleting this organization removes its {} member(s); review them \
                 (GET /api/v1/orgs/{id}/deletion-preview) and repeat the request with \
                 ?confirm={token}",
                counts.removals
            )
        })?;
        self.apply(
            org.id,
            &preview.changes,
            &plan.current,
            &Actor::of(principal),
        )
        .await?;
        let removed = preview.counts.removals;
        self.orgs.delete_emptied(principal, org, removed).await?;
        if let Some(parent) = org.parent_id {
            let data = serde_json::json!({
                "id": org.id,
                "parent_id": parent,
                "name": org.name.as_str(),
                "slug": org.slug.as_str(),
                "kind": org.kind,
                "members_removed": removed,
            });
            self.publish(parent, crate::events::EventType::OrganizationDeleted, data)
                .await?;
        }
        Ok(())
    }

    async fn require_leaf(&self, org: OrgId) -> Result<()> {
        if self.ports.orgs.count_children(org).await? > 0 {
            return Err(Error::conflict(
                ConflictCode::HasChildren,
                "the organization has child organizations; delete them first",
            ));
        }
        Ok(())
    }
}

/// What a deletion's confirmation is bound to besides its removals, so the
/// confirmation of another change (or another org's deletion) is refused.
fn deletion_of(org: OrgId) -> serde_json::Value {
    serde_json::json!({ "delete_organization": org })
}
