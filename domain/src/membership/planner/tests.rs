//! One test per planner rule, including each risk the reference product names.

use serde_json::json;
use time::macros::datetime;
use uuid::Uuid;

use super::*;
use crate::membership::{apply, RoleMapping, SpendMapping, TierMapping};

const NOW: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);
use crate::scim::schema::ENTERPRISE_USER_URN as ENTERPRISE;

fn group(n: u128) -> ResourceId {
    Uuid::from_u128(n)
}

fn groups(ids: &[u128]) -> BTreeSet<ResourceId> {
    ids.iter().copied().map(group).collect()
}

fn user(n: u128, email: &str) -> DirectoryUser {
    DirectoryUser {
        id: Uuid::from_u128(1000 + n),
        user_name: email.to_owned(),
        email: Some(email.to_owned()),
        display_name: Some(format!("User {n}")),
        active: true,
        resource: json!({"userName": email}),
    }
}

fn policy(mappings: GroupMappings) -> OrgPolicy {
    OrgPolicy {
        org_id: OrgId(Uuid::from_u128(1)),
        mode: ProvisioningMode::Scim,
        mappings,
        attributes: Vec::new(),
        deprovision: Deprovision::Remove,
    }
}

fn role(name: &str) -> Role {
    Role::parse(name).unwrap()
}

fn tier(name: &str) -> SeatTier {
    SeatTier::parse(name).unwrap()
}

/// Group 1 → admin, group 2 → analyst, group 3 → user, in that precedence.
fn role_mappings() -> GroupMappings {
    GroupMappings {
        enabled: true,
        roles: vec![
            RoleMapping {
                group: group(1),
                role: Role::Admin,
            },
            RoleMapping {
                group: group(2),
                role: role("analyst"),
            },
            RoleMapping {
                group: group(3),
                role: Role::User,
            },
        ],
        ..GroupMappings::default()
    }
}

/// The member a first sync would create for `u`.
fn member_of(u: &DirectoryUser, role: Role) -> Member {
    Member {
        id: MemberId(Uuid::from_u128(5000 + u.id.as_u128())),
        org_id: OrgId(Uuid::from_u128(1)),
        directory_user_id: Some(u.id),
        email: u.member_email().to_owned(),
        name: u.member_name(),
        role,
        seat_tier: None,
        spend_limit: None,
        public_metadata: Map::new(),
        status: MemberStatus::Active,
        source: MemberSource::Scim,
        created_at: NOW,
        updated_at: NOW,
    }
}

fn run(
    users: Vec<(DirectoryUser, BTreeSet<ResourceId>)>,
    policy: &OrgPolicy,
    current: &[Member],
) -> ChangeSet {
    plan(users, policy, current, NOW)
}

#[test]
fn with_mapping_off_every_active_user_becomes_a_member_with_role_user() {
    let users = vec![
        (user(1, "b@x.io"), groups(&[])),
        (user(2, "a@x.io"), groups(&[7])),
    ];
    let changes = run(users, &policy(GroupMappings::default()), &[]);
    assert_eq!(changes.adds.len(), 2);
    assert_eq!(
        changes.adds[0].member.email, "a@x.io",
        "adds are sorted by email"
    );
    let add = &changes.adds[1];
    assert_eq!(add.member.role, Role::User);
    assert_eq!(add.member.source, MemberSource::Scim);
    assert_eq!(add.member.directory_user_id, Some(Uuid::from_u128(1001)));
    assert_eq!(add.reasons, vec![Reason::DefaultRole { role: Role::User }]);
}

