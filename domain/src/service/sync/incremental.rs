//! Incremental sync: applying a directory's new change events to every org
//! drawing on it: each changed user, and the members a change to a deciding
//! group moved, planned again; never the whole org.

use super::writer::Held;
use super::*;
use crate::directory::{ChangeEvent, ChangeOp};

/// Users planned and applied together by incremental sync.
const USER_BATCH: usize = 1_000;
/// Changed group members read per query.
const MEMBER_PAGE: u64 = 5_000;
/// How long one catch-up applies a directory's events before it gives the
/// worker's slot back. Every tenant's IdP changes share the changes lane: a
/// directory with a long backlog (an IdP's first push of 100,000 users, a
/// bulk edit) takes turns with the others instead of holding a slot until
/// it is through. The org is nudged again at once, behind what was queued
/// meanwhile; a turn costs one lease and one read of the org's policy.
const CATCH_UP_TURN: std::time::Duration = std::time::Duration::from_secs(1);

impl SyncService {
    /// Applies a directory's new change events to every org drawing on it.
    /// Idempotent: plans compare desired with current state, and each org's
    /// cursor only moves after its changes are applied.
    ///
    /// # Errors
    /// Infrastructure failures (the job is retried).
    pub async fn apply_directory_changes(&self, conn: ConnectionId) -> Result<()> {
        // One org's failure must not hold back the others: each catches up
        // on its own cursor, and the first failure is reported (the nudge is
        // retried, and caught-up orgs have nothing left to do).
        self.ports.directory.settle(conn).await?;
        let mut first_failure = None;
        for org in self.ports.connections.orgs_drawing_on(conn).await? {
            if let Err(e) = self.catch_up(org, conn).await {
                first_failure.get_or_insert(e);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// Applies `conn`'s new events to `org_id` as its only writer, for one
    /// turn ([`CATCH_UP_TURN`]). When a sync job or an admin change holds
    /// the org, it is left alone: that writer nudges the directory again
    /// when it is done.
    pub(super) async fn catch_up(&self, org_id: OrgId, conn: ConnectionId) -> Result<()> {
        let lease = Held::new(self, org_id, format!("catch_up:{}", Uuid::new_v4()));
        if !self
            .lock_org(org_id, lease.holder(), std::time::Duration::ZERO)
            .await?
        {
            lease.not_taken();
            return Ok(());
        }
        let result = self.catch_up_locked(org_id, conn).await;
        let released = lease.release().await;
        self.after_writing(org_id, false).await;
        result.and(released)?;
        // Another nudge may have found the org held and left, or the turn
        // ended first: if events are left, nudge again for them.
        self.nudge_if_behind(org_id).await
    }

    async fn catch_up_locked(&self, org_id: OrgId, conn: ConnectionId) -> Result<()> {
        let Some(org) = self.ports.orgs.find(org_id).await? else {
            return Ok(());
        };
        let Some(mut cursor) = self.ports.members.cursor(org_id, conn).await? else {
            // Never reconciled against this directory (a new source): a full
            // reconcile sets the baseline, through the deletion gate.
            self.reconcile_from_directory(org_id, conn).await?;
            return Ok(());
        };
        let settings = self.ports.members.settings(org_id).await?;
        let policy = self
            .policy(&org, org.provisioning_mode, &settings, Some(conn))
            .await?;
        // A turn is far shorter than the writer lease, so the lease needs no
        // renewal: no one can take the org over while it lasts (after a
        // batch stalled past it, the turn is over and nothing more is written).
        let turn_ends = self.now() + CATCH_UP_TURN;
        loop {
            let events = self.ports.feed.events(conn, cursor, EVENT_BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            if events.iter().any(|e| {
                e.entity == EntityKind::Group
                    && e.op == ChangeOp::Deleted
                    && policy.mappings.decides(e.entity_id)
            }) {
                // A deleted group's members are not in its event (deleting a
                // big group stays one statement); a mapping named it, so
                // reconcile the org whole, through the deletion gate.
                self.reconcile_from_directory(org_id, conn).await?;
                return Ok(());
            }
            let users = self.users_moved_by(conn, &events, &policy).await?;
            for batch in users.chunks(USER_BATCH) {
                if !self.replan_users(org_id, conn, &policy, batch).await? {
                    return Ok(());
                }
            }
            cursor = last;
            self.ports
                .members
                .set_cursor(org_id, conn, cursor, self.now())
                .await?;
            if self.now() >= turn_ends {
                return Ok(());
            }
        }
    }

    /// A whole reconcile of `org_id` as the IdP's doing, through the
    /// deletion gate; background work, so it waits its turn for the budget.
    async fn reconcile_from_directory(&self, org_id: OrgId, conn: ConnectionId) -> Result<()> {
        self.reconcile(
            org_id,
            SyncScope::Both,
            scim_actor(conn),
            Waiter::Background,
        )
        .await
        .map(drop)
    }

    /// The directory users `events` can move: each user changed, and the
    /// members a group event changed when the group decides something for
    /// the org (a role, seat tier or spend limit). A change to any other
    /// group moves no one, and none moves anyone but its own members: the
    /// work follows the change, not the size of the org.
    async fn users_moved_by(
        &self,
        conn: ConnectionId,
        events: &[ChangeEvent],
        policy: &OrgPolicy,
    ) -> Result<Vec<ResourceId>> {
        let mut users: BTreeSet<ResourceId> = events
            .iter()
            .filter(|e| e.entity == EntityKind::User)
            .map(|e| e.entity_id)
            .collect();
        let deciding: Vec<i64> = events
            .iter()
            .filter(|e| e.entity == EntityKind::Group && policy.mappings.decides(e.entity_id))
            .map(|e| e.seq)
            .collect();
        let mut after = None;
        while !deciding.is_empty() {
            let page = self
                .ports
                .feed
                .changed_members(conn, &deciding, after.as_ref(), MEMBER_PAGE)
                .await?;
            // Values that are not user ids (nested groups, junk) move no one.
            users.extend(page.iter().filter_map(|(_, v)| Uuid::parse_str(v).ok()));
            if (page.len() as u64) < MEMBER_PAGE {
                break;
            }
            after = page.last().cloned();
        }
        Ok(users.into_iter().collect())
    }

    /// Plans `users` afresh against the directory as it is now and applies
    /// the plan through the deletion gate. A member changed under the plan
    /// is planned again from what is there then. `false` when the org no
    /// longer draws on `conn` (see [`SyncService::still_drawing_on`]):
    /// nothing was applied, and the catch-up is over.
    async fn replan_users(
        &self,
        org_id: OrgId,
        conn: ConnectionId,
        policy: &OrgPolicy,
        users: &[ResourceId],
    ) -> Result<bool> {
        let mut attempt = 0;
        loop {
            let mut snapshot: HashMap<ResourceId, _> = self
                .ports
                .feed
                .snapshot_users(conn, users)
                .await?
                .into_iter()
                .map(|(user, groups)| (user.id, (user, groups)))
                .collect();
            // One query for the batch's members, not one per user.
            let planned_from = self
                .ports
                .members
                .find_by_directory_users(org_id, users)
                .await?;
            let by_user: HashMap<ResourceId, &Member> = planned_from
                .iter()
                .filter_map(|m| m.directory_user_id.map(|u| (u, m)))
                .collect();
            let mut combined = ChangeSet::empty(self.now());
            for &user in users {
                let planned = plan_user(
                    snapshot.remove(&user),
                    user,
                    policy,
                    by_user.get(&user).copied(),
                    self.now(),
                );
                combined.adds.extend(planned.adds);
                combined.updates.extend(planned.updates);
                combined.removals.extend(planned.removals);
            }
            if !combined.is_empty() && !self.still_drawing_on(org_id, conn).await? {
                return Ok(false);
            }
            let applied = self
                .apply_gated(
                    org_id,
                    combined,
                    &planned_from,
                    HeldSource::Directory,
                    scim_actor(conn),
                )
                .await;
            match applied {
                Err(Error::PreconditionFailed(_)) if attempt + 1 < REPLANS => attempt += 1,
                other => return other.map(|_| true),
            }
        }
    }

    /// Tells the workers that `conn`'s directory changed. Losing this nudge
    /// delays the change until the next one (the events are in the database).
    ///
    /// # Errors
    /// `Unavailable` when the queue is down.
    pub async fn notify_directory_changed(&self, conn: ConnectionId) -> Result<()> {
        self.ports
            .queue
            .publish(
                &Task::DirectoryChanged {
                    connection_id: conn,
                }
                .to_job(),
            )
            .await
    }
}

pub(super) fn scim_actor(conn: ConnectionId) -> Actor {
    Actor::Scim {
        connection_id: conn.0,
    }
}
