//! Enterprise connections and their directory-sync credentials (admin side).

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Action, Principal};
use crate::directory::{ConnectionId, EnterpriseConnection, ScimToken};
use crate::error::ConflictCode;
use crate::events::EventType;
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::ports::{Clock, ConnectionRepository, SecretSource};
use crate::service::{OrgService, SourceApplied, SyncService};
use crate::sync::{SourceChange, SourcePlan};
use crate::{Error, Result};

#[derive(Clone)]
pub struct ConnectionService {
    orgs: OrgService,
    /// Turning directory sync on or off, or deleting a connection, moves
    /// orgs to another directory: sync previews and applies that.
    sync: SyncService,
    repo: Arc<dyn ConnectionRepository>,
    secrets: Arc<dyn SecretSource>,
    clock: Arc<dyn Clock>,
    /// How long a rotated-out token keeps working.
    rotation_grace: Duration,
}

/// What turning directory sync on or off did.
#[derive(Debug)]
pub struct DirectorySyncChanged {
    pub connection: EnterpriseConnection,
    /// Issued when directory sync was turned on; shown once.
    pub token: Option<ScimToken>,
    /// The orgs that moved to another directory, and how each was reconciled.
    pub applied: Vec<SourceApplied>,
}

/// The audit record of a source change: which orgs moved where, with what effect.
fn source_audit(plan: &SourcePlan) -> serde_json::Value {
    serde_json::json!({
        "moved_orgs": plan.orgs.iter().map(|moved| serde_json::json!({
            "org_id": moved.shift.org_id,
            "from": moved.shift.from,
            "to": moved.shift.to,
            "counts": moved.effect.counts,
        })).collect::<Vec<_>>(),
        "confirmed": plan.is_destructive().then_some(&plan.confirmation),
    })
}

fn not_found() -> Error {
    Error::NotFound {
        entity: "connection",
    }
}

impl ConnectionService {
    pub fn new(
        orgs: OrgService,
        sync: SyncService,
        repo: Arc<dyn ConnectionRepository>,
        secrets: Arc<dyn SecretSource>,
        clock: Arc<dyn Clock>,
        rotation_grace: Duration,
    ) -> Self {
        Self {
            orgs,
            sync,
            repo,
            secrets,
            clock,
            rotation_grace,
        }
    }

    async fn load(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ConnectionId,
        action: Action,
    ) -> Result<EnterpriseConnection> {
        // Reading an org suffices to locate its connections; changing them needs Write.
        let needed = if action == Action::Read {
            Action::Read
        } else {
            Action::Write
        };
        self.orgs.authorize(principal, org, needed).await?;
        self.repo.find(org, id).await?.ok_or_else(not_found)
    }