#[test]
fn with_mapping_off_existing_members_keep_their_hand_set_role_and_tier() {
    let u = user(1, "a@x.io");
    let mut m = member_of(&u, role("analyst"));
    m.seat_tier = Some(tier("premium"));
    let changes = run(
        vec![(u, groups(&[1]))],
        &policy(GroupMappings::default()),
        &[m],
    );
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn the_role_comes_from_the_highest_precedence_mapped_group() {
    let u = user(1, "a@x.io");
    let changes = run(vec![(u, groups(&[3, 2, 9]))], &policy(role_mappings()), &[]);
    assert_eq!(changes.adds[0].member.role, role("analyst"));
    assert_eq!(
        changes.adds[0].reasons,
        vec![Reason::RoleFromGroup {
            group: group(2),
            role: role("analyst"),
            precedence: 1
        }]
    );
}

#[test]
fn removed_from_the_top_group_a_member_falls_back_to_the_next_mapped_role() {
    let u = user(1, "a@x.io");
    let m = member_of(&u, Role::Admin);
    let changes = run(
        vec![(u, groups(&[3]))],
        &policy(role_mappings()),
        std::slice::from_ref(&m),
    );
    assert_eq!(changes.updates.len(), 1);
    let update = &changes.updates[0];
    assert_eq!(update.member_id, m.id);
    assert_eq!(
        update.changes,
        vec![FieldChange::Role {
            from: Role::Admin,
            to: Role::User
        }]
    );
    assert_eq!(
        update.reasons,
        vec![Reason::RoleFromGroup {
            group: group(3),
            role: Role::User,
            precedence: 2
        }]
    );
}

#[test]
fn an_incomplete_mapping_removes_exactly_the_unmapped_members_and_says_why() {
    let mapped = user(1, "mapped@x.io");
    let unmapped = user(2, "unmapped@x.io");
    let current = [
        member_of(&mapped, Role::Admin),
        member_of(&unmapped, Role::Admin),
    ];
    let users = vec![(mapped, groups(&[1])), (unmapped.clone(), groups(&[42]))];
    let changes = run(users, &policy(role_mappings()), &current);
    assert!(changes.adds.is_empty() && changes.updates.is_empty());
    assert_eq!(
        changes.removals,
        vec![Removal {
            member_id: current[1].id,
            email: "unmapped@x.io".into(),
            reason: Reason::NoRoleGroup
        }]
    );
    assert_eq!(
        changes.removals[0].reason.to_string(),
        "in no role-mapped group"
    );
}

#[test]
fn seat_tier_mapping_picks_the_first_match_and_removes_users_in_no_tier_group() {
    let mut mappings = role_mappings();
    mappings.seat_tiers = vec![
        TierMapping {
            group: group(10),
            tier: tier("premium"),
        },
        TierMapping {
            group: group(11),
            tier: tier("standard"),
        },
    ];
    let users = vec![
        (user(1, "a@x.io"), groups(&[1, 11, 10])),
        (user(2, "b@x.io"), groups(&[1])),
    ];
    let changes = run(users, &policy(mappings.clone()), &[]);
    assert_eq!(changes.adds.len(), 1);
    assert_eq!(changes.adds[0].member.seat_tier, Some(tier("premium")));
    let lone = user(2, "b@x.io");
    assert_eq!(
        desired(&lone, &groups(&[1]), &policy(mappings)),
        Desired::Absent(Reason::NoTierGroup)
    );
}

#[test]
fn spend_limits_come_from_the_first_group_with_one_and_clear_without_one() {
    let usd = |n| SpendLimit::new(n, "USD").unwrap();
    let mut mappings = role_mappings();
    mappings.spend_limits = vec![
        SpendMapping {
            group: group(20),
            limit: usd(100),
        },
        SpendMapping {
            group: group(21),
            limit: usd(50),
        },
    ];
    let a = user(1, "a@x.io");
    let b = user(2, "b@x.io");
    let mut ma = member_of(&a, Role::Admin);
    ma.spend_limit = Some(usd(1));
    let mut mb = member_of(&b, Role::Admin);
    mb.spend_limit = Some(usd(1));
    let users = vec![(a, groups(&[1, 21, 20])), (b, groups(&[1]))];
    let changes = run(users, &policy(mappings), &[ma, mb]);
    let limits: Vec<_> = changes
        .updates
        .iter()
        .map(|u| (u.changes.clone(), u.reasons.clone()))
        .collect();
    assert_eq!(
        limits,
        vec![
            (
                vec![FieldChange::SpendLimit {
                    from: Some(usd(1)),
                    to: Some(usd(100))
                }],
                vec![Reason::SpendLimitFromGroup {
                    group: group(20),
                    limit: usd(100),
                    precedence: 0
                }]
            ),
            (
                vec![FieldChange::SpendLimit {
                    from: Some(usd(1)),
                    to: None
                }],
                vec![Reason::NoSpendLimitGroup]
            ),
        ]
    );
}

#[test]
fn an_email_change_updates_the_member_in_place_keeping_its_id_and_role() {
    let before = user(1, "ada@old.io");
    let m = member_of(&before, role("analyst"));
    let mut after = before.clone();
    after.email = Some("ada@new.io".into());
    let changes = run(
        vec![(after, groups(&[]))],
        &policy(GroupMappings::default()),
        std::slice::from_ref(&m),
    );
    assert!(changes.adds.is_empty() && changes.removals.is_empty());
    assert_eq!(changes.updates.len(), 1);
    assert_eq!(changes.updates[0].member_id, m.id);
    assert_eq!(
        changes.updates[0].changes,
        vec![FieldChange::Email {
            from: "ada@old.io".into(),
            to: "ada@new.io".into()
        }]
    );
    assert_eq!(
        changes.updates[0].reasons,
        vec![Reason::ProfileFromDirectory]
    );
    let members = apply(std::slice::from_ref(&m), &changes);
    assert_eq!((members[0].id, &members[0].role), (m.id, &role("analyst")));
}

#[test]
fn an_email_that_matches_another_member_never_moves_identity() {
    // A linked member is matched by directory id only, even when another member has the email.
    let a = user(1, "a@x.io");
    let b = user(2, "b@x.io");
    let (ma, mb) = (member_of(&a, Role::Admin), member_of(&b, Role::User));
    let mut a2 = a.clone();
    a2.email = Some("b@x.io".into());
    let changes = run(
        vec![(a2, groups(&[])), (b, groups(&[]))],
        &policy(GroupMappings::default()),
        &[ma.clone(), mb],
    );
    assert_eq!(changes.updates.len(), 1);
    assert_eq!(changes.updates[0].member_id, ma.id);
    assert!(changes.adds.is_empty() && changes.removals.is_empty());
}

#[test]
fn an_inactive_user_is_removed_or_suspended_per_policy_and_reactivation_restores_them() {
    let mut u = user(1, "a@x.io");
    let m = member_of(&u, Role::Admin);
    u.active = false;
    let mut p = policy(role_mappings());

    let removed = run(
        vec![(u.clone(), groups(&[1]))],
        &p,
        std::slice::from_ref(&m),
    );
    assert_eq!(
        removed.removals[0].reason,
        Reason::Inactive {
            deprovision: Deprovision::Remove
        }
    );

    p.deprovision = Deprovision::Suspend;
    let suspended = run(
        vec![(u.clone(), groups(&[1]))],
        &p,
        std::slice::from_ref(&m),
    );
    assert!(suspended.removals.is_empty());
    assert_eq!(
        suspended.updates[0].changes,
        vec![FieldChange::Status {
            from: MemberStatus::Active,
            to: MemberStatus::Suspended
        }]
    );
    assert_eq!(
        suspended.updates[0].reasons,
        vec![Reason::Inactive {
            deprovision: Deprovision::Suspend
        }]
    );
    assert_eq!(suspended.counts().suspensions, 1);

    let members = apply(std::slice::from_ref(&m), &suspended);
    assert_eq!(
        (members[0].id, members[0].status),
        (m.id, MemberStatus::Suspended)
    );
    u.active = true;
    let back = run(vec![(u, groups(&[1]))], &p, &members);
    assert_eq!(back.updates[0].reasons, vec![Reason::Reactivated]);
    assert_eq!(apply(&members, &back)[0].status, MemberStatus::Active);
}

#[test]
fn a_deleted_user_is_removed_even_when_the_org_suspends() {
    let u = user(1, "a@x.io");
    let m = member_of(&u, Role::Admin);
    let mut p = policy(role_mappings());
    p.deprovision = Deprovision::Suspend;
    let changes = run(vec![], &p, std::slice::from_ref(&m));
    assert_eq!(changes.removals[0].reason, Reason::DeletedFromDirectory);
    let one = plan_user(None, u.id, &p, Some(&m), NOW);
    assert_eq!(one.removals, changes.removals);
}

#[test]
fn at_first_sync_an_unlinked_member_is_adopted_by_email_and_others_are_removed() {
    let u = user(1, "ada@x.io");
    let mut manual = member_of(&u, Role::Owner);
    manual.directory_user_id = None;
    manual.email = "Ada@X.io".into();
    manual.source = MemberSource::Manual;
    let mut stranger = member_of(&user(2, "eve@x.io"), Role::User);
    stranger.directory_user_id = None;
    let changes = run(
        vec![(u.clone(), groups(&[]))],
        &policy(GroupMappings::default()),
        &[manual.clone(), stranger.clone()],
    );

    assert!(changes.adds.is_empty());
    let update = &changes.updates[0];
    assert_eq!(update.member_id, manual.id);
    assert_eq!(
        update.changes[0],
        FieldChange::DirectoryLink {
            from: None,
            to: Some(u.id)
        }
    );
    assert_eq!(
        update.reasons[0],
        Reason::AdoptedByEmail {
            directory_user_id: u.id
        }
    );
    assert_eq!(
        update.reasons[0].to_string(),
        "adopted by email at first sync"
    );
    assert_eq!(changes.removals.len(), 1);
    assert_eq!(
        (changes.removals[0].member_id, &changes.removals[0].reason),
        (stranger.id, &Reason::NotInDirectory)
    );

    let members = apply(&[manual.clone(), stranger], &changes);
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].id, &members[0].role), (manual.id, &Role::Owner));
}

