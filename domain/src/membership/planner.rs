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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::attribute::{read_scim_value, AttributeDefinition};
use super::changes::{Add, ChangeSet, Field, FieldChange, Reason, Removal, Update};
use super::mapping::GroupMappings;
use super::model::{Member, MemberId, MemberSource, MemberStatus, Role, SeatTier, SpendLimit};
use crate::directory::{ResourceId, UserRecord};
use crate::org::{OrgId, ProvisioningMode};
use crate::scim::eval::get;
use crate::scim::AttrPath;

/// The part of a directory user the planner reads.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryUser {
    pub id: ResourceId,
    pub user_name: String,
    /// The primary email (lower-cased by the directory), if any.
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    /// The SCIM resource as stored, for attribute definitions and the name.
    pub resource: Value,
}

impl From<UserRecord> for DirectoryUser {
    fn from(record: UserRecord) -> Self {
        Self {
            id: record.id,
            user_name: record.fields.user_name,
            email: record.fields.email,
            display_name: record.fields.display_name,
            active: record.fields.active,
            resource: record.fields.resource,
        }
    }
}

impl DirectoryUser {
    /// The member email: the primary email, else `userName` (which IdPs usually fill with it).
    pub fn member_email(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.user_name)
    }

    /// `displayName`, else `name.formatted`, else given and family name.
    pub fn member_name(&self) -> Option<String> {
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        if let Some(name) = self.display_name.as_deref().and_then(non_empty) {
            return Some(name);
        }
        let name = get(&self.resource, "name")?;
        if let Some(formatted) = get(name, "formatted")
            .and_then(Value::as_str)
            .and_then(non_empty)
        {
            return Some(formatted);
        }
        let parts: Vec<&str> = ["givenName", "familyName"]
            .iter()
            .filter_map(|part| get(name, part).and_then(Value::as_str))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// What happens to the member of a directory user who becomes inactive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deprovision {
    #[default]
    Remove,
    /// Keep the member with status `suspended`, so reactivation restores it as it was.
    Suspend,
}

/// Everything about an org that decides its members.
#[derive(Debug, Clone, PartialEq)]
pub struct OrgPolicy {
    /// The org new members are created in.
    pub org_id: OrgId,
    pub mode: ProvisioningMode,
    pub mappings: GroupMappings,
    /// The connection's attribute definitions; those with a `scim_path` own their metadata key.
    pub attributes: Vec<AttributeDefinition>,
    pub deprovision: Deprovision,
}

/// Either keep what the member has (an admin may have set it by hand) or set a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<T> {
    Keep,
    Set(T),
}

pub type TierDecision = Decision<SeatTier>;
/// `Set(None)` clears the limit.
pub type SpendDecision = Decision<Option<SpendLimit>>;

/// What the directory says one member should look like.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredMember {
    /// `None`: keep the current role (a new member gets `user`).
    pub role: Option<Role>,
    pub seat_tier: TierDecision,
    pub spend_limit: SpendDecision,
    pub email: String,
    pub name: Option<String>,
    /// The directory-owned metadata keys: `Some` sets the value, `None` removes the key. Keys not
    /// listed are the admin's and stay untouched.
    pub metadata: BTreeMap<String, Option<Value>>,
    /// Every decision taken, with the group and mapping behind it.
    pub reasons: Vec<Reason>,
}

/// The planner's verdict on one directory user.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    Member(DesiredMember),
    /// Inactive with [`Deprovision::Suspend`]: a member with status `suspended`, kept in sync.
    Suspended(DesiredMember),
    /// Not a member of this org.
    Absent(Reason),
}

/// The policy with its lookups built once per plan: group → precedence per list, parsed paths.
struct Compiled<'p> {
    policy: &'p OrgPolicy,
    role_rank: HashMap<ResourceId, usize>,
    tier_rank: HashMap<ResourceId, usize>,
    spend_rank: HashMap<ResourceId, usize>,
    attributes: Vec<(&'p str, AttrPath)>,
}

impl<'p> Compiled<'p> {
    fn new(policy: &'p OrgPolicy) -> Self {
        // The first entry of a group wins, as in precedence; validation rejects repeats anyway.
        fn ranks(groups: impl Iterator<Item = ResourceId>) -> HashMap<ResourceId, usize> {
            let mut rank = HashMap::new();
            for (i, group) in groups.enumerate() {
                rank.entry(group).or_insert(i);
            }
            rank
        }
        let m = &policy.mappings;
        Self {
            policy,
            role_rank: ranks(m.roles.iter().map(|r| r.group)),
            tier_rank: ranks(m.seat_tiers.iter().map(|t| t.group)),
            spend_rank: ranks(m.spend_limits.iter().map(|s| s.group)),
            // A path that does not parse was rejected when saved; skipping it here keeps the
            // planner total.
            attributes: policy
                .attributes
                .iter()
                .filter_map(|a| {
                    let path = AttrPath::parse(a.scim_path.as_deref()?).ok()?;
                    Some((a.key.as_str(), path))
                })
                .collect(),
        }
    }

