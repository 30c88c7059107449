use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::ConnectionId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    User,
    Group,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }
}

/// What happened to a directory entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Created,
    Updated,
    Deleted,
    /// A group's member list changed (the event's `members_added/removed` say how).
    MembersChanged,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::MembersChanged => "members_changed",
        }
    }
}

/// One change to a directory, in per-connection order (`seq`), carrying the
/// entity's version after the change so consumers can ignore stale replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeEvent {
    pub connection_id: ConnectionId,
    pub seq: i64,
    pub entity: EntityKind,
    pub entity_id: Uuid,
    pub entity_version: i64,
    pub op: ChangeOp,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}