    /// # Errors
    /// As `OrgService::authorize` with `Write`; `Invalid` for a bad name.
    pub async fn create(
        &self,
        principal: &Principal,
        org: OrgId,
        name: &str,
    ) -> Result<EnterpriseConnection> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let now = self.clock.now();
        let connection = EnterpriseConnection {
            id: ConnectionId::new(),
            org_id: org,
            name: EnterpriseConnection::parse_name(name)?,
            directory_sync_enabled: false,
            created_at: now,
            updated_at: now,
        };
        // Each connection is another SCIM token with a rate limit of its
        // own: a bound on them is a bound on what one org's IdPs may send.
        let most = self.orgs.limits().connections_per_org;
        self.repo.insert(&connection, most).await.map_err(|e| {
            e.when_limit_reached(|| {
                Error::conflict(
                    ConflictCode::LimitReached,
                    format!("an organization has at most {most} connections (limits.connections_per_org)"),
                )
            })
        })?;
        self.orgs
            .audit(
                principal,
                org,
                "connection.created",
                ("connection", connection.id.to_string()),
                None,
                Some(serde_json::json!({"name": connection.name})),
            )
            .await?;
        Ok(connection)
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn list(
        &self,
        principal: &Principal,
        org: OrgId,
        page: PageRequest,
    ) -> Result<Page<EnterpriseConnection>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.repo.list(org, page).await
    }

    /// # Errors
    /// `NotFound` when the org has no such connection, or as `authorize`.
    pub async fn get(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ConnectionId,
    ) -> Result<EnterpriseConnection> {
        self.load(principal, org, id, Action::Read).await
    }

    /// What deleting the connection, or turning its directory sync on or
    /// off, would do to the orgs drawing on it: the same plan the change
    /// itself checks its confirmation against.
    ///
    /// # Errors
    /// `NotFound` when the org has no such connection, or as `authorize`.
    pub async fn preview_source_change(
        &self,
        principal: &Principal,
        org: OrgId,
        change: SourceChange,
    ) -> Result<SourcePlan> {
        self.load(principal, org, change.connection(), Action::Write)
            .await?;
        self.sync.plan_source_change(change).await
    }

    /// Deletes the connection and its directory. Orgs that drew on it move to
    /// the next directory up the tree (keeping members it also lists, matched
    /// by email) or to none (keeping every member); when that removes anyone,
    /// `confirm` must be the token of the plan showing it.
    ///
    /// # Errors
    /// `NotFound` when the org has no such connection, or as `authorize`;
    /// `ConfirmationRequired` as above.
    pub async fn delete(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ConnectionId,
        confirm: Option<&str>,
    ) -> Result<Vec<SourceApplied>> {
        let connection = self.load(principal, org, id, Action::Write).await?;
        let plan = self
            .sync
            .plan_source_change(SourceChange::DeleteConnection { connection_id: id })
            .await?;
        plan.require_confirmation(confirm)?;
        self.repo.delete(org, id).await?;
        if connection.directory_sync_enabled {
            self.sync
                .publish(
                    org,
                    EventType::ConnectionDeactivated,
                    connection_data(&connection),
                )
                .await?;
        }
        self.orgs
            .audit(
                principal,
                org,
                "connection.deleted",
                ("connection", id.to_string()),
                Some(serde_json::json!({"name": connection.name})),
                Some(source_audit(&plan)),
            )
            .await?;
        Ok(self.sync.apply_source_change(principal, &plan).await)
    }

    /// Turns directory sync on (issuing a token when it was off) or off
    /// (revoking every token; the directory record is kept). Either moves
    /// orgs to another directory; when that removes anyone, `confirm` must be
    /// the token of the plan showing it.
    ///
    /// # Errors
    /// `NotFound` when the org has no such connection, or as `authorize`;
    /// `ConfirmationRequired` as above.
    pub async fn set_directory_sync(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ConnectionId,
        enabled: bool,
        confirm: Option<&str>,
    ) -> Result<DirectorySyncChanged> {
        let mut connection = self.load(principal, org, id, Action::Write).await?;
        if connection.directory_sync_enabled == enabled {
            return Ok(DirectorySyncChanged {
                connection,
                token: None,
                applied: Vec::new(),
            });
        }
        let change = if enabled {
            SourceChange::EnableDirectorySync { connection_id: id }
        } else {
            SourceChange::DisableDirectorySync { connection_id: id }
        };
        let plan = self.sync.plan_source_change(change).await?;
        plan.require_confirmation(confirm)?;
        let now = self.clock.now();
        self.repo.set_directory_sync(org, id, enabled, now).await?;
        connection.directory_sync_enabled = enabled;
        connection.updated_at = now;
        let token = if enabled {
            Some(self.issue(id, Duration::ZERO).await?)
        } else {
            None
        };
        let action = if enabled {
            "directory_sync.enabled"
        } else {
            "directory_sync.disabled"
        };
        let mut after = source_audit(&plan);
        after["enabled"] = enabled.into();
        after["token_issued"] = token.is_some().into();
        self.orgs
            .audit(
                principal,
                org,
                action,
                ("connection", id.to_string()),
                Some(serde_json::json!({"enabled": !enabled})),
                Some(after),
            )
            .await?;
        let event_type = if enabled {
            EventType::ConnectionActivated
        } else {
            EventType::ConnectionDeactivated
        };
        self.sync
            .publish(org, event_type, connection_data(&connection))
            .await?;
        let applied = self.sync.apply_source_change(principal, &plan).await;
        Ok(DirectorySyncChanged {
            connection,
            token,
            applied,
        })
    }

    /// Issues a new token; the previous ones keep working for the grace period.
    ///
    /// # Errors
    /// `Conflict` when directory sync is off; otherwise as [`Self::get`].
    pub async fn rotate_token(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ConnectionId,
    ) -> Result<ScimToken> {
        let connection = self.load(principal, org, id, Action::Write).await?;
        if !connection.directory_sync_enabled {
            return Err(Error::conflict(
                crate::error::ConflictCode::DirectorySyncDisabled,
                "directory sync is off for this connection; enable it to get a token",
            ));
        }
        let token = self.issue(id, self.rotation_grace).await?;
        // The token itself is never recorded: only that one was issued, and the grace given.
        self.orgs
            .audit(
                principal,
                org,
                "scim_token.rotated",
                ("connection", id.to_string()),
                None,
                Some(serde_json::json!({"grace_seconds": self.rotation_grace.as_secs()})),
            )
            .await?;
        Ok(token)
    }

    /// Revokes every token at once; SCIM calls answer 401 until a new one is issued.
    ///
    /// # Errors
    /// As [`Self::get`].
    pub async fn revoke_tokens(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ConnectionId,
    ) -> Result<()> {
        self.load(principal, org, id, Action::Write).await?;
        self.repo.revoke_tokens(id, self.clock.now()).await?;
        self.orgs
            .audit(
                principal,
                org,
                "scim_token.revoked",
                ("connection", id.to_string()),
                None,
                None,
            )
            .await
    }

    async fn issue(&self, id: ConnectionId, grace: Duration) -> Result<ScimToken> {
        let token = ScimToken::from_random(self.secrets.random_32());
        let now = self.clock.now();
        let others_expire_at = now + grace;
        self.repo
            .issue_token(id, token.hash(), now, others_expire_at)
            .await?;
        Ok(token)
    }
}

/// A connection as its events carry it.
fn connection_data(connection: &EnterpriseConnection) -> serde_json::Value {
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    serde_json::json!({
        "id": connection.id,
        "org_id": connection.org_id,
        "name": connection.name,
        "directory_sync_enabled": connection.directory_sync_enabled,
        "created_at": rfc3339(connection.created_at),
        "updated_at": rfc3339(connection.updated_at),
    })
}
