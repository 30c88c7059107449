//! What a plan says to do: members to add, field-level updates and removals, each with the
//! reasons that decided it, so that a preview and a sync report can show *why*.
//!
//! Suspension is an update of [`Field::Status`], not a list of its own: a suspended member keeps
//! its record, and reactivation is the same update the other way.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::model::{Deprovision, Member, MemberId, MemberStatus, Role, SeatTier, SpendLimit};
use crate::directory::ResourceId;

/// Why the planner decided something. Serialized as `{"kind": "role_from_group", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The role comes from the highest-precedence role-mapped group the user is in
    /// (`precedence` is the index in the role mappings, 0 = highest).
    RoleFromGroup {
        group: ResourceId,
        role: Role,
        precedence: usize,
    },
    /// Group mapping is off: a new member starts with this role.
    DefaultRole { role: Role },
    /// Group mapping is on and the user is in no role-mapped group.
    NoRoleGroup,
    TierFromGroup {
        group: ResourceId,
        tier: SeatTier,
        precedence: usize,
    },
    /// Seat tier mapping is on and the user is in no tier-mapped group.
    NoTierGroup,
    SpendLimitFromGroup {
        group: ResourceId,
        limit: SpendLimit,
        precedence: usize,
    },
    /// Spend limit mapping is on and the user is in no group with a limit: the limit is cleared.
    NoSpendLimitGroup,
    /// Email, name or directory-owned metadata follow the directory user's attributes.
    ProfileFromDirectory,
    /// The directory user is inactive (`active: false`); the org suspends or removes.
    Inactive { deprovision: Deprovision },
    /// The directory user is active again.
    Reactivated,
    /// The linked directory user was deleted.
    DeletedFromDirectory,
    /// A member with no directory link whom no directory user matched at the first sync.
    NotInDirectory,
    /// A member with no directory link was matched by email to a directory user at the first
    /// sync and keeps its id, role and history.
    AdoptedByEmail { directory_user_id: ResourceId },
    /// Another member is already linked to the same directory user (`kept`); one directory user
    /// is never two members.
    DuplicateLink { kept: MemberId },
    /// The org is being deleted, and its members with it.
    OrgDeleted,
}

impl Reason {
    /// The field this reason explains, if it explains one.
    pub fn field(&self) -> Option<Field> {
        match self {
            Self::RoleFromGroup { .. } | Self::DefaultRole { .. } => Some(Field::Role),
            Self::TierFromGroup { .. } => Some(Field::SeatTier),
            Self::SpendLimitFromGroup { .. } | Self::NoSpendLimitGroup => Some(Field::SpendLimit),
            Self::Inactive { .. } | Self::Reactivated => Some(Field::Status),
            Self::AdoptedByEmail { .. } => Some(Field::DirectoryLink),
            Self::ProfileFromDirectory
            | Self::NoRoleGroup
            | Self::NoTierGroup
            | Self::DeletedFromDirectory
            | Self::NotInDirectory
            | Self::DuplicateLink { .. }
            | Self::OrgDeleted => None,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RoleFromGroup {
                group,
                role,
                precedence,
            } => write!(
                f,
                "role {role} from group {group} (role mapping #{})",
                precedence + 1
            ),
            Self::DefaultRole { role } => write!(f, "new members get role {role}"),
            Self::NoRoleGroup => f.write_str("in no role-mapped group"),
            Self::TierFromGroup {
                group,
                tier,
                precedence,
            } => write!(
                f,
                "seat tier {tier} from group {group} (seat tier mapping #{})",
                precedence + 1
            ),
            Self::NoTierGroup => f.write_str("in no seat-tier-mapped group"),
            Self::SpendLimitFromGroup {
                group,
                limit,
                precedence,
            } => write!(
                f,
                "spend limit {} {} (minor units) from group {group} (spend limit mapping #{})",
                limit.amount_minor(),
                limit.currency(),
                precedence + 1
            ),
            Self::NoSpendLimitGroup => f.write_str("in no group with a spend limit"),
            Self::ProfileFromDirectory => f.write_str("profile changed in the directory"),
            Self::Inactive { .. } => f.write_str("deactivated in the directory"),
            Self::Reactivated => f.write_str("reactivated in the directory"),
            Self::DeletedFromDirectory => f.write_str("deleted from the directory"),
            Self::NotInDirectory => f.write_str("not in the directory"),
            Self::AdoptedByEmail { .. } => f.write_str("adopted by email at first sync"),
            Self::DuplicateLink { kept } => {
                write!(f, "member {kept} already mirrors the same directory user")
            }
            Self::OrgDeleted => f.write_str("the organization is deleted"),
        }
    }
}

/// A member field the planner may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Email,
    Name,
    Role,
    SeatTier,
    SpendLimit,
    Metadata,
    Status,
    DirectoryLink,
}

/// One field's change, typed, serialized as `{"field": "role", "from": "user", "to": "admin"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum FieldChange {
    Email {
        from: String,
        to: String,
    },
    Name {
        from: Option<String>,
        to: Option<String>,
    },
    Role {
        from: Role,
        to: Role,
    },
    SeatTier {
        from: Option<SeatTier>,
        to: Option<SeatTier>,
    },
    SpendLimit {
        from: Option<SpendLimit>,
        to: Option<SpendLimit>,
    },
    /// Only the keys that change; `null` stands for an absent key (stored values are scalars,
    /// never null, so this is unambiguous).
    Metadata {
        from: Map<String, Value>,
        to: Map<String, Value>,
    },
    Status {
        from: MemberStatus,
        to: MemberStatus,
    },
    DirectoryLink {
        from: Option<ResourceId>,
        to: Option<ResourceId>,
    },
}

