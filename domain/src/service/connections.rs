//! Enterprise connections and their directory-sync credentials (admin side).

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Action, Principal};
use crate::directory::{ConnectionId, EnterpriseConnection, ScimToken};
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::ports::{Clock, ConnectionRepository, SecretSource};
use crate::service::OrgService;
use crate::{Error, Result};

#[derive(Clone)]
pub struct ConnectionService {
    orgs: OrgService,
    repo: Arc<dyn ConnectionRepository>,
    secrets: Arc<dyn SecretSource>,
    clock: Arc<dyn Clock>,
    /// How long a rotated-out token keeps working.
    rotation_grace: Duration,
}

fn not_found() -> Error {
    Error::NotFound {
        entity: "connection",
    }
}

impl ConnectionService {
    pub fn new(
        orgs: OrgService,
        repo: Arc<dyn ConnectionRepository>,
        secrets: Arc<dyn SecretSource>,
        clock: Arc<dyn Clock>,
        rotation_grace: Duration,
    ) -> Self {
        Self {
            orgs,
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
        self.repo.insert(&connection).await?;
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

    /// # Errors
    /// `NotFound` when the org has no such connection, or as `authorize`.
    pub async fn delete(&self, principal: &Principal, org: OrgId, id: ConnectionId) -> Result<()> {
        let connection = self.load(principal, org, id, Action::Write).await?;
        self.repo.delete(org, id).await?;
        self.orgs
            .audit(
                principal,
                org,
                "connection.deleted",
                ("connection", id.to_string()),
                Some(serde_json::json!({"name": connection.name})),
                None,
            )
            .await
    }

    /// Turns directory sync on (issuing a token when it was off) or off
    /// (revoking every token; the directory record is kept).
    ///
    /// # Errors
    /// `NotFound` when the org has no such connection, or as `authorize`.
    pub async fn set_directory_sync(
        &self,
        principal: &Principal,
        org: OrgId,
        id: ConnectionId,
        enabled: bool,
    ) -> Result<(EnterpriseConnection, Option<ScimToken>)> {
        let mut connection = self.load(principal, org, id, Action::Write).await?;
        if connection.directory_sync_enabled == enabled {
            return Ok((connection, None));
        }
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
        self.orgs
            .audit(
                principal,
                org,
                action,
                ("connection", id.to_string()),
                Some(serde_json::json!({"enabled": !enabled})),
                Some(serde_json::json!({"enabled": enabled, "token_issued": token.is_some()})),
            )
            .await?;
        Ok((connection, token))
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
