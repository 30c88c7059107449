//! Managing the organization tree.

use std::sync::Arc;

use crate::auth::{Action, Principal};
use crate::org::{NewOrganization, OrgId, OrgName, Organization, TreeNode};
use crate::page::{Page, PageRequest};
use crate::ports::{Clock, OrgRepository};
use crate::{Error, Result};

/// The fields of an organization an admin may change.
#[derive(Debug, Clone, Default)]
pub struct OrgChanges {
    pub name: Option<OrgName>,
}

/// Creates, reads, renames and deletes organizations on behalf of a caller.
#[derive(Clone)]
pub struct OrgService {
    repo: Arc<dyn OrgRepository>,
    clock: Arc<dyn Clock>,
}

impl OrgService {
    pub fn new(repo: Arc<dyn OrgRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { repo, clock }
    }

    /// Loads `id` if the caller may perform `action` on it.
    ///
    /// # Errors
    /// `NotFound` when it does not exist or is out of the caller's reach;
    /// `Forbidden` when the caller's role does not allow `action`.
    pub async fn authorize(
        &self,
        principal: &Principal,
        id: OrgId,
        action: Action,
    ) -> Result<Organization> {
        let org = self.repo.find(id).await?.ok_or(Error::NotFound {
            entity: "organization",
        })?;
        let within_reach = match principal.anchor() {
            None => true,
            Some(anchor) => self.repo.is_within(anchor, id).await?,
        };
        principal.authorize(id, within_reach, action)?;
        Ok(org)
    }

    /// Creates a new tenant.
    ///
    /// # Errors
    /// `Forbidden` unless the caller is the platform; `Invalid` for a sandbox
    /// root (a sandbox always has a parent); `Conflict` for a taken slug.
    pub async fn create_root(
        &self,
        principal: &Principal,
        new: NewOrganization,
    ) -> Result<Organization> {
        principal.require_platform()?;
        if new.kind == crate::org::OrgKind::Sandbox {
            return Err(Error::invalid(
                "kind",
                "a root organization cannot be a sandbox",
            ));
        }
        let org = new.into_root(self.clock.now());
        self.repo.insert(&org).await?;
        Ok(org)
    }

    /// Creates a child (or sandbox) organization under `parent`.
    ///
    /// # Errors
    /// As [`Self::authorize`] with `Write` on the parent; `Conflict` for a slug
    /// taken in the tenant.
    pub async fn create_child(
        &self,
        principal: &Principal,
        parent: OrgId,
        new: NewOrganization,
    ) -> Result<Organization> {
        let parent = self.authorize(principal, parent, Action::Write).await?;
        let org = new.into_child_of(&parent, self.clock.now());
        self.repo.insert(&org).await?;
        Ok(org)
    }

    /// # Errors
    /// As [`Self::authorize`] with `Read`.
    pub async fn get(&self, principal: &Principal, id: OrgId) -> Result<Organization> {
        self.authorize(principal, id, Action::Read).await
    }

    /// # Errors
    /// As [`Self::authorize`] with `Read` on the parent.
    pub async fn children(
        &self,
        principal: &Principal,
        parent: OrgId,
        page: PageRequest,
    ) -> Result<Page<Organization>> {
        self.authorize(principal, parent, Action::Read).await?;
        self.repo.children(parent, page).await
    }

    /// # Errors
    /// As [`Self::authorize`] with `Read` on the subtree's top.
    pub async fn subtree(&self, principal: &Principal, top: OrgId) -> Result<Vec<TreeNode>> {
        self.authorize(principal, top, Action::Read).await?;
        self.repo.subtree(top).await
    }

    /// # Errors
    /// As [`Self::authorize`] with `Write`.
    pub async fn update(
        &self,
        principal: &Principal,
        id: OrgId,
        changes: OrgChanges,
    ) -> Result<Organization> {
        let mut org = self.authorize(principal, id, Action::Write).await?;
        let mut changed = false;
        if let Some(name) = changes.name {
            changed |= org.name != name;
            org.name = name;
        }
        if changed {
            org.updated_at = self.clock.now();
            self.repo.update(&org).await?;
        }
        Ok(org)
    }

    /// # Errors
    /// As [`Self::authorize`] with `Delete`; `Conflict(HasChildren)` while it has children.
    pub async fn delete(&self, principal: &Principal, id: OrgId) -> Result<()> {
        self.authorize(principal, id, Action::Delete).await?;
        self.repo.delete_leaf(id).await
    }
}
