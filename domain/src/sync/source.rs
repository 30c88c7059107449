//! Source changes: which directory an org draws on moves when a connection is
//! turned on or off or deleted. Each org that moves is reconciled against its
//! new directory, so the change is previewed, org by org, and confirmed like a
//! mode switch before anyone is removed.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::Preview;
use crate::directory::ConnectionId;
use crate::membership::{ChangeCounts, Removal};
use crate::org::OrgId;

/// Removals listed per org in a confirmation request; the counts are always complete.
pub const LISTED_REMOVALS: usize = 100;

/// What a connection change does to the directories orgs draw on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SourceChange {
    EnableDirectorySync { connection_id: ConnectionId },
    DisableDirectorySync { connection_id: ConnectionId },
    DeleteConnection { connection_id: ConnectionId },
}

impl SourceChange {
    pub fn connection(self) -> ConnectionId {
        match self {
            Self::EnableDirectorySync { connection_id }
            | Self::DisableDirectorySync { connection_id }
            | Self::DeleteConnection { connection_id } => connection_id,
        }
    }

    /// Whether the connection still provides a directory afterwards.
    pub fn enabled_after(self) -> bool {
        matches!(self, Self::EnableDirectorySync { .. })
    }
}

/// An org (in SCIM mode) whose directory a change moves: from `from` to `to`
/// (`None`: no directory; its members then stay as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SourceShift {
    pub org_id: OrgId,
    pub from: Option<ConnectionId>,
    pub to: Option<ConnectionId>,
}

/// What a change that needs confirming would do to one org.
#[derive(Debug, Clone, Serialize)]
pub struct OrgEffect {
    pub org_id: OrgId,
    /// The directory the org would draw on afterwards, for a source change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draws_on: Option<ConnectionId>,
    pub counts: ChangeCounts,
    /// The first [`LISTED_REMOVALS`] removals, by email.
    pub removals: Vec<Removal>,
    pub removals_truncated: bool,
}

impl OrgEffect {
    pub fn of(org_id: OrgId, draws_on: Option<ConnectionId>, preview: &Preview) -> Self {
        let removals = &preview.changes.removals;
        Self {
            org_id,
            draws_on,
            counts: preview.counts,
            removals: removals.iter().take(LISTED_REMOVALS).cloned().collect(),
            removals_truncated: removals.len() > LISTED_REMOVALS,
        }
    }
}

/// A change that removes or suspends members and was not confirmed: what it
/// would do, org by org, and the token the same request must carry to apply it.
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmationNeeded {
    #[serde(skip)]
    pub detail: String,
    pub confirmation: String,
    pub effects: Vec<OrgEffect>,
}

/// What a source change's plan keeps of one moved org: the confirmation of
/// its preview and its effect. The org's change set itself is dropped once
/// the org is planned, so a change moving many large orgs holds one org's
/// plan at a time, not all of them.
#[derive(Debug, Clone)]
pub struct MovedOrg {
    pub shift: SourceShift,
    pub confirmation: String,
    pub effect: OrgEffect,
}

impl MovedOrg {
    pub fn new(shift: SourceShift, preview: &Preview) -> Self {
        Self {
            shift,
            confirmation: preview.confirmation.clone(),
            effect: OrgEffect::of(shift.org_id, shift.to, preview),
        }
    }

    pub fn is_destructive(&self) -> bool {
        let counts = &self.effect.counts;
        counts.removals > 0 || counts.suspensions > 0
    }
}

/// The per-org previews of a source change and the one token that confirms
/// all of them (and only for this change: another connection or direction
/// gives another token).
#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub change: SourceChange,
    pub orgs: Vec<MovedOrg>,
    pub confirmation: String,
}

