//! The audit log: who changed what, when, with the state before and after.
//! Append-only; tokens never appear in it (only that one was issued).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Principal;
use crate::org::OrgId;

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// An admin, by the `sub` of their token (`platform` for the operator).
    Admin { subject: String, platform: bool },
    /// The IdP, through a connection's SCIM API.
    Scim { connection_id: Uuid },
    /// A sync job (one org's part of a sync run).
    Sync { job_id: crate::sync::JobId },
    /// orgsync itself (a webhook endpoint disabled after its retry window).
    System,
    /// A user signing in through a connection's SSO, by the IdP's subject.
    SignIn {
        connection_id: Uuid,
        subject: String,
    },
}

impl Actor {
    pub fn of(principal: &Principal) -> Self {
        Self::Admin {
            subject: principal.subject().to_owned(),
            platform: matches!(principal, Principal::Platform { .. }),
        }
    }
}

impl From<&Principal> for Actor {
    fn from(principal: &Principal) -> Self {
        Self::of(principal)
    }
}

/// One audited change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: Uuid,
    /// The org the change concerns (its tenant's admins may read it).
    pub org_id: OrgId,
    pub actor: Actor,
    /// What happened: `org.created`, `member.updated`, `scim_token.rotated`, ...
    pub action: String,
    pub target_kind: String,
    pub target_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl AuditEntry {
    pub fn new(
        org_id: OrgId,
        actor: Actor,
        action: &str,
        target: (&str, String),
        before: Option<Value>,
        after: Option<Value>,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            org_id,
            actor,
            action: action.to_owned(),
            target_kind: target.0.to_owned(),
            target_id: target.1,
            before,
            after,
            at,
        }
    }
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Actions starting with this (`member.` for every member change).
    pub action_prefix: Option<String>,
    pub target_id: Option<String>,
    /// The admin subject, connection id or run id.
    pub actor: Option<String>,
}
