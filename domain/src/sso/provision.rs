//! Who may come in on sign-in, and what a sign-in changes, by the org's mode:
//! `jit` creates and refreshes the members it made; `scim` admits active
//! directory members and changes nothing the directory owns; `manual` admits
//! existing members only.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::{SignInError, SsoProfile};
use crate::membership::{Member, MemberId, MemberSource, MemberStatus, Role};
use crate::org::{OrgId, ProvisioningMode};

/// What a permitted sign-in does to the org's members.
#[derive(Debug, Clone, PartialEq)]
pub enum SignIn {
    Create(Member),
    Update { before: Box<Member>, after: Member },
    Unchanged(Member),
}

impl SignIn {
    pub fn member(&self) -> &Member {
        match self {
            Self::Create(member) | Self::Unchanged(member) | Self::Update { after: member, .. } => {
                member
            }
        }
    }
}

/// Decides a sign-in.
///
/// `found` is the member this identity already maps to (by its link, by its
/// directory user, or by email when it is new); `claimed` is what the
/// attribute definitions read from the claims; `role` is what a member
/// created here gets (the org's JIT default).
///
/// # Errors
/// `access_denied` for a suspended member, or when the mode lets only
/// existing (directory) members in and there is none.
pub fn decide(
    org: OrgId,
    mode: ProvisioningMode,
    found: Option<Member>,
    profile: &SsoProfile,
    claimed: &Map<String, Value>,
    role: &Role,
    now: OffsetDateTime,
) -> Result<SignIn, SignInError> {
    if let Some(member) = &found {
        if member.status == MemberStatus::Suspended {
            return Err(SignInError::denied("this member is suspended"));
        }
    }
    match (mode, found) {
        (ProvisioningMode::Scim, Some(member)) if member.directory_user_id.is_some() => {
            Ok(SignIn::Unchanged(member))
        }
        (ProvisioningMode::Scim, _) => Err(SignInError::denied(
            "this organization admits only members provisioned by its directory",
        )),
        (ProvisioningMode::Manual, Some(member)) => Ok(SignIn::Unchanged(member)),
        (ProvisioningMode::Manual, None) => Err(SignInError::denied(
            "this organization admits only members added by its admins",
        )),
        // What the directory owns stays the directory's, whatever the mode.
        (ProvisioningMode::Jit, Some(member)) if member.directory_user_id.is_some() => {
            Ok(SignIn::Unchanged(member))
        }
        (ProvisioningMode::Jit, Some(before)) => {
            let mut after = before.clone();
            after.email.clone_from(&profile.email);
            if let Some(name) = profile.display_name() {
                after.name = Some(name);
            }
            for (key, value) in claimed {
                if value.is_null() {
                    after.public_metadata.remove(key);
                } else {
                    after.public_metadata.insert(key.clone(), value.clone());
                }
            }
            if after == before {
                Ok(SignIn::Unchanged(before))
            } else {
                after.updated_at = now;
                Ok(SignIn::Update {
                    before: Box::new(before),
                    after,
                })
            }
        }
        (ProvisioningMode::Jit, None) => Ok(SignIn::Create(Member {
            id: MemberId::new(),
            org_id: org,
            directory_user_id: None,
            email: profile.email.clone(),
            name: profile.display_name(),
            role: role.clone(),
            seat_tier: None,
            spend_limit: None,
            public_metadata: claimed
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            status: MemberStatus::Active,
            source: MemberSource::Jit,
            created_at: now,
            updated_at: now,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn profile(email: &str) -> SsoProfile {
        SsoProfile {
            id: "sub-1".into(),
            email: email.into(),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            groups: vec![],
            raw_attributes: Map::new(),
        }
    }

    fn member(org: OrgId, directory: bool) -> Member {
        let now = OffsetDateTime::UNIX_EPOCH;
        Member {
            id: MemberId::new(),
            org_id: org,
            directory_user_id: directory.then(uuid::Uuid::now_v7),
            email: "old@example.com".into(),
            name: Some("Ada Lovelace".into()),
            role: Role::Admin,
            seat_tier: None,
            spend_limit: None,
            public_metadata: Map::from_iter([("team".to_owned(), json!("core"))]),
            status: MemberStatus::Active,
            source: MemberSource::Jit,
            created_at: now,
            updated_at: now,
        }
    }

    fn claimed(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    const NOW: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    #[test]
    fn jit_creates_a_user_on_first_sign_in_with_the_claimed_attributes() {
        let org = OrgId::new();
        let decided = decide(
            org,
            ProvisioningMode::Jit,
            None,
            &profile("ada@example.com"),
            &claimed(json!({"department": "R&D", "level": null})),
            &Role::User,
            NOW,
        );
        let Ok(SignIn::Create(member)) = decided else {
            panic!("expected a creation, got {decided:?}");
        };
        assert_eq!((member.org_id, member.role.clone()), (org, Role::User));
        assert_eq!(member.source, MemberSource::Jit);
        assert_eq!(member.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(
            Value::Object(member.public_metadata),
            json!({"department": "R&D"})
        );
    }

    #[test]
    fn jit_updates_email_and_claims_in_place_and_keeps_role_and_other_metadata() {
        let org = OrgId::new();
        let before = member(org, false);
        let decided = decide(
            org,
            ProvisioningMode::Jit,
            Some(before.clone()),
            &profile("new@example.com"),
            &claimed(json!({"department": "Ops"})),
            &Role::User,
            NOW + time::Duration::hours(1),
        );
        let Ok(SignIn::Update { after, .. }) = decided else {
            panic!("expected an update, got {decided:?}");
        };
        assert_eq!(after.id, before.id, "an email change keeps the member");
        assert_eq!(after.email, "new@example.com");
        assert_eq!(after.role, Role::Admin);
        assert_eq!(
            Value::Object(after.public_metadata.clone()),
            json!({"team": "core", "department": "Ops"})
        );
        let again = decide(
            org,
            ProvisioningMode::Jit,
            Some(after.clone()),
            &profile("new@example.com"),
            &claimed(json!({"department": "Ops"})),
            &Role::User,
            NOW,
        );
        assert_eq!(again.ok(), Some(SignIn::Unchanged(after)));
    }

    #[test]
    fn directory_members_are_admitted_unchanged_in_every_mode() {
        let org = OrgId::new();
        for mode in [
            ProvisioningMode::Jit,
            ProvisioningMode::Scim,
            ProvisioningMode::Manual,
        ] {
            let governed = member(org, true);
            let decided = decide(
                org,
                mode,
                Some(governed.clone()),
                &profile("changed@example.com"),
                &claimed(json!({"department": "X"})),
                &Role::User,
                NOW,
            );
            assert_eq!(decided.ok(), Some(SignIn::Unchanged(governed)), "{mode:?}");
        }
    }

    #[test]
    fn scim_and_manual_orgs_admit_only_who_they_already_have() {
        let org = OrgId::new();
        let p = profile("ada@example.com");
        let none = Map::new();
        for mode in [ProvisioningMode::Scim, ProvisioningMode::Manual] {
            assert!(
                decide(org, mode, None, &p, &none, &Role::User, NOW).is_err(),
                "{mode:?}"
            );
        }
        let by_hand = member(org, false);
        assert!(decide(
            org,
            ProvisioningMode::Scim,
            Some(by_hand.clone()),
            &p,
            &none,
            &Role::User,
            NOW
        )
        .is_err());
        assert_eq!(
            decide(
                org,
                ProvisioningMode::Manual,
                Some(by_hand.clone()),
                &p,
                &none,
                &Role::User,
                NOW
            )
            .ok(),
            Some(SignIn::Unchanged(by_hand))
        );
    }

    #[test]
    fn suspended_members_never_come_in() {
        let org = OrgId::new();
        for mode in [
            ProvisioningMode::Jit,
            ProvisioningMode::Scim,
            ProvisioningMode::Manual,
        ] {
            let mut suspended = member(org, true);
            suspended.status = MemberStatus::Suspended;
            let decided = decide(
                org,
                mode,
                Some(suspended),
                &profile("a@example.com"),
                &Map::new(),
                &Role::User,
                NOW,
            );
            assert!(decided.is_err(), "{mode:?}");
        }
    }
}