    fn desired(&self, user: &DirectoryUser, groups: &BTreeSet<ResourceId>) -> Desired {
        let policy = self.policy;
        if !user.active && policy.deprovision == Deprovision::Remove {
            return Desired::Absent(Reason::Inactive {
                deprovision: Deprovision::Remove,
            });
        }
        let best = |rank: &HashMap<ResourceId, usize>| {
            groups.iter().filter_map(|g| rank.get(g).copied()).min()
        };
        let m = &policy.mappings;
        let mut reasons = Vec::new();
        let (role, seat_tier, spend_limit) = if m.enabled {
            let Some(mapping) = best(&self.role_rank).and_then(|i| Some((i, m.roles.get(i)?)))
            else {
                return Desired::Absent(Reason::NoRoleGroup);
            };
            let (precedence, mapping) = mapping;
            reasons.push(Reason::RoleFromGroup {
                group: mapping.group,
                role: mapping.role.clone(),
                precedence,
            });
            let tier = if m.seat_tiers.is_empty() {
                Decision::Keep
            } else {
                match best(&self.tier_rank).and_then(|i| Some((i, m.seat_tiers.get(i)?))) {
                    Some((precedence, t)) => {
                        reasons.push(Reason::TierFromGroup {
                            group: t.group,
                            tier: t.tier.clone(),
                            precedence,
                        });
                        Decision::Set(t.tier.clone())
                    }
                    None => return Desired::Absent(Reason::NoTierGroup),
                }
            };
            let spend = if m.spend_limits.is_empty() {
                Decision::Keep
            } else {
                match best(&self.spend_rank).and_then(|i| Some((i, m.spend_limits.get(i)?))) {
                    Some((precedence, s)) => {
                        reasons.push(Reason::SpendLimitFromGroup {
                            group: s.group,
                            limit: s.limit.clone(),
                            precedence,
                        });
                        Decision::Set(Some(s.limit.clone()))
                    }
                    None => {
                        reasons.push(Reason::NoSpendLimitGroup);
                        Decision::Set(None)
                    }
                }
            };
            (Some(mapping.role.clone()), tier, spend)
        } else {
            (None, Decision::Keep, Decision::Keep)
        };
        let metadata = self
            .attributes
            .iter()
            .map(|(key, path)| ((*key).to_owned(), read_scim_value(&user.resource, path)))
            .collect();
        let mut member = DesiredMember {
            role,
            seat_tier,
            spend_limit,
            email: user.member_email().to_owned(),
            name: user.member_name(),
            metadata,
            reasons,
        };
        if user.active {
            Desired::Member(member)
        } else {
            member.reasons.push(Reason::Inactive {
                deprovision: Deprovision::Suspend,
            });
            Desired::Suspended(member)
        }
    }
}

/// What the directory says about one user, under `policy` (whatever the provisioning mode).
pub fn desired(user: &DirectoryUser, groups: &BTreeSet<ResourceId>, policy: &OrgPolicy) -> Desired {
    Compiled::new(policy).desired(user, groups)
}

/// Plans a full reconcile of an org in `scim` mode against the whole directory; in `manual` and
/// `jit` modes the directory does not govern membership and the plan is empty.
///
/// `users` is streamed (each user is decided and dropped), so memory stays bounded by the
/// members and the changes, not by the directory's resources. A user id seen twice is ignored
/// after the first. Members without a directory link are adopted by email (case-insensitive)
/// by a directory user that has no member yet; when several could pair up, they pair in member
/// id order and in the order `users` yields them (the store yields them by id).
pub fn plan(
    users: impl IntoIterator<Item = (DirectoryUser, BTreeSet<ResourceId>)>,
    policy: &OrgPolicy,
    current: &[Member],
    now: OffsetDateTime,
) -> ChangeSet {
    let mut out = ChangeSet::empty(now);
    if policy.mode != ProvisioningMode::Scim {
        return out;
    }
    let compiled = Compiled::new(policy);

    let mut by_id: Vec<&Member> = current.iter().collect();
    by_id.sort_by_key(|m| m.id);
    let mut linked: HashMap<ResourceId, &Member> = HashMap::new();
    let mut unlinked: HashMap<String, VecDeque<&Member>> = HashMap::new();
    for member in by_id {
        match member.directory_user_id {
            Some(user_id) => match linked.get(&user_id) {
                // The oldest member keeps the link; a second one is a corrupt duplicate.
                Some(kept) => out.removals.push(Removal {
                    member_id: member.id,
                    email: member.email.clone(),
                    reason: Reason::DuplicateLink { kept: kept.id },
                }),
                None => {
                    linked.insert(user_id, member);
                }
            },
            None => unlinked
                .entry(member.email.to_lowercase())
                .or_default()
                .push_back(member),
        }
    }

    let mut seen: HashSet<ResourceId> = HashSet::new();
    for (user, groups) in users {
        if !seen.insert(user.id) {
            continue;
        }
        // An adopted member differs from its user in the link, so the diff records the adoption.
        let member = linked.get(&user.id).copied().or_else(|| {
            unlinked
                .get_mut(&user.member_email().to_lowercase())
                .and_then(VecDeque::pop_front)
        });
        let verdict = compiled.desired(&user, &groups);
        reconcile(&compiled, user.id, Some(verdict), member, &mut out);
    }

    for (user_id, member) in &linked {
        if !seen.contains(user_id) {
            reconcile(&compiled, *user_id, None, Some(member), &mut out);
        }
    }
    for member in unlinked.values().flatten() {
        out.removals.push(Removal {
            member_id: member.id,
            email: member.email.clone(),
            reason: Reason::NotInDirectory,
        });
    }
    out.sort();
    out
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
