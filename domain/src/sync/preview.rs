//! Previews of destructive changes, and the fingerprint that confirms one.
//!
//! A change that removes (or suspends) members is applied only when the
//! caller confirms with the fingerprint of the preview it saw; if the plan
//! has changed since, the confirmation no longer matches and nothing happens.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::SyncScope;
use crate::membership::{ChangeCounts, ChangeSet, Field};

/// What a change would do, and the token that confirms exactly that.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub confirmation: String,
    pub counts: ChangeCounts,
    pub changes: ChangeSet,
}

impl Preview {
    /// `settings` is whatever the change would save (so confirming a preview
    /// of other settings fails); the fingerprint covers who is added, updated
    /// how, and removed.
    pub fn of(changes: ChangeSet, settings: &impl Serialize) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(settings).unwrap_or_default());
        let mut adds: Vec<String> = changes
            .adds
            .iter()
            .map(|a| format!("{:?}", a.member.directory_user_id))
            .collect();
        adds.sort_unstable();
        let mut updates: Vec<String> = changes
            .updates
            .iter()
            .map(|u| {
                format!(
                    "{}{}",
                    u.member_id.0,
                    serde_json::to_string(&u.changes).unwrap_or_default()
                )
            })
            .collect();
        updates.sort_unstable();
        let mut removals: Vec<String> = changes
            .removals
            .iter()
            .map(|r| r.member_id.0.to_string())
            .collect();
        removals.sort_unstable();
        for part in [adds, updates, removals] {
            for item in part {
                hasher.update(item.as_bytes());
                hasher.update([0]);
            }
            hasher.update([1]);
        }
        let digest = hasher.finalize();
        let confirmation: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Self {
            confirmation,
            counts: changes.counts(),
            changes,
        }
    }

    /// One window of the change lists, `limit` entries of each from
    /// `offset`, in a stable order (so consecutive pages of the same plan
    /// neither repeat nor skip anyone). The confirmation and counts always
    /// cover the whole plan.
    pub fn page(mut self, offset: usize, limit: usize) -> PreviewPage {
        let changes = &mut self.changes;
        changes.adds.sort_by_key(|a| a.member.directory_user_id);
        changes.updates.sort_by_key(|u| u.member_id.0);
        changes.removals.sort_by_key(|r| r.member_id.0);
        let longest = changes
            .adds
            .len()
            .max(changes.updates.len())
            .max(changes.removals.len());
        fn window<T>(items: &mut Vec<T>, offset: usize, limit: usize) {
            let start = offset.min(items.len());
            items.drain(..start);
            items.truncate(limit);
        }
        window(&mut changes.adds, offset, limit);
        window(&mut changes.updates, offset, limit);
        window(&mut changes.removals, offset, limit);
        let end = offset.saturating_add(limit);
        PreviewPage {
            confirmation: self.confirmation,
            counts: self.counts,
            changes: self.changes,
            next_offset: (end < longest).then_some(end),
        }
    }

    /// Whether applying needs a confirmation: it removes or suspends someone.
    pub fn is_destructive(&self) -> bool {
        self.counts.removals > 0 || self.counts.suspensions > 0
    }
}

/// A window of a [`Preview`]: previews of large orgs are read page by page.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewPage {
    pub confirmation: String,
    pub counts: ChangeCounts,
    pub changes: ChangeSet,
    /// Where the next page starts, when any list has more.
    #[serde(skip)]
    pub next_offset: Option<usize>,
}

/// Keeps the part of a change set a sync scope covers: `members` decides
/// membership, roles, tiers, profile and status; `groups` what group
/// membership drives beyond that (spend limits); `both` everything.
pub fn restrict(mut changes: ChangeSet, scope: SyncScope) -> ChangeSet {
    let keep = |field: Field| match scope {
        SyncScope::Both => true,
        SyncScope::Groups => field == Field::SpendLimit,
        SyncScope::Members => field != Field::SpendLimit,
    };
    if scope == SyncScope::Groups {
        changes.adds.clear();
        changes.removals.clear();
    }
    for update in &mut changes.updates {
        update.changes.retain(|c| keep(c.field()));
    }
    changes.updates.retain(|u| !u.changes.is_empty());
    changes
}