#[test]
fn an_adopted_member_in_no_role_group_is_removed_for_that_reason() {
    let u = user(1, "a@x.io");
    let mut manual = member_of(&u, Role::User);
    manual.directory_user_id = None;
    let changes = run(vec![(u, groups(&[]))], &policy(role_mappings()), &[manual]);
    assert_eq!(changes.removals[0].reason, Reason::NoRoleGroup);
}

#[test]
fn outside_scim_mode_the_directory_does_not_govern_membership() {
    for mode in [ProvisioningMode::Manual, ProvisioningMode::Jit] {
        let mut p = policy(role_mappings());
        p.mode = mode;
        let stray = member_of(&user(9, "z@x.io"), Role::User);
        assert!(run(
            vec![(user(1, "a@x.io"), groups(&[1]))],
            &p,
            std::slice::from_ref(&stray)
        )
        .is_empty());
        assert!(plan_user(
            None,
            stray.directory_user_id.unwrap(),
            &p,
            Some(&stray),
            NOW
        )
        .is_empty());
    }
}

#[test]
fn defined_attributes_are_written_and_removed_while_the_admins_keys_stay() {
    let mut p = policy(GroupMappings::default());
    p.attributes = vec![
        AttributeDefinition {
            key: "department".into(),
            scim_path: Some(format!("{ENTERPRISE}:department")),
            sso_claim: None,
        },
        AttributeDefinition {
            key: "title".into(),
            scim_path: Some("title".into()),
            sso_claim: None,
        },
        AttributeDefinition {
            key: "sso_only".into(),
            scim_path: None,
            sso_claim: Some("x".into()),
        },
    ];
    let mut u = user(1, "a@x.io");
    u.resource = json!({"userName": "a@x.io", ENTERPRISE: {"department": "R&D"}});
    let mut m = member_of(&u, Role::User);
    m.public_metadata =
        serde_json::from_value(json!({"title": "CEO", "sso_only": 1, "nickname": "ada"})).unwrap();
    let changes = run(vec![(u.clone(), groups(&[]))], &p, std::slice::from_ref(&m));
    assert_eq!(
        changes.updates[0].changes,
        vec![FieldChange::Metadata {
            from: serde_json::from_value(json!({"department": null, "title": "CEO"})).unwrap(),
            to: serde_json::from_value(json!({"department": "R&D", "title": null})).unwrap(),
        }]
    );
    let members = apply(&[m], &changes);
    assert_eq!(
        Value::Object(members[0].public_metadata.clone()),
        json!({"department": "R&D", "sso_only": 1, "nickname": "ada"})
    );
    assert!(
        run(vec![(u, groups(&[]))], &p, &members).is_empty(),
        "no-op members produce nothing"
    );
}

