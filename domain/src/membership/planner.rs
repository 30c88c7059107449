//! The reconcile planner: a pure function from the directory, the org's policy and its current
//! members to a [`ChangeSet`]. Every preview, full sync and incremental sync goes through it.
//!
//! Invariants:
//! - identity is the directory user's id: a linked member is matched by `directory_user_id`
//!   only, so an email change is an update in place (same member id, role and history);
//! - a member's state depends only on the current directory and policy, never on the order of
//!   past events, so applying events one user at a time ([`plan_user`]) reaches the same state
//!   as one [`plan`], and one `plan` always converges (planning again yields nothing);
//! - only real differences produce updates;
//! - one directory user is never two members.
//!
//! Deprovisioning: `active: false` suspends or removes per [`Deprovision`]; a DELETE always
//! removes, because a deleted directory user never comes back under the same id, so a suspended
//! record could never be reactivated (and keeping it would make state depend on history).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::attribute::{read_scim_value, AttributeDefinition};
use super::changes::{Add, ChangeSet, Field, FieldChange, Reason, Removal, Update};
use super::mapping::GroupMappings;
use super::model::{
    Deprovision, Member, MemberId, MemberSource, MemberStatus, Role, SeatTier, SpendLimit,
};
use crate::directory::{ResourceId, UserRecord};
use crate::org::{OrgId, ProvisioningMode};

mod desired;

use desired::Compiled;
pub use desired::{
    desired, Decision, Desired, DesiredMember, DirectoryUser, OrgPolicy, ResourceKeys,
    SpendDecision, TierDecision,
};

/// Plans a full reconcile of an org in `scim` mode against the whole directory; in `manual` and
/// `jit` modes the directory does not govern membership and the plan is empty.
///
/// The same as feeding each of `users` to a [`Planner`] and finishing it.
pub fn plan(
    users: impl IntoIterator<Item = (DirectoryUser, BTreeSet<ResourceId>)>,
    policy: &OrgPolicy,
    current: &[Member],
    now: OffsetDateTime,
) -> ChangeSet {
    let mut planner = Planner::new(policy, current, now);
    for (user, groups) in users {
        planner.user(&user, &groups);
    }
    planner.finish()
}

/// A full reconcile plan built one directory user at a time, so a caller can read the directory
/// in pages and drop each page once planned: memory stays bounded by the members and the
/// changes, not by the directory's resources.
///
/// A user id seen twice is ignored after the first. Members without a directory link are
/// adopted by email (case-insensitive) by a directory user that has no member yet; when several
/// could pair up, they pair in member id order and in the order users are fed (the store yields
/// them by id).
pub struct Planner<'a> {
    compiled: Option<Compiled<'a>>,
    linked: HashMap<ResourceId, &'a Member>,
    unlinked: HashMap<String, VecDeque<&'a Member>>,
    seen: HashSet<ResourceId>,
    out: ChangeSet,
}

impl<'a> Planner<'a> {
    #[must_use]
    pub fn new(policy: &'a OrgPolicy, current: &'a [Member], now: OffsetDateTime) -> Self {
        let mut planner = Self {
            compiled: None,
            linked: HashMap::new(),
            unlinked: HashMap::new(),
            seen: HashSet::new(),
            out: ChangeSet::empty(now),
        };
        if policy.mode != ProvisioningMode::Scim {
            return planner;
        }
        planner.compiled = Some(Compiled::new(policy));
        let mut by_id: Vec<&Member> = current.iter().collect();
        by_id.sort_by_key(|m| m.id);
        planner.linked.reserve(by_id.len());
        for member in by_id {
            match member.directory_user_id {
                Some(user_id) => match planner.linked.get(&user_id) {
                    // The oldest member keeps the link; a second one is a corrupt duplicate.
                    Some(kept) => planner.out.removals.push(Removal {
                        member_id: member.id,
                        email: member.email.clone(),
                        reason: Reason::DuplicateLink { kept: kept.id },
                    }),
                    None => {
                        planner.linked.insert(user_id, member);
                    }
                },
                None => planner
                    .unlinked
                    .entry(member.email.to_lowercase())
                    .or_default()
                    .push_back(member),
            }
        }
        planner
    }

    /// Plans one directory user with its groups among the policy's deciding groups.
    pub fn user(&mut self, user: &DirectoryUser, groups: &BTreeSet<ResourceId>) {
        let Some(compiled) = &self.compiled else {
            return;
        };
        if !self.seen.insert(user.id) {
            return;
        }
        // An adopted member differs from its user in the link, so the diff records the adoption.
        let member = self.linked.get(&user.id).copied().or_else(|| {
            self.unlinked
                .get_mut(&user.member_email().to_lowercase())
                .and_then(VecDeque::pop_front)
        });
        let verdict = compiled.desired(user, groups);
        reconcile(compiled, user.id, Some(verdict), member, &mut self.out);
    }

    /// The plan: every member whose user was not fed is removed.
    #[must_use]
    pub fn finish(mut self) -> ChangeSet {
        let Some(compiled) = &self.compiled else {
            return self.out;
        };
        for (user_id, member) in &self.linked {
            if !self.seen.contains(user_id) {
                reconcile(compiled, *user_id, None, Some(member), &mut self.out);
            }
        }
        for member in self.unlinked.values().flatten() {
            self.out.removals.push(Removal {
                member_id: member.id,
                email: member.email.clone(),
                reason: Reason::NotInDirectory,
            });
        }
        self.out.sort();
        self.out
    }
}

