//! What the directory says one user should be, under an org's policy: the
//! desired member (role, seat tier, spend limit, attributes) or none.

use super::*;
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

/// The top-level keys of a user's SCIM resource that an org's plan reads
/// (`name`, and what its attribute definitions point at). A full reconcile
/// holds every user of the directory at once: keeping only these keys of
/// each resource, as it is read, keeps that memory to what decides anything
/// (IdPs send addresses, phone numbers and extensions no plan looks at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceKeys(Vec<String>);

impl ResourceKeys {
    pub fn for_policy(policy: &OrgPolicy) -> Self {
        let mut keys = vec!["name".to_owned()];
        for definition in &policy.attributes {
            let Some(path) = definition
                .scim_path
                .as_deref()
                .and_then(|p| AttrPath::parse(p).ok())
            else {
                continue;
            };
            // Where `read_scim_value` may find it: under the schema, at the
            // top level, or under the flat `uri:name` key some IdPs send.
            if let Some(uri) = &path.uri {
                keys.push(format!("{uri}:{}", path.name));
                keys.push(uri.clone());
            }
            keys.push(path.name);
        }
        Self(keys)
    }

    /// Drops every other key of `resource` (SCIM names are case-insensitive).
    pub fn trim(&self, resource: &mut Value) {
        if let Value::Object(map) = resource {
            map.retain(|key, _| self.0.iter().any(|kept| kept.eq_ignore_ascii_case(key)));
        }
    }
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
pub(super) struct Compiled<'p> {
    pub(super) policy: &'p OrgPolicy,
    role_rank: HashMap<ResourceId, usize>,
    tier_rank: HashMap<ResourceId, usize>,
    spend_rank: HashMap<ResourceId, usize>,
    attributes: Vec<(&'p str, AttrPath)>,
}

impl<'p> Compiled<'p> {
    pub(super) fn new(policy: &'p OrgPolicy) -> Self {
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

    pub(super) fn desired(&self, user: &DirectoryUser, groups: &BTreeSet<ResourceId>) -> Desired {
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