#[test]
fn the_name_falls_back_to_the_name_attribute() {
    let mut u = user(1, "a@x.io");
    u.display_name = None;
    u.resource = json!({"name": {"givenName": "Ada", "familyName": "Lovelace"}});
    assert_eq!(u.member_name().as_deref(), Some("Ada Lovelace"));
    u.resource = json!({"name": {"formatted": "Dr. Ada Lovelace"}});
    assert_eq!(u.member_name().as_deref(), Some("Dr. Ada Lovelace"));
    u.email = None;
    assert_eq!(
        u.member_email(),
        "a@x.io",
        "userName stands in for a missing email"
    );
}

#[test]
fn a_second_member_linked_to_the_same_user_is_removed() {
    let u = user(1, "a@x.io");
    let kept = member_of(&u, Role::User);
    let mut dup = kept.clone();
    dup.id = MemberId(Uuid::from_u128(u128::MAX));
    let changes = run(
        vec![(u, groups(&[]))],
        &policy(GroupMappings::default()),
        &[dup.clone(), kept.clone()],
    );
    assert_eq!(
        changes.removals,
        vec![Removal {
            member_id: dup.id,
            email: dup.email,
            reason: Reason::DuplicateLink { kept: kept.id }
        }]
    );
    assert!(changes.updates.is_empty() && changes.adds.is_empty());
}