/// Plans the effect of one directory user's change (incremental sync): `user` is its current
/// state (`None` once deleted) and `current` the member linked to `user_id`, if any. Consistent
/// with [`plan`] for a linked org; it never adopts, as adoption only concerns the first sync.
pub fn plan_user(
    user: Option<(DirectoryUser, BTreeSet<ResourceId>)>,
    user_id: ResourceId,
    policy: &OrgPolicy,
    current: Option<&Member>,
    now: OffsetDateTime,
) -> ChangeSet {
    let mut out = ChangeSet::empty(now);
    if policy.mode != ProvisioningMode::Scim {
        return out;
    }
    let compiled = Compiled::new(policy);
    let verdict = user.map(|(user, groups)| compiled.desired(&user, &groups));
    reconcile(&compiled, user_id, verdict, current, &mut out);
    out.sort();
    out
}

/// Turns one verdict into changes. `verdict` is `None` when the user was deleted.
fn reconcile(
    compiled: &Compiled<'_>,
    user_id: ResourceId,
    verdict: Option<Desired>,
    member: Option<&Member>,
    out: &mut ChangeSet,
) {
    let (target, status) = match verdict {
        None | Some(Desired::Absent(_)) => {
            if let Some(member) = member {
                let reason = match verdict {
                    Some(Desired::Absent(reason)) => reason,
                    _ => Reason::DeletedFromDirectory,
                };
                out.removals.push(Removal {
                    member_id: member.id,
                    email: member.email.clone(),
                    reason,
                });
            }
            return;
        }
        Some(Desired::Member(target)) => (target, MemberStatus::Active),
        Some(Desired::Suspended(target)) => (target, MemberStatus::Suspended),
    };
    match member {
        None => out.adds.push(new_member(
            compiled,
            user_id,
            target,
            status,
            out.planned_at,
        )),
        Some(member) => {
            if let Some(update) = diff(member, user_id, target, status) {
                out.updates.push(update);
            }
        }
    }
}

fn new_member(
    compiled: &Compiled<'_>,
    user_id: ResourceId,
    target: DesiredMember,
    status: MemberStatus,
    now: OffsetDateTime,
) -> Add {
    let mut reasons = target.reasons;
    let role = target.role.unwrap_or_else(|| {
        reasons.insert(0, Reason::DefaultRole { role: Role::User });
        Role::User
    });
    let member = Member {
        id: MemberId::new(),
        org_id: compiled.policy.org_id,
        directory_user_id: Some(user_id),
        email: target.email,
        name: target.name,
        role,
        seat_tier: match target.seat_tier {
            Decision::Set(tier) => Some(tier),
            Decision::Keep => None,
        },
        spend_limit: match target.spend_limit {
            Decision::Set(limit) => limit,
            Decision::Keep => None,
        },
        public_metadata: target
            .metadata
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?)))
            .collect(),
        status,
        source: MemberSource::Scim,
        created_at: now,
        updated_at: now,
    };
    Add { member, reasons }
}

/// The field-level difference between a member and its target, with the reasons behind each
/// changed field; `None` when nothing differs.
fn diff(
    member: &Member,
    user_id: ResourceId,
    target: DesiredMember,
    status: MemberStatus,
) -> Option<Update> {
    let mut changes = Vec::new();
    // Only an adopted member is not yet linked to its user.
    if member.directory_user_id != Some(user_id) {
        changes.push(FieldChange::DirectoryLink {
            from: member.directory_user_id,
            to: Some(user_id),
        });
    }
    if member.email != target.email {
        changes.push(FieldChange::Email {
            from: member.email.clone(),
            to: target.email.clone(),
        });
    }
    if member.name != target.name {
        changes.push(FieldChange::Name {
            from: member.name.clone(),
            to: target.name.clone(),
        });
    }
    if let Some(role) = &target.role {
        if *role != member.role {
            changes.push(FieldChange::Role {
                from: member.role.clone(),
                to: role.clone(),
            });
        }
    }
    if let Decision::Set(tier) = &target.seat_tier {
        if member.seat_tier.as_ref() != Some(tier) {
            changes.push(FieldChange::SeatTier {
                from: member.seat_tier.clone(),
                to: Some(tier.clone()),
            });
        }
    }
    if let Decision::Set(limit) = &target.spend_limit {
        if member.spend_limit != *limit {
            changes.push(FieldChange::SpendLimit {
                from: member.spend_limit.clone(),
                to: limit.clone(),
            });
        }
    }
    let (mut from, mut to) = (Map::new(), Map::new());
    for (key, value) in &target.metadata {
        let stored = member.public_metadata.get(key);
        if stored != value.as_ref() {
            from.insert(key.clone(), stored.cloned().unwrap_or(Value::Null));
            to.insert(key.clone(), value.clone().unwrap_or(Value::Null));
        }
    }
    if !to.is_empty() {
        changes.push(FieldChange::Metadata { from, to });
    }
    if member.status != status {
        changes.push(FieldChange::Status {
            from: member.status,
            to: status,
        });
    }
    if changes.is_empty() {
        return None;
    }

    let mut reasons: Vec<Reason> = Vec::new();
    let mut push = |reason: Reason| {
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    };
    for change in &changes {
        match change.field() {
            Field::DirectoryLink => push(Reason::AdoptedByEmail {
                directory_user_id: user_id,
            }),
            Field::Email | Field::Name | Field::Metadata => push(Reason::ProfileFromDirectory),
            Field::Status if status == MemberStatus::Active => push(Reason::Reactivated),
            field => target
                .reasons
                .iter()
                .filter(|r| r.field() == Some(field))
                .for_each(|r| push(r.clone())),
        }
    }
    Some(Update {
        member_id: member.id,
        email: member.email.clone(),
        changes,
        reasons,
    })
}

#[cfg(test)]
mod tests;
