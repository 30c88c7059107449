//! Previews of destructive changes, and the fingerprint that confirms one.
//!
//! A change that removes (or suspends) members is applied only when the
//! caller confirms with the fingerprint of the preview it saw; if the plan
//! has changed since, the confirmation no longer matches and nothing happens.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::SyncScope;
use crate::membership::{ChangeCounts, ChangeSet, Field};

/// The confirmation of `changes` under `settings`: SHA-256 over the
/// settings, then each list's entries in order, each entry's text followed
/// by a 0 and each list by a 1; the first 16 bytes, in hex. An add is
/// `{directory user:?}`, an update `{member id}{changes as JSON}`, a removal
/// `{member id}`. Entries are sorted by their key rather than by their
/// text: hyphenated lowercase hex sorts as the bytes do, so the order (and
/// the token) is the same, without a million strings made and compared
/// for a million-member switch.
fn fingerprint(changes: &ChangeSet, settings: &impl Serialize) -> String {
    use std::fmt::Write;
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(settings).unwrap_or_default());
    let mut entry = String::new();
    let mut hash = |hasher: &mut Sha256, write: &dyn Fn(&mut String)| {
        entry.clear();
        write(&mut entry);
        hasher.update(entry.as_bytes());
        hasher.update([0]);
    };
    let mut adds: Vec<_> = changes
        .adds
        .iter()
        .map(|a| a.member.directory_user_id)
        .collect();
    adds.sort_unstable();
    for user in adds {
        hash(&mut hasher, &|e| {
            let _ = write!(e, "{user:?}");
        });
    }
    hasher.update([1]);
    let mut updates: Vec<_> = changes.updates.iter().collect();
    updates.sort_unstable_by_key(|u| u.member_id.0);
    for update in updates {
        hash(&mut hasher, &|e| {
            let _ = write!(e, "{}", update.member_id.0);
            e.push_str(&serde_json::to_string(&update.changes).unwrap_or_default());
        });
    }
    hasher.update([1]);
    let mut removals: Vec<_> = changes.removals.iter().map(|r| r.member_id.0).collect();
    removals.sort_unstable();
    for member in removals {
        hash(&mut hasher, &|e| {
            let _ = write!(e, "{member}");
        });
    }
    hasher.update([1]);
    let digest = hasher.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

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
        let confirmation = fingerprint(&changes, settings);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::fingerprint;
    use crate::membership::{
        Add, ChangeSet, FieldChange, Member, MemberId, Reason, Removal, Role, Update,
    };

    /// The fingerprint as first written (every entry's text made, then the
    /// texts sorted): a preview taken before an upgrade must still confirm
    /// after it.
    fn as_first_written(changes: &ChangeSet, settings: &serde_json::Value) -> String {
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
                let changes = serde_json::to_string(&u.changes).unwrap_or_default();
                format!("{}{changes}", u.member_id.0)
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
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    fn member(user: Option<Uuid>) -> Member {
        Member {
            directory_user_id: user,
            ..Member::example("a@example.com")
        }
    }

    proptest! {
        #[test]
        fn the_token_is_the_one_first_written(
            adds in proptest::collection::vec(proptest::option::weighted(0.9, any::<u128>()), 0..40),
            updates in proptest::collection::vec((any::<u128>(), any::<bool>()), 0..40),
            removals in proptest::collection::vec(any::<u128>(), 0..40),
        ) {
            let changes = ChangeSet {
                planned_at: OffsetDateTime::UNIX_EPOCH,
                adds: adds
                    .into_iter()
                    .map(|user| Add { member: member(user.map(Uuid::from_u128)), reasons: vec![] })
                    .collect(),
                updates: updates
                    .into_iter()
                    .map(|(id, admin)| Update {
                        member_id: MemberId(Uuid::from_u128(id)),
                        email: "b@example.com".into(),
                        changes: vec![FieldChange::Role {
                            from: Role::User,
                            to: if admin { Role::Admin } else { Role::Owner },
                        }],
                        reasons: vec![],
                    })
                    .collect(),
                removals: removals
                    .into_iter()
                    .map(|id| Removal {
                        member_id: MemberId(Uuid::from_u128(id)),
                        email: "c@example.com".into(),
                        reason: Reason::NotInDirectory,
                    })
                    .collect(),
            };
            let settings = serde_json::json!({"mode": "scim"});
            prop_assert_eq!(fingerprint(&changes, &settings), as_first_written(&changes, &settings));
        }
    }
}
