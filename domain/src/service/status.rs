//! What an admin reads to check that an org is in sync with its directory:
//! sync status (applied versus latest change, lag, last run, last error) and
//! the directory record as the IdP sent it.

use crate::sync::RunId;
use serde::Serialize;
use time::OffsetDateTime;

use super::sync::SyncService;
use crate::auth::{Action, Principal};
use crate::directory::{
    ChangeEvent, ConnectionId, GroupRecord, MemberRef, ResourceId, ScimQuery, UserRecord, UserView,
    WithGroups,
};
use crate::org::{OrgId, ProvisioningMode};
use crate::page::PageRequest;
use crate::ports::Listed;
use crate::sync::{RunStatus, SyncRun};
use crate::{Error, Result};

/// Whether an org is current with the directory it draws on.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    pub org_id: OrgId,
    pub mode: ProvisioningMode,
    /// The connection whose directory the org draws on, if any.
    pub connection_id: Option<ConnectionId>,
    /// The latest change in that directory, and how far this org has applied it.
    pub latest_seq: i64,
    pub applied_seq: i64,
    pub pending_events: i64,
    /// Age of the oldest change not yet applied (0 when current).
    pub lag_seconds: f64,
    pub current: bool,
    pub last_completed_sync: Option<RunSummary>,
    pub last_error: Option<String>,
    /// Removals deletion protection holds for an admin (`GET .../held-removals` lists them).
    pub held_removals: Option<HeldSummary>,
}

/// The counts of a held plan, and the confirmation that applies it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldSummary {
    pub removals: usize,
    pub suspensions: usize,
    pub confirmation: String,
    #[serde(with = "time::serde::rfc3339")]
    pub held_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: RunId,
    pub kind: crate::sync::SyncKind,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl SyncService {
    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn status(&self, principal: &Principal, org: OrgId) -> Result<SyncStatus> {
        let org = self.orgs().authorize(principal, org, Action::Read).await?;
        let ports = self.ports();
        let conn = ports.connections.drawing_connection(org.id).await?;
        let (latest, applied, lag) = match conn {
            Some(conn) if org.provisioning_mode == ProvisioningMode::Scim => {
                let latest = ports.feed.latest_seq(conn).await?;
                let applied = ports.members.cursor(org.id, conn).await?.unwrap_or(0);
                let oldest = ports.feed.events(conn, applied, 1).await?;
                let lag = oldest.first().map_or(0.0, |e| {
                    (ports.clock.now() - e.occurred_at)
                        .as_seconds_f64()
                        .max(0.0)
                });
                (latest, applied.min(latest), lag)
            }
            _ => (0, 0, 0.0),
        };
        let recent = self
            .runs(principal, org.id, PageRequest::new(None, Some(20))?)
            .await?;
        let last_completed_sync = recent
            .items
            .iter()
            .find(|r| r.status == RunStatus::Succeeded)
            .map(|r: &SyncRun| RunSummary {
                id: r.id,
                kind: r.kind,
                finished_at: r.finished_at,
            });
        let last_error = recent
            .items
            .iter()
            .take_while(|r| r.status != RunStatus::Succeeded)
            .find_map(|r| r.error.clone());
        let held_removals = self
            .ports()
            .protection
            .held(org.id)
            .await?
            .map(|held| HeldSummary {
                removals: held.removals.len(),
                suspensions: held.suspensions.len(),
                confirmation: held.confirmation,
                held_at: held.held_at,
            });
        Ok(SyncStatus {
            org_id: org.id,
            mode: org.provisioning_mode,
            connection_id: conn,
            latest_seq: latest,
            applied_seq: applied,
            pending_events: latest - applied,
            lag_seconds: lag,
            current: latest == applied,
            last_completed_sync,
            last_error,
            held_removals,
        })
    }

    async fn owned_connection(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<()> {
        let connections = &*self.ports().connections;
        self.orgs()
            .authorize_connection(principal, org, conn, Action::Read, connections)
            .await
    }

    /// The status of every org drawing on a connection.
    ///
    /// # Errors
    /// `NotFound` for a connection of another org; as `authorize`.
    pub async fn connection_status(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
    ) -> Result<Vec<SyncStatus>> {
        self.owned_connection(principal, org, conn).await?;
        let mut out = Vec::new();
        for drawing in self.ports().connections.orgs_drawing_on(conn).await? {
            // Orgs out of the caller's reach (an ancestor's) are left out, not revealed.
            match self.status(principal, drawing).await {
                Ok(status) => out.push(status),
                Err(Error::NotFound { .. } | Error::Forbidden(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(out)
    }

    /// Directory users as the IdP sent them.
    ///
    /// # Errors
    /// As [`Self::connection_status`]; `Invalid` for a filter the store cannot evaluate.
    pub async fn directory_users(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> Result<Listed<UserRecord>> {
        self.owned_connection(principal, org, conn).await?;
        let listed = self
            .ports()
            .directory
            .list_users(conn, query, WithGroups::No)
            .await?;
        Ok(Listed {
            total: listed.total,
            items: listed.items.into_iter().map(|view| view.record).collect(),
        })
    }

    /// # Errors
    /// `NotFound`; as [`Self::connection_status`].
    pub async fn directory_user(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        user: ResourceId,
    ) -> Result<UserView> {
        self.owned_connection(principal, org, conn).await?;
        self.ports()
            .directory
            .find_user(conn, user, WithGroups::Yes)
            .await?
            .ok_or(Error::NotFound {
                entity: "directory user",
            })
    }

    /// Directory groups with their member counts.
    ///
    /// # Errors
    /// As [`Self::directory_users`].
    pub async fn directory_groups(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        query: &ScimQuery,
    ) -> Result<Listed<GroupRecord>> {
        self.owned_connection(principal, org, conn).await?;
        self.ports().directory.list_groups(conn, query).await
    }

    /// One page of a directory group's members, in value order.
    ///
    /// # Errors
    /// As [`Self::connection_status`].
    pub async fn directory_group_members(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        group: ResourceId,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<MemberRef>> {
        self.owned_connection(principal, org, conn).await?;
        self.ports()
            .directory
            .members(conn, group, after, limit)
            .await
    }

    /// The directory's change feed, newest first, before sequence `before`.
    ///
    /// # Errors
    /// As [`Self::connection_status`].
    pub async fn directory_events(
        &self,
        principal: &Principal,
        org: OrgId,
        conn: ConnectionId,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<ChangeEvent>> {
        self.owned_connection(principal, org, conn).await?;
        self.ports()
            .feed
            .events_before(conn, before.unwrap_or(i64::MAX), limit)
            .await
    }
}
