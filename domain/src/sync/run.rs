use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::membership::ChangeCounts;
use crate::org::OrgId;

/// What a sync covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncScope {
    /// Who is a member, and each member's role, seat tier, profile and status.
    Members,
    /// What group membership drives: spend limits.
    Groups,
    /// Both, in one run.
    #[default]
    Both,
}

impl SyncScope {
    /// What a job covers once a second request joins it.
    pub fn union(self, other: Self) -> Self {
        if self == other {
            self
        } else {
            Self::Both
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Members => "members",
            Self::Groups => "groups",
            Self::Both => "both",
        }
    }

    /// # Errors
    /// `Invalid` (field `scope`) for anything else.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        match raw {
            "members" => Ok(Self::Members),
            "groups" => Ok(Self::Groups),
            "both" => Ok(Self::Both),
            _ => Err(crate::Error::invalid(
                "scope",
                "must be \"members\", \"groups\" or \"both\"",
            )),
        }
    }
}

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    /// An admin asked ("Sync now").
    Manual,
    /// The provisioning mode changed.
    ModeChange,
    /// Group mappings were saved.
    MappingChange,
    /// The org started drawing on another directory (a connection was turned
    /// on or off, or deleted).
    SourceChange,
}

impl SyncKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::ModeChange => "mode_change",
            Self::MappingChange => "mapping_change",
            Self::SourceChange => "source_change",
        }
    }

    /// # Errors
    /// `Internal` for a value no version of orgsync writes.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        match raw {
            "manual" => Ok(Self::Manual),
            "mode_change" => Ok(Self::ModeChange),
            "mapping_change" => Ok(Self::MappingChange),
            "source_change" => Ok(Self::SourceChange),
            other => Err(crate::Error::Internal(anyhow::anyhow!(
                "unknown sync kind {other}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// # Errors
    /// `Internal` for a value no version of orgsync writes.
    pub fn parse(raw: &str) -> crate::Result<Self> {
        match raw {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            other => Err(crate::Error::Internal(anyhow::anyhow!(
                "unknown run status {other}"
            ))),
        }
    }
}

crate::id::uuid_id!(
    /// Identifies a sync run (a manual sync, a mode or mapping change, and its cascade).
    RunId
);

/// One sync of one org, with its report once finished.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    pub id: RunId,
    pub org_id: OrgId,
    pub kind: SyncKind,
    pub scope: SyncScope,
    pub requested_by: String,
    pub status: RunStatus,
    pub counts: ChangeCounts,
    /// The applied change set (adds, updates with field diffs, removals, each with reasons).
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}