impl SourcePlan {
    pub fn new(change: SourceChange, orgs: Vec<MovedOrg>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(&change).unwrap_or_default());
        for moved in &orgs {
            hasher.update(moved.shift.org_id.0.as_bytes());
            hasher.update(moved.confirmation.as_bytes());
        }
        let digest = hasher.finalize();
        let confirmation = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self {
            change,
            orgs,
            confirmation,
        }
    }

    pub fn is_destructive(&self) -> bool {
        self.orgs.iter().any(MovedOrg::is_destructive)
    }

    /// Removals and suspensions over every org.
    pub fn destructive_total(&self) -> (usize, usize) {
        self.orgs.iter().fold((0, 0), |(r, s), moved| {
            let counts = &moved.effect.counts;
            (r + counts.removals, s + counts.suspensions)
        })
    }

    /// `Ok` when nothing is removed or `confirm` is this plan's token.
    ///
    /// # Errors
    /// `ConfirmationRequired` with every org's effect otherwise.
    pub fn require_confirmation(&self, confirm: Option<&str>) -> crate::Result<()> {
        if !self.is_destructive() || confirm == Some(self.confirmation.as_str()) {
            return Ok(());
        }
        let (removals, suspensions) = self.destructive_total();
        let affected = self.orgs.iter().filter(|m| m.is_destructive()).count();
        Err(crate::Error::ConfirmationRequired(Box::new(
            ConfirmationNeeded {
                detail: format!(
                    "this change moves {} organization(s) to another directory, which removes {removals} \
                     and suspends {suspensions} member(s) in {affected} of them; review \"effects\" and \
                     repeat the request with \"confirm\": \"{}\"",
                    self.orgs.len(),
                    self.confirmation
                ),
                confirmation: self.confirmation.clone(),
                effects: self.orgs.iter().map(|m| m.effect.clone()).collect(),
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{ChangeSet, MemberId, Reason};
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn preview(removed: usize) -> Preview {
        let mut changes = ChangeSet::empty(OffsetDateTime::UNIX_EPOCH);
        for i in 0..removed {
            changes.removals.push(Removal {
                member_id: MemberId(Uuid::from_u128(i as u128 + 1)),
                email: format!("u{i}@example.com"),
                reason: Reason::NotInDirectory,
            });
        }
        Preview::of(changes, &"source")
    }

    fn moved(org: u128, removed: usize) -> MovedOrg {
        let shift = SourceShift {
            org_id: OrgId(Uuid::from_u128(org)),
            from: Some(ConnectionId(Uuid::from_u128(100))),
            to: None,
        };
        MovedOrg::new(shift, &preview(removed))
    }

    #[test]
    fn a_change_removing_no_one_needs_no_confirmation() {
        let change = SourceChange::DeleteConnection {
            connection_id: ConnectionId(Uuid::from_u128(100)),
        };
        let plan = SourcePlan::new(change, vec![moved(1, 0)]);
        assert!(plan.require_confirmation(None).is_ok());
    }

    #[test]
    fn the_token_confirms_exactly_this_change_and_lists_capped_removals() {
        let conn = ConnectionId(Uuid::from_u128(100));
        let delete = SourcePlan::new(
            SourceChange::DeleteConnection {
                connection_id: conn,
            },
            vec![moved(1, 0), moved(2, 150)],
        );
        let disable = SourcePlan::new(
            SourceChange::DisableDirectorySync {
                connection_id: conn,
            },
            vec![moved(1, 0), moved(2, 150)],
        );
        assert_ne!(delete.confirmation, disable.confirmation);
        assert!(delete
            .require_confirmation(Some(&disable.confirmation))
            .is_err());
        assert!(delete
            .require_confirmation(Some(&delete.confirmation))
            .is_ok());
        let Err(crate::Error::ConfirmationRequired(needed)) = delete.require_confirmation(None)
        else {
            panic!("expected a confirmation request");
        };
        assert_eq!(needed.effects.len(), 2);
        assert_eq!(needed.effects[1].counts.removals, 150);
        assert_eq!(needed.effects[1].removals.len(), LISTED_REMOVALS);
        assert!(needed.effects[1].removals_truncated);
        assert!(needed.detail.contains("removes 150"));
    }
}
