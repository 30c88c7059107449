//! Property tests of the planner over small universes (few users, groups and emails, so that
//! collisions happen often):
//! (a) one `plan` converges: applying it and planning again yields nothing;
//! (b) any sequence of directory events (user changes, member adds and removes, group rewrites
//!     and deletions) applied as incremental sync does (re-planning with `plan_user` just the
//!     users an event touched, and no one for a group that decides nothing) ends in the same
//!     members as one full `plan`, and a full `plan` afterwards is a no-op;
//! (c) `plan` never panics and never yields two members for one directory user.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::directory::ResourceId;
use crate::org::{OrgId, ProvisioningMode};

const NOW: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);
const LATER: OffsetDateTime = datetime!(2025-01-02 0:00 UTC);
use crate::scim::schema::ENTERPRISE_USER_URN as ENTERPRISE;
const EMAILS: [&str; 4] = ["a@x.io", "b@x.io", "c@x.io", "A@X.io"];
const USERS: u128 = 6;
const GROUPS: u128 = 4;

/// A directory user's state, small enough to generate.
#[derive(Debug, Clone)]
struct UserState {
    email: Option<usize>,
    active: bool,
    department: Option<u8>,
    groups: BTreeSet<u128>,
}

type Directory = BTreeMap<u128, UserState>;

fn user_id(n: u128) -> ResourceId {
    Uuid::from_u128(1000 + n)
}

fn group_id(n: u128) -> ResourceId {
    Uuid::from_u128(n)
}

fn directory_user(n: u128, state: &UserState) -> (DirectoryUser, BTreeSet<ResourceId>) {
    // With no displayName the member's name comes from `name`; `addresses`
    // is what no plan reads.
    let mut resource = json!({
        "userName": format!("user{n}"),
        "name": {"givenName": format!("Given{n}")},
        "addresses": [{"locality": "Paris"}]
    });
    if let (Some(dept), Some(obj)) = (state.department, resource.as_object_mut()) {
        obj.insert(ENTERPRISE.into(), json!({"department": format!("d{dept}")}));
    }
    let user = DirectoryUser {
        id: user_id(n),
        user_name: format!("user{n}@x.io"),
        email: state.email.map(|e| EMAILS[e].to_lowercase()),
        display_name: state.department.map(|d| format!("Name {d}")),
        active: state.active,
        resource,
    };
    (user, state.groups.iter().copied().map(group_id).collect())
}

fn snapshot(dir: &Directory) -> Vec<(DirectoryUser, BTreeSet<ResourceId>)> {
    dir.iter().map(|(n, s)| directory_user(*n, s)).collect()
}

fn user_state() -> impl Strategy<Value = UserState> {
    (
        prop::option::of(0..EMAILS.len()),
        prop::bool::weighted(0.8),
        prop::option::of(0u8..3),
        prop::collection::btree_set(1..=GROUPS, 0..=3),
    )
        .prop_map(|(email, active, department, groups)| UserState {
            email,
            active,
            department,
            groups,
        })
}

fn directory() -> impl Strategy<Value = Directory> {
    prop::collection::btree_map(1..=USERS, user_state(), 0..=USERS as usize)
}

fn policy() -> impl Strategy<Value = OrgPolicy> {
    let roles = prop::sample::select(vec![
        Role::Owner,
        Role::Admin,
        Role::User,
        Role::Custom("analyst".into()),
    ]);
    let tiers = prop::sample::select(vec!["standard", "premium"]);
    (
        any::<bool>(),
        Just((1..=GROUPS).collect::<Vec<_>>()).prop_shuffle(),
        1..=GROUPS as usize,
        prop::collection::vec(roles, GROUPS as usize),
        0..=2usize,
        prop::collection::vec(tiers, 2),
        0..=2usize,
        any::<bool>(),
        prop::sample::select(vec![
            ProvisioningMode::Scim,
            ProvisioningMode::Scim,
            ProvisioningMode::Manual,
        ]),
    )
        .prop_map(
            |(enabled, order, n_roles, roles, n_tiers, tiers, n_spend, suspend, mode)| {
                let mappings = GroupMappings {
                    enabled,
                    roles: order
                        .iter()
                        .take(n_roles)
                        .zip(roles)
                        .map(|(g, role)| RoleMapping {
                            group: group_id(*g),
                            role,
                        })
                        .collect(),
                    seat_tiers: order
                        .iter()
                        .rev()
                        .take(n_tiers)
                        .zip(tiers)
                        .filter_map(|(g, t)| {
                            Some(TierMapping {
                                group: group_id(*g),
                                tier: SeatTier::parse(t).ok()?,
                            })
                        })
                        .collect(),
                    spend_limits: order
                        .iter()
                        .skip(1)
                        .take(n_spend)
                        .enumerate()
                        .filter_map(|(i, g)| {
                            Some(SpendMapping {
                                group: group_id(*g),
                                limit: SpendLimit::new(100 * i as i64, "USD").ok()?,
                            })
                        })
                        .collect(),
                };
                OrgPolicy {
                    org_id: OrgId(Uuid::from_u128(1)),
                    mode,
                    mappings,
                    attributes: vec![AttributeDefinition {
                        key: "department".into(),
                        scim_path: Some(format!("{ENTERPRISE}:department")),
                        sso_claim: None,
                    }],
                    deprovision: if suspend {
                        Deprovision::Suspend
                    } else {
                        Deprovision::Remove
                    },
                }
            },
        )
}

