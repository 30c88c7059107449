//! Deletion protection: the one gate every background sync passes before it
//! removes or suspends anyone.
//!
//! An IdP misconfiguration (a group renamed or deleted, a scope narrowed, a
//! connector bug) looks to orgsync exactly like a legitimate mass
//! deprovisioning. So a background change that would remove or suspend more
//! than an org's threshold applies its adds and ordinary updates, and *holds*
//! the destructive part until an admin confirms or rejects it.
//!
//! The threshold counts what background syncs removed over a rolling
//! [`PROTECTION_WINDOW`], not one change at a time: an IdP that deprovisions
//! a whole department one user per request, or a change that sync applies in
//! batches, is held once it adds up, exactly as if it had come at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::membership::{ChangeSet, MemberId, Removal, Update};
use crate::org::OrgId;

/// Below this share of an org (in percent), removals are never held: a large
/// org losing a few people is routine.
pub const HELD_SHARE_PERCENT: u64 = 5;

/// How far back a background change's removals count together with the
/// ones before it. An admin confirming held removals starts the count again.
pub const PROTECTION_WINDOW: time::Duration = time::Duration::hours(24);

/// An org's deletion threshold: background changes removing or suspending
/// more than `max_removals` members *and* more than [`HELD_SHARE_PERCENT`] of
/// the org are held. `0` turns protection off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionThreshold {
    pub max_removals: u32,
}

impl Default for DeletionThreshold {
    fn default() -> Self {
        Self { max_removals: 10 }
    }
}

impl DeletionThreshold {
    /// Whether removing or suspending `destructive` of `org_members` must wait for an admin.
    pub fn holds(self, destructive: usize, org_members: u64) -> bool {
        if self.max_removals == 0 {
            return false;
        }
        let destructive = destructive as u64;
        destructive > u64::from(self.max_removals)
            && destructive * 100 > org_members.saturating_mul(HELD_SHARE_PERCENT)
    }
}

/// What started the background change whose removals are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeldSource {
    /// Changes the IdP pushed (applied incrementally).
    Directory,
    /// A full reconcile: a sync job, a cascade, or the first sync against a
    /// directory (an org that starts drawing on another connection).
    Reconcile,
}

/// Removals and suspensions waiting for an admin, with the fingerprint that confirms them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldRemovals {
    pub org_id: OrgId,
    pub confirmation: String,
    pub source: HeldSource,
    pub removals: Vec<Removal>,
    pub suspensions: Vec<Update>,
    #[serde(with = "time::serde::rfc3339")]
    pub held_at: OffsetDateTime,
}

impl HeldRemovals {
    pub fn new(
        org_id: OrgId,
        source: HeldSource,
        removals: Vec<Removal>,
        suspensions: Vec<Update>,
        held_at: OffsetDateTime,
    ) -> Self {
        let mut held = Self {
            org_id,
            confirmation: String::new(),
            source,
            removals,
            suspensions,
            held_at,
        };
        held.removals.sort_by_key(|r| r.member_id.0);
        held.suspensions.sort_by_key(|u| u.member_id.0);
        held.confirmation = fingerprint(&held.removals, &held.suspensions);
        held
    }

    /// This plan with `newer` folded in (an entry for the same member is replaced).
    #[must_use]
    pub fn merged_with(self, newer: Self) -> Self {
        let mut removals: BTreeMap<MemberId, Removal> = self
            .removals
            .into_iter()
            .map(|r| (r.member_id, r))
            .collect();
        let mut suspensions: BTreeMap<MemberId, Update> = self
            .suspensions
            .into_iter()
            .map(|u| (u.member_id, u))
            .collect();
        for removal in newer.removals {
            suspensions.remove(&removal.member_id);
            removals.insert(removal.member_id, removal);
        }
        for suspension in newer.suspensions {
            if !removals.contains_key(&suspension.member_id) {
                suspensions.insert(suspension.member_id, suspension);
            }
        }
        Self::new(
            newer.org_id,
            newer.source,
            removals.into_values().collect(),
            suspensions.into_values().collect(),
            newer.held_at,
        )
    }

