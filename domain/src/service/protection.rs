//! Deletion protection: the gate every background sync passes before it
//! removes or suspends anyone, and the admin's view of and decision on what
//! it held.

use std::collections::HashSet;

use crate::audit::Actor;
use crate::auth::{Action, Principal};
use crate::error::ConflictCode;
use crate::membership::{ChangeCounts, ChangeSet, Member, MemberId};
use crate::org::{OrgId, Organization};
use crate::sync::{hold, DeletionThreshold, HeldRemovals, HeldSource, PROTECTION_WINDOW};
use crate::{Error, Result};

use super::{SyncService, Waiter};

impl SyncService {
    /// Applies a background change set through the org's deletion threshold:
    /// adds and ordinary updates always apply; removals and suspensions
    /// above the threshold are held for an admin instead. Returns what was
    /// applied.
    ///
    /// A full reconcile sees the whole picture, so its verdict replaces any
    /// earlier held plan (and drops it when nothing is held any more);
    /// incremental batches add to it.
    pub(super) async fn apply_gated(
        &self,
        org: OrgId,
        changes: ChangeSet,
        current: &[Member],
        source: HeldSource,
        actor: Actor,
    ) -> Result<ChangeSet> {
        let ports = self.ports();
        let counts = changes.counts();
        let (applied, held) = if counts.removals + counts.suspensions == 0 {
            (changes, None)
        } else {
            let threshold = ports.protection.threshold(org).await?;
            let members = ports.members.count_members(org).await?;
            let window_opened = ports.clock.now() - PROTECTION_WINDOW;
            let removed_recently = ports.protection.removed_since(org, window_opened).await?;
            hold(changes, threshold, members, removed_recently, org, source)
        };
        let applied_counts = applied.counts();
        let removing = (applied_counts.removals + applied_counts.suspensions) as u64;
        if removing > 0 {
            // Counted before they are applied: a crash in between counts
            // removals that did not happen (holding sooner), never the reverse.
            let now = ports.clock.now();
            ports.protection.count_removed(org, removing, now).await?;
        }
        self.apply(org, &applied, current, &actor).await?;
        match held {
            Some(held) => {
                let held = match (source, ports.protection.held(org).await?) {
                    (HeldSource::Directory, Some(earlier)) => earlier.merged_with(held),
                    _ => held,
                };
                ports.protection.hold(&held).await?;
                self.publish(
                    org,
                    crate::events::EventType::SyncRemovalsHeld,
                    held_summary(&held),
                )
                .await?;
                self.orgs()
                    .audit(
                        actor,
                        org,
                        "members.removals_held",
                        ("org", org.to_string()),
                        None,
                        Some(held_summary(&held)),
                    )
                    .await?;
            }
            None if source == HeldSource::Reconcile => {
                ports.protection.release(org).await?;
            }
            None => {}
        }
        Ok(applied)
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn deletion_threshold(
        &self,
        principal: &Principal,
        org: OrgId,
    ) -> Result<DeletionThreshold> {
        self.orgs().authorize(principal, org, Action::Read).await?;
        self.ports().protection.threshold(org).await
    }

    /// # Errors
    /// As `OrgService::authorize` with `Write`.
    pub async fn set_deletion_threshold(
        &self,
        principal: &Principal,
        org: OrgId,
        threshold: DeletionThreshold,
    ) -> Result<DeletionThreshold> {
        self.orgs().authorize(principal, org, Action::Write).await?;
        let before = self.ports().protection.threshold(org).await?;
        self.ports()
            .protection
            .set_threshold(org, threshold, self.ports().clock.now())
            .await?;
        self.orgs()
            .audit(
                principal,
                org,
                "deletion_protection.changed",
                ("org", org.to_string()),
                serde_json::to_value(before).ok(),
                serde_json::to_value(threshold).ok(),
            )
            .await?;
        Ok(threshold)
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`; `NotFound` when nothing is held.
    pub async fn held_removals(&self, principal: &Principal, org: OrgId) -> Result<HeldRemovals> {
        self.orgs().authorize(principal, org, Action::Read).await?;
        self.ports()
            .protection
            .held(org)
            .await?
            .ok_or(Error::NotFound {
                entity: "held removals",
            })
    }

    /// Applies exactly the held plan `confirmation` names, after checking
    /// that the directory still asks for every part of it. When it no longer
    /// does, nothing is applied: the held plan shrinks to what still stands
    /// and the caller is told to review it again.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write`; `NotFound` when nothing is
    /// held; `Conflict(ConfirmationRequired)` for a confirmation of another
    /// (or an outdated) plan.
    pub async fn confirm_held_removals(
        &self,
        principal: &Principal,
        org: OrgId,
        confirmation: &str,
    ) -> Result<ChangeCounts> {
        // The org as it is under the lease: a switch away from SCIM that
        // went first means the directory no longer removes anyone.
        self.write_as(principal, org, |org| {
            self.confirm_as_writer(principal, org, confirmation)
        })
        .await
    }

    async fn confirm_as_writer(
        &self,
        principal: &Principal,
        org: Organization,
        confirmation: &str,
    ) -> Result<ChangeCounts> {
        let ports = self.ports();
        let held = ports
            .protection
            .held(org.id)
            .await?
            .ok_or(Error::NotFound {
                entity: "held removals",
            })?;
        if held.confirmation != confirmation {
            return Err(stale(&held));
        }
        let settings = ports.members.settings(org.id).await?;
        let plan = self
            .plan_full(&org, org.provisioning_mode, &settings, Waiter::Request)
            .await?;
        let (fresh, current) = (plan.changes, plan.current);
        let removed: HashSet<MemberId> = fresh.removals.iter().map(|r| r.member_id).collect();
        let suspended: HashSet<MemberId> = fresh
            .updates
            .iter()
            .filter(|u| u.suspends())
            .map(|u| u.member_id)
            .collect();
        let still_planned = held.removals.iter().all(|r| removed.contains(&r.member_id))
            && held
                .suspensions
                .iter()
                .all(|u| suspended.contains(&u.member_id));
        let held_removed: HashSet<MemberId> = held.removals.iter().map(|r| r.member_id).collect();
        let held_suspended: HashSet<MemberId> =
            held.suspensions.iter().map(|u| u.member_id).collect();
        let confirmed = ChangeSet {
            planned_at: fresh.planned_at,
            adds: Vec::new(),
            updates: fresh
                .updates
                .into_iter()
                .filter(|u| held_suspended.contains(&u.member_id) && u.suspends())
                .collect(),
            removals: fresh
                .removals
                .into_iter()
                .filter(|r| held_removed.contains(&r.member_id))
                .collect(),
        };
        if !still_planned {
            // Someone came back (or changed) since the plan was held: keep
            // only what the directory still asks for, under a new confirmation.
            let narrowed = HeldRemovals::new(
                org.id,
                held.source,
                confirmed.removals,
                confirmed.updates,
                held.held_at,
            );
            if narrowed.is_empty() {
                ports.protection.release(org.id).await?;
            } else {
                ports.protection.hold(&narrowed).await?;
            }
            return Err(stale(&narrowed));
        }
        self.apply(org.id, &confirmed, &current, &Actor::of(principal))
            .await?;
        ports.protection.release(org.id).await?;
        // The admin has seen what the window removed: the count starts again.
        ports.protection.reset_removed(org.id).await?;
        let counts = confirmed.counts();
        self.orgs()
            .audit(
                principal,
                org.id,
                "members.removals_confirmed",
                ("org", org.id.to_string()),
                Some(held_summary(&held)),
                Some(serde_json::json!({ "applied": counts })),
            )
            .await?;
        Ok(counts)
    }

    /// Drops the held plan: its members stay until a later change removes them again.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write`; `NotFound` when nothing is held.
    pub async fn reject_held_removals(&self, principal: &Principal, org: OrgId) -> Result<()> {
        self.orgs().authorize(principal, org, Action::Write).await?;
        let held = self
            .ports()
            .protection
            .held(org)
            .await?
            .ok_or(Error::NotFound {
                entity: "held removals",
            })?;
        self.ports().protection.release(org).await?;
        self.orgs()
            .audit(
                principal,
                org,
                "members.removals_rejected",
                ("org", org.to_string()),
                Some(held_summary(&held)),
                None,
            )
            .await
    }

    /// After a switch away from SCIM: the directory no longer governs
    /// members, so what it held is no longer asked for (a confirmation would
    /// find nothing to apply). Dropped rather than left on the status page.
    pub(super) async fn drop_held_removals(&self, principal: &Principal, org: OrgId) -> Result<()> {
        let Some(held) = self.ports().protection.held(org).await? else {
            return Ok(());
        };
        self.ports().protection.release(org).await?;
        self.orgs()
            .audit(
                principal,
                org,
                "members.removals_dropped",
                ("org", org.to_string()),
                Some(held_summary(&held)),
                None,
            )
            .await
    }
}

fn held_summary(held: &HeldRemovals) -> serde_json::Value {
    serde_json::json!({
        "confirmation": held.confirmation,
        "source": held.source,
        "removals": held.removals.len(),
        "suspensions": held.suspensions.len(),
    })
}

fn stale(held: &HeldRemovals) -> Error {
    Error::conflict(
        ConflictCode::ConfirmationRequired,
        format!(
            "the held plan is now {} removal(s) and {} suspension(s); review it and confirm with \"confirmation\": \"{}\"",
            held.removals.len(),
            held.suspensions.len(),
            held.confirmation
        ),
    )
}