/// Members as found before a first sync: linked to users in or out of the directory (possibly
/// twice), or unlinked with colliding emails, with hand-set roles and metadata.
fn members() -> impl Strategy<Value = Vec<Member>> {
    let one = (
        prop::option::of(1..=USERS + 2),
        0..EMAILS.len(),
        prop::sample::select(vec![Role::Owner, Role::Admin, Role::User]),
        any::<bool>(),
        any::<bool>(),
    );
    prop::collection::vec(one, 0..8).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (link, email, role, suspended, note))| {
                let mut public_metadata = Map::new();
                if note {
                    public_metadata.insert("note".into(), json!("admin's"));
                    public_metadata.insert("department".into(), json!("stale"));
                }
                Member {
                    id: MemberId(Uuid::from_u128(9000 + i as u128)),
                    org_id: OrgId(Uuid::from_u128(1)),
                    directory_user_id: link.map(user_id),
                    email: EMAILS[email].to_owned(),
                    name: None,
                    role,
                    seat_tier: None,
                    spend_limit: None,
                    public_metadata,
                    status: if suspended {
                        MemberStatus::Suspended
                    } else {
                        MemberStatus::Active
                    },
                    source: MemberSource::Manual,
                    created_at: NOW,
                    updated_at: NOW,
                }
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Event {
    Put(u128, UserState),
    Delete(u128),
    SetActive(u128, bool),
    SetEmail(u128, Option<usize>),
    Join(u128, u128),
    Leave(u128, u128),
    /// A group's member list replaced (PUT, or PATCH replacing `members`).
    ReplaceGroup(u128, BTreeSet<u128>),
    DeleteGroup(u128),
}

fn event() -> impl Strategy<Value = Event> {
    let user = 1..=USERS;
    prop_oneof![
        (user.clone(), user_state()).prop_map(|(u, s)| Event::Put(u, s)),
        user.clone().prop_map(Event::Delete),
        (user.clone(), any::<bool>()).prop_map(|(u, a)| Event::SetActive(u, a)),
        (user.clone(), prop::option::of(0..EMAILS.len())).prop_map(|(u, e)| Event::SetEmail(u, e)),
        // Group GROUPS + 1 is never mapped: its changes must move no one.
        (user.clone(), 1..=GROUPS + 1).prop_map(|(u, g)| Event::Join(u, g)),
        (user.clone(), 1..=GROUPS + 1).prop_map(|(u, g)| Event::Leave(u, g)),
        (
            1..=GROUPS + 1,
            prop::collection::btree_set(user, 0..=USERS as usize)
        )
            .prop_map(|(g, members)| Event::ReplaceGroup(g, members)),
        (1..=GROUPS + 1).prop_map(Event::DeleteGroup),
    ]
}

/// What a directory event tells sync: the users it may have moved, and the
/// group whose member list it changed (a change sync skips unless the
/// group decides something for the org).
struct Touched {
    users: BTreeSet<u128>,
    group: Option<u128>,
    /// A deleted group records no members: sync plans the org whole.
    whole_org: bool,
}

/// Applies an event to the directory; returns what it touched, as the
/// store records it (a rewrite names the old members and the new).
fn apply_event(dir: &mut Directory, event: &Event) -> Touched {
    let user = |u: u128| Touched {
        users: BTreeSet::from([u]),
        group: None,
        whole_org: false,
    };
    match event {
        Event::Put(u, state) => {
            dir.insert(*u, state.clone());
            user(*u)
        }
        Event::Delete(u) => {
            dir.remove(u);
            user(*u)
        }
        Event::SetActive(u, active) => {
            if let Some(s) = dir.get_mut(u) {
                s.active = *active;
            }
            user(*u)
        }
        Event::SetEmail(u, email) => {
            if let Some(s) = dir.get_mut(u) {
                s.email = *email;
            }
            user(*u)
        }
        Event::Join(u, g) | Event::Leave(u, g) => {
            if let Some(s) = dir.get_mut(u) {
                if matches!(event, Event::Join(..)) {
                    s.groups.insert(*g);
                } else {
                    s.groups.remove(g);
                }
            }
            Touched {
                users: BTreeSet::from([*u]),
                group: Some(*g),
                whole_org: false,
            }
        }
        Event::ReplaceGroup(g, _) | Event::DeleteGroup(g) => {
            let empty = BTreeSet::new();
            let members = match event {
                Event::ReplaceGroup(_, members) => members,
                _ => &empty,
            };
            let mut users: BTreeSet<u128> = members.clone();
            for (u, state) in dir.iter_mut() {
                if state.groups.contains(g) {
                    users.insert(*u);
                }
                if members.contains(u) {
                    state.groups.insert(*g);
                } else {
                    state.groups.remove(g);
                }
            }
            Touched {
                users,
                group: Some(*g),
                whole_org: matches!(event, Event::DeleteGroup(_)),
            }
        }
    }
}

/// The member state that matters, without generated ids and timestamps, keyed by directory user.
fn normalized(members: &[Member]) -> Vec<Value> {
    let mut rows: Vec<Value> = members
        .iter()
        .map(|m| {
            json!([
                m.directory_user_id,
                m.email,
                m.name,
                m.role,
                m.seat_tier,
                m.spend_limit,
                m.public_metadata,
                m.status,
                m.source,
                m.org_id
            ])
        })
        .collect();
    rows.sort_by_key(|v| v.to_string());
    rows
}

fn assert_one_member_per_user(members: &[Member]) -> Result<(), TestCaseError> {
    let mut seen = BTreeSet::new();
    for m in members {
        if let Some(link) = m.directory_user_id {
            prop_assert!(seen.insert(link), "two members for directory user {link}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn one_plan_converges_and_never_doubles_a_user(
        dir in directory(), policy in policy(), current in members()
    ) {
        let changes = plan(snapshot(&dir), &policy, &current, NOW);
        let after = apply(&current, &changes);
        if policy.mode == ProvisioningMode::Scim {
            assert_one_member_per_user(&after)?;
        } else {
            prop_assert!(changes.is_empty(), "outside scim mode the directory governs nothing");
        }
        let again = plan(snapshot(&dir), &policy, &after, LATER);
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again);
        prop_assert_eq!(changes.counts().adds, changes.adds.len());
    }

    #[test]
    fn incremental_events_reach_the_same_members_as_one_full_plan(
        initial in directory(), policy in policy(), events in prop::collection::vec(event(), 0..20)
    ) {
        // The starting members are those of a first sync, as they are once an org is in scim mode.
        let start = apply(&[], &plan(snapshot(&initial), &policy, &[], NOW));
        let mut dir = initial;
        let mut incremental = start.clone();
        for event in &events {
            let touched = apply_event(&mut dir, event);
            // As incremental sync does: a group that decides nothing moves no one.
            if touched.group.is_some_and(|g| !policy.mappings.decides(group_id(g))) {
                continue;
            }
            if touched.whole_org {
                incremental = apply(&incremental, &plan(snapshot(&dir), &policy, &incremental, LATER));
                continue;
            }
            for n in touched.users {
                let id = user_id(n);
                let member = incremental.iter().find(|m| m.directory_user_id == Some(id)).cloned();
                let user = dir.get(&n).map(|s| directory_user(n, s));
                let changes = plan_user(user, id, &policy, member.as_ref(), LATER);
                incremental = apply(&incremental, &changes);
                assert_one_member_per_user(&incremental)?;
            }
        }
        let full = apply(&start, &plan(snapshot(&dir), &policy, &start, LATER));
        prop_assert_eq!(normalized(&incremental), normalized(&full));
        let from_scratch = apply(&[], &plan(snapshot(&dir), &policy, &[], LATER));
        prop_assert_eq!(normalized(&incremental), normalized(&from_scratch));
        let resync = plan(snapshot(&dir), &policy, &incremental, LATER);
        prop_assert!(resync.is_empty(), "resync after incremental not empty: {:?}", resync);
    }

    #[test]
    fn plan_is_deterministic_up_to_new_member_ids(
        dir in directory(), policy in policy(), current in members()
    ) {
        let first = without_new_ids(plan(snapshot(&dir), &policy, &current, NOW));
        let second = without_new_ids(plan(snapshot(&dir), &policy, &current, NOW));
        prop_assert_eq!(first, second);
    }

    #[test]
    fn resources_trimmed_to_the_keys_a_policy_reads_plan_the_same(
        dir in directory(), policy in policy(), current in members()
    ) {
        let keys = ResourceKeys::for_policy(&policy);
        let trimmed: Vec<_> = snapshot(&dir)
            .into_iter()
            .map(|(mut user, groups)| {
                keys.trim(&mut user.resource);
                (user, groups)
            })
            .collect();
        prop_assert_eq!(
            without_new_ids(plan(trimmed, &policy, &current, NOW)),
            without_new_ids(plan(snapshot(&dir), &policy, &current, NOW))
        );
    }
}

/// A change set as JSON without the ids of members it adds (fresh each plan).
fn without_new_ids(changes: ChangeSet) -> Value {
    let mut v = serde_json::to_value(changes).unwrap_or(Value::Null);
    if let Some(adds) = v.get_mut("adds").and_then(Value::as_array_mut) {
        for add in adds {
            if let Some(m) = add.get_mut("member").and_then(Value::as_object_mut) {
                m.remove("id");
            }
        }
    }
    v
}