    pub fn len(&self) -> usize {
        self.removals.len() + self.suspensions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Splits `changes` into what applies now and what a threshold holds.
/// `removed_recently` is what background syncs removed or suspended within
/// the [`PROTECTION_WINDOW`]: they count with these changes, against the
/// org as it was before them (its members now and those).
///
/// `None` when nothing is held: `changes` applies whole.
pub fn hold(
    changes: ChangeSet,
    threshold: DeletionThreshold,
    org_members: u64,
    removed_recently: u64,
    org_id: OrgId,
    source: HeldSource,
) -> (ChangeSet, Option<HeldRemovals>) {
    let counts = changes.counts();
    let destructive = (counts.removals + counts.suspensions) as u64 + removed_recently;
    if !threshold.holds(
        usize::try_from(destructive).unwrap_or(usize::MAX),
        org_members.saturating_add(removed_recently),
    ) {
        return (changes, None);
    }
    let ChangeSet {
        planned_at,
        adds,
        updates,
        removals,
    } = changes;
    let (suspensions, updates): (Vec<Update>, Vec<Update>) =
        updates.into_iter().partition(Update::suspends);
    let applied = ChangeSet {
        planned_at,
        adds,
        updates,
        removals: Vec::new(),
    };
    let held = HeldRemovals::new(org_id, source, removals, suspensions, planned_at);
    (applied, Some(held))
}

fn fingerprint(removals: &[Removal], suspensions: &[Update]) -> String {
    let mut hasher = Sha256::new();
    for removal in removals {
        hasher.update(removal.member_id.0.as_bytes());
    }
    hasher.update([1]);
    for update in suspensions {
        hasher.update(update.member_id.0.as_bytes());
        hasher.update(serde_json::to_vec(&update.changes).unwrap_or_default());
    }
    let digest = hasher.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Reason;
    use proptest::prelude::*;
    use uuid::Uuid;

    #[test]
    fn the_default_holds_more_than_ten_and_more_than_five_percent() {
        let threshold = DeletionThreshold::default();
        assert!(!threshold.holds(10, 80), "ten is allowed");
        assert!(threshold.holds(11, 80));
        assert!(threshold.holds(60, 80), "the reported group deletion");
        assert!(!threshold.holds(40, 1_000), "4% of a large org is routine");
        assert!(threshold.holds(51, 1_000));
        assert!(!DeletionThreshold { max_removals: 0 }.holds(1_000, 1_000));
    }

    proptest! {
        #[test]
        fn holding_is_monotonic_in_the_removals(
            max in 0u32..100,
            members in 0u64..10_000,
            a in 0usize..10_000,
            b in 0usize..10_000,
        ) {
            let threshold = DeletionThreshold { max_removals: max };
            let (low, high) = (a.min(b), a.max(b));
            prop_assert!(!threshold.holds(low, members) || threshold.holds(high, members));
        }

        /// However a mass removal reaches sync (at once, in batches, one
        /// user at a time), what applies before the rest is held is what
        /// the threshold allows for the whole of it at once, never more.
        #[test]
        fn a_removal_split_into_batches_applies_no_more_than_it_would_at_once(
            max in 1u32..50,
            org in 1u64..3_000,
            batches in proptest::collection::vec(1usize..200, 1..40),
        ) {
            let threshold = DeletionThreshold { max_removals: max };
            let removing: usize = batches.iter().sum();
            let org = org.max(removing as u64);
            let (mut members, mut removed, mut next) = (org, 0u64, 0usize);
            let mut held_any = false;
            for size in &batches {
                let changes = removals(next, *size);
                next += size;
                let (applied, held) =
                    hold(changes, threshold, members, removed, OrgId(Uuid::nil()), HeldSource::Directory);
                held_any |= held.is_some();
                let gone = applied.removals.len() as u64;
                members -= gone;
                removed += gone;
            }
            let allowed_at_once = !threshold.holds(removing, org);
            prop_assert_eq!(held_any, !allowed_at_once);
            if !allowed_at_once {
                prop_assert!(!threshold.holds(usize::try_from(removed).unwrap_or(usize::MAX), org),
                    "{} applied of {} in an org of {}", removed, removing, org);
            }
        }
    }

    fn removals(first: usize, n: usize) -> ChangeSet {
        let mut changes = ChangeSet::empty(OffsetDateTime::UNIX_EPOCH);
        changes.removals = (first..first + n)
            .map(|i| Removal {
                member_id: MemberId(Uuid::from_u128(i as u128 + 1)),
                email: format!("user{i}@example.com"),
                reason: Reason::NoRoleGroup,
            })
            .collect();
        changes
    }
}