#[test]
fn plan_user_agrees_with_plan_for_one_user() {
    let u = user(1, "a@x.io");
    let m = member_of(&u, Role::User);
    let p = policy(role_mappings());
    let one = plan_user(Some((u.clone(), groups(&[1]))), u.id, &p, Some(&m), NOW);
    let all = run(vec![(u.clone(), groups(&[1]))], &p, &[m]);
    assert_eq!(one, all);
    let added = plan_user(Some((u.clone(), groups(&[2]))), u.id, &p, None, NOW);
    assert_eq!(added.adds[0].member.role, role("analyst"));
}

#[test]
fn reasons_and_changes_serialize_for_the_api() {
    let reason = Reason::RoleFromGroup {
        group: group(2),
        role: Role::Admin,
        precedence: 0,
    };
    assert_eq!(
        serde_json::to_value(&reason).unwrap(),
        json!({"kind": "role_from_group", "group": group(2), "role": "admin", "precedence": 0})
    );
    assert_eq!(
        serde_json::to_value(Reason::NoRoleGroup).unwrap(),
        json!({"kind": "no_role_group"})
    );
    let change = FieldChange::Role {
        from: Role::User,
        to: Role::Admin,
    };
    let json = serde_json::to_value(&change).unwrap();
    assert_eq!(
        json,
        json!({"field": "role", "from": "user", "to": "admin"})
    );
    assert_eq!(serde_json::from_value::<FieldChange>(json).unwrap(), change);
}
