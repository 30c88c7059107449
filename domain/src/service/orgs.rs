//! Managing the organization tree.

use std::sync::Arc;

use crate::audit::{Actor, AuditEntry};
use crate::auth::{Action, Principal};
use crate::limits::Limits;
use crate::org::{NewOrganization, OrgId, OrgName, Organization, TreeNode};
use crate::page::{Page, PageRequest};
use crate::ports::{AuditLog, Clock, OrgRepository};
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
    audit: Arc<dyn AuditLog>,
    limits: Limits,
}

impl OrgService {
    pub fn new(
        repo: Arc<dyn OrgRepository>,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditLog>,
    ) -> Self {
        Self {
            repo,
            clock,
            audit,
            limits: Limits::default(),
        }
    }

    /// The same service with other bounds than the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Records a change in the audit log, made `by` an admin (a principal)
    /// or anyone else (a sync job, an IdP). The change is already committed,
    /// so a failure to record is reported, not undone.
    pub(crate) async fn audit(
        &self,
        by: impl Into<Actor>,
        org: OrgId,
        action: &str,
        target: (&str, String),
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<()> {
        let entry = AuditEntry::new(
            org,
            by.into(),
            action,
            target,
            before,
            after,
            self.clock.now(),
        );
        self.audit.append(&entry).await
    }

    /// The audit log of an org, newest first.
    ///
    /// # Errors
    /// As [`Self::authorize`] with `Read`.
    pub async fn audit_log(
        &self,
        principal: &Principal,
        org: OrgId,
        filter: &crate::audit::AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.authorize(principal, org, Action::Read).await?;
        self.audit.list(org, filter, page).await
    }

    /// Authorizes `action` on `org` and checks that `conn` is one of its
    /// own connections (another org's is "not found", as out of reach).
    ///
    /// # Errors
    /// As [`Self::authorize`]; `NotFound` for a connection of another org.
    pub(crate) async fn authorize_connection(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: crate::directory::ConnectionId,
        action: Action,
        connections: &dyn crate::ports::ConnectionRepository,
    ) -> Result<()> {
        self.authorize(principal, org, action).await?;
        connections
            .find(org, conn)
            .await?
            .map(|_| ())
            .ok_or(Error::NotFound {
                entity: "connection",
            })
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
        self.insert_audited(principal, new.into_root(self.clock.now()))
            .await
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
        // A bounded tree keeps every walk of it (reach checks, tree views,
        // cascades) bounded too.
        if self.repo.depth(parent.id).await? >= self.limits.org_depth {
            return Err(Error::invalid(
                "parent",
                format!(
                    "the tree may be at most {} levels deep below its root (limits.org_depth)",
                    self.limits.org_depth
                ),
            ));
        }
        let child = new.into_child_of(&parent, self.clock.now());
        self.insert_audited(principal, child).await.map_err(|e| {
            e.when_limit_reached(|| {
                Error::invalid(
                    "parent",
                    format!(
                        "an organization may have at most {} children (limits.org_children)",
                        self.limits.org_children
                    ),
                )
            })
        })
    }

    /// Stores a new organization and its `org.created` audit entry.
    async fn insert_audited(
        &self,
        principal: &Principal,
        org: Organization,
    ) -> Result<Organization> {
        self.repo.insert(&org, self.limits.org_children).await?;
        self.audit(
            principal,
            org.id,
            "org.created",
            ("org", org.id.to_string()),
            None,
            Some(view(&org)),
        )
        .await?;
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
        let before = view(&org);
        let mut changed = false;
        if let Some(name) = changes.name {
            changed |= org.name != name;
            org.name = name;
        }
        if changed {
            org.updated_at = self.clock.now();
            self.repo.update(&org).await?;
            self.audit(
                principal,
                org.id,
                "org.updated",
                ("org", org.id.to_string()),
                Some(before),
                Some(view(&org)),
            )
            .await?;
        }
        Ok(org)
    }

    /// Deletes `org`, which the caller has authorised and emptied of
    /// members (`members_removed` of them, each recorded on its own), and
    /// records it on the parent: the org's own entries go with it.
    ///
    /// # Errors
    /// `Conflict(HasChildren)` or `Conflict(HasMembers)` when a child or a
    /// member appeared meanwhile; `NotFound` when it is gone already.
    pub(in crate::service) async fn delete_emptied(
        &self,
        principal: &Principal,
        org: &Organization,
        members_removed: usize,
    ) -> Result<()> {
        self.repo.delete_leaf(org.id, self.clock.now()).await?;
        let mut before = view(org);
        before["members_removed"] = members_removed.into();
        self.audit(
            principal,
            org.parent_id.unwrap_or(org.id),
            "org.deleted",
            ("org", org.id.to_string()),
            Some(before),
            None,
        )
        .await
    }
}

/// The audited view of an organization.
fn view(org: &Organization) -> serde_json::Value {
    serde_json::json!({
        "name": org.name.as_str(),
        "slug": org.slug.as_str(),
        "kind": org.kind,
        "parent_id": org.parent_id,
        "provisioning_mode": org.provisioning_mode,
    })
}