impl FieldChange {
    pub fn field(&self) -> Field {
        match self {
            Self::Email { .. } => Field::Email,
            Self::Name { .. } => Field::Name,
            Self::Role { .. } => Field::Role,
            Self::SeatTier { .. } => Field::SeatTier,
            Self::SpendLimit { .. } => Field::SpendLimit,
            Self::Metadata { .. } => Field::Metadata,
            Self::Status { .. } => Field::Status,
            Self::DirectoryLink { .. } => Field::DirectoryLink,
        }
    }

    /// Writes the new value into `member`.
    pub fn apply_to(&self, member: &mut Member) {
        match self {
            Self::Email { to, .. } => member.email.clone_from(to),
            Self::Name { to, .. } => member.name.clone_from(to),
            Self::Role { to, .. } => member.role = to.clone(),
            Self::SeatTier { to, .. } => member.seat_tier.clone_from(to),
            Self::SpendLimit { to, .. } => member.spend_limit.clone_from(to),
            Self::Metadata { to, .. } => {
                for (key, value) in to {
                    if value.is_null() {
                        member.public_metadata.remove(key);
                    } else {
                        member.public_metadata.insert(key.clone(), value.clone());
                    }
                }
            }
            Self::Status { to, .. } => member.status = *to,
            Self::DirectoryLink { to, .. } => member.directory_user_id = *to,
        }
    }
}

/// A member to create, complete with a fresh id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Add {
    pub member: Member,
    pub reasons: Vec<Reason>,
}

/// Changes to one existing member; `changes` is never empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub member_id: MemberId,
    /// The member's email before the update, for display.
    pub email: String,
    pub changes: Vec<FieldChange>,
    pub reasons: Vec<Reason>,
}

impl Update {
    /// Whether this update suspends the member.
    pub fn suspends(&self) -> bool {
        self.changes.iter().any(|c| {
            matches!(
                c,
                FieldChange::Status {
                    to: MemberStatus::Suspended,
                    ..
                }
            )
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removal {
    pub member_id: MemberId,
    pub email: String,
    pub reason: Reason,
}

/// The output of the planner. Each list is sorted by email, then member or directory user id,
/// so the same inputs always give the same listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    #[serde(with = "time::serde::rfc3339")]
    pub planned_at: OffsetDateTime,
    pub adds: Vec<Add>,
    pub updates: Vec<Update>,
    pub removals: Vec<Removal>,
}

/// How many of each; `suspensions` are the updates that suspend (counted in `updates` too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    pub adds: usize,
    pub updates: usize,
    pub removals: usize,
    pub suspensions: usize,
}

impl ChangeSet {
    pub fn empty(planned_at: OffsetDateTime) -> Self {
        Self {
            planned_at,
            adds: Vec::new(),
            updates: Vec::new(),
            removals: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.adds.is_empty() && self.updates.is_empty() && self.removals.is_empty()
    }

    /// The members this plan updates or removes: the ones applying it
    /// writes against (each at the version it was planned from).
    pub fn touched(&self) -> HashSet<MemberId> {
        self.updates
            .iter()
            .map(|u| u.member_id)
            .chain(self.removals.iter().map(|r| r.member_id))
            .collect()
    }

    pub fn counts(&self) -> ChangeCounts {
        ChangeCounts {
            adds: self.adds.len(),
            updates: self.updates.len(),
            removals: self.removals.len(),
            suspensions: self.updates.iter().filter(|u| u.suspends()).count(),
        }
    }

    /// Sorts each list into its documented order.
    pub(crate) fn sort(&mut self) {
        // Cached keys: one lower-casing per entry, not per comparison.
        self.adds
            .sort_by_cached_key(|a| (a.member.email.to_lowercase(), a.member.directory_user_id));
        self.updates
            .sort_by_cached_key(|u| (u.email.to_lowercase(), u.member_id));
        self.removals
            .sort_by_cached_key(|r| (r.email.to_lowercase(), r.member_id));
    }
}

/// The members after applying `changes` to `current`, in memory (previews and tests; the store
/// applies the same change set in set-based batches). Existing members keep their order, new
/// ones follow; updated members get `updated_at = planned_at`.
pub fn apply(current: &[Member], changes: &ChangeSet) -> Vec<Member> {
    let removed: HashSet<MemberId> = changes.removals.iter().map(|r| r.member_id).collect();
    let updates: HashMap<MemberId, &Update> =
        changes.updates.iter().map(|u| (u.member_id, u)).collect();
    current
        .iter()
        .filter(|m| !removed.contains(&m.id))
        .map(|m| {
            let mut member = m.clone();
            if let Some(update) = updates.get(&m.id) {
                for change in &update.changes {
                    change.apply_to(&mut member);
                }
                member.updated_at = changes.planned_at;
            }
            member
        })
        .chain(changes.adds.iter().map(|a| a.member.clone()))
        .collect()
}
