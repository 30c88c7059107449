//! Source changes: orgs moving to another directory when a connection is
//! turned on or off or deleted, previewed and applied org by org.

use super::*;

/// What became of one org of a confirmed source change.
#[derive(Debug)]
pub enum SourceApplied {
    /// Reconciled against its new directory as previewed, in the request.
    Applied { org: OrgId, run: SyncRun },
    /// Its directory or members moved since the preview: reconciled through
    /// the deletion gate instead (large removals are held for an admin).
    Gated { org: OrgId },
    /// Reconciling failed; the worker retries it through the deletion gate.
    /// `cause` is for the operator's log.
    Deferred { org: OrgId, cause: Error },
}

impl SyncService {
    /// What `change` would do: every org whose directory it moves, each
    /// planned against the directory it would draw on (no directory: its
    /// members stay as they are).
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn plan_source_change(&self, change: SourceChange) -> Result<SourcePlan> {
        let shifts = self
            .ports
            .connections
            .source_shifts(change.connection(), change.enabled_after())
            .await?;
        let mut orgs = Vec::with_capacity(shifts.len());
        for shift in shifts {
            let Some(org) = self.ports.orgs.find(shift.org_id).await? else {
                continue;
            };
            let settings = self.ports.members.settings(org.id).await?;
            let plan = self.plan_move(&org, &settings, shift.to).await?;
            orgs.push(MovedOrg::new(shift, &Preview::of(plan.changes, &change)));
        }
        Ok(SourcePlan::new(change, orgs))
    }

    /// Reconciles each org a confirmed source change moved (call it once the
    /// connection changed). An org whose new plan is still the previewed one
    /// gets exactly that, as confirmed; any other goes through the deletion
    /// gate like a background reconcile. One org's failure does not stop the
    /// others: its reconcile is left to the workers.
    ///
    /// # Errors
    /// None of its own; per-org failures are in the answer.
    pub async fn apply_source_change(
        &self,
        principal: &Principal,
        plan: &SourcePlan,
    ) -> Vec<SourceApplied> {
        let mut out = Vec::new();
        for moved in &plan.orgs {
            let Some(to) = moved.shift.to else {
                continue;
            };
            let org = moved.shift.org_id;
            let result = self
                .as_writer(org, self.adopt_source(principal, plan, moved))
                .await;
            out.push(match result {
                Ok(Some(run)) => SourceApplied::Applied { org, run },
                Ok(None) => SourceApplied::Gated { org },
                Err(cause) => {
                    // The org has not reconciled against `to`, so the next
                    // nudge reconciles it in full, through the gate.
                    let _ = self.notify_directory_changed(to).await;
                    SourceApplied::Deferred { org, cause }
                }
            });
        }
        out
    }

    pub(super) async fn adopt_source(
        &self,
        principal: &Principal,
        plan: &SourcePlan,
        moved: &MovedOrg,
    ) -> Result<Option<SyncRun>> {
        let shift = &moved.shift;
        let started = self.now();
        let org = self
            .ports
            .orgs
            .find(shift.org_id)
            .await?
            .ok_or(Error::NotFound {
                entity: "organization",
            })?;
        let settings = self.ports.members.settings(org.id).await?;
        // The plan is dropped before a reconcile plans again: its share of
        // the plan budget could otherwise be what that plan waits for.
        {
            let fresh = self.plan_move(&org, &settings, shift.to).await?;
            let preview = Preview::of(fresh.changes, &plan.change);
            let drawn = self.ports.connections.drawing_connection(org.id).await?;
            if preview.confirmation == moved.confirmation && drawn == shift.to {
                let applied = self
                    .apply_plan(
                        org.id,
                        principal,
                        SyncKind::SourceChange,
                        (&preview.changes, &fresh.current, fresh.position),
                        started,
                    )
                    .await;
                if !matches!(applied, Err(Error::PreconditionFailed(_))) {
                    return applied.map(Some);
                }
            }
        }
        // Not the plan that was confirmed (the directory or the members
        // changed since): through the deletion gate like any reconcile.
        self.reconcile(
            org.id,
            SyncScope::Both,
            Actor::of(principal),
            Waiter::Request,
        )
        .await?;
        Ok(None)
    }

    /// What moving `org` to the directory `to` would do, planned inside an
    /// admin's request.
    async fn plan_move(
        &self,
        org: &Organization,
        settings: &MembershipSettings,
        to: Option<ConnectionId>,
    ) -> Result<super::planning::FullPlan> {
        self.plan_against(
            org,
            org.provisioning_mode,
            settings,
            to,
            true,
            Waiter::Request,
        )
        .await
    }
}
