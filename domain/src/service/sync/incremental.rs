//! Incremental sync: applying a directory's new change events to every org
//! drawing on it, user by user.

use super::*;

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

    /// Applies `conn`'s new events to `org_id` as its only writer. When a
    /// sync job or an admin change holds the org, it is left alone: that
    /// writer nudges the directory again when it is done.
    pub(super) async fn catch_up(&self, org_id: OrgId, conn: ConnectionId) -> Result<()> {
        let holder = format!("catch_up:{}", Uuid::new_v4());
        if !self
            .lock_org(org_id, &holder, std::time::Duration::ZERO)
            .await?
        {
            return Ok(());
        }
        let result = self.catch_up_locked(org_id, conn, &holder).await;
        let released = self.ports.runs.unlock_org(org_id, &holder).await;
        self.after_writing(org_id, false).await;
        result.and(released)?;
        // Another nudge may have found the org held and left: if events came
        // in after this catch-up's last read, nudge again for them.
        self.nudge_if_behind(org_id).await
    }

    pub(super) async fn catch_up_locked(
        &self,
        org_id: OrgId,
        conn: ConnectionId,
        holder: &str,
    ) -> Result<()> {
        let Some(org) = self.ports.orgs.find(org_id).await? else {
            return Ok(());
        };
        let Some(mut cursor) = self.ports.members.cursor(org_id, conn).await? else {
            // Never reconciled against this directory (a new source): a full
            // reconcile sets the baseline, through the deletion gate.
            self.reconcile(org_id, SyncScope::Both, scim_actor(conn))
                .await?;
            return Ok(());
        };
        let settings = self.ports.members.settings(org_id).await?;
        let policy = self
            .policy(&org, org.provisioning_mode, &settings, Some(conn))
            .await?;
        let mut stale_batches = 0;
        loop {
            let events = self.ports.feed.events(conn, cursor, EVENT_BATCH).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            if events.iter().any(|e| e.entity == EntityKind::Group) {
                // A group change can move any of its members: reconcile the org whole.
                self.reconcile(org_id, SyncScope::Both, scim_actor(conn))
                    .await?;
                return Ok(());
            }
            let users: BTreeSet<ResourceId> = events.iter().map(|e| e.entity_id).collect();
            let users: Vec<ResourceId> = users.into_iter().collect();
            let snapshot: HashMap<ResourceId, _> = self
                .ports
                .feed
                .snapshot_users(conn, &users)
                .await?
                .into_iter()
                .map(|(user, groups)| (user.id, (user, groups)))
                .collect();
            let mut snapshot = snapshot;
            let mut combined = ChangeSet::empty(self.now());
            // One query for the batch's members, not one per user.
            let planned_from = self
                .ports
                .members
                .find_by_directory_users(org_id, &users)
                .await?;
            let by_user: HashMap<ResourceId, &Member> = planned_from
                .iter()
                .filter_map(|m| m.directory_user_id.map(|u| (u, m)))
                .collect();
            for user in users {
                let planned = plan_user(
                    snapshot.remove(&user),
                    user,
                    &policy,
                    by_user.get(&user).copied(),
                    self.now(),
                );
                combined.adds.extend(planned.adds);
                combined.updates.extend(planned.updates);
                combined.removals.extend(planned.removals);
            }
            match self
                .apply_gated(
                    org_id,
                    combined,
                    &planned_from,
                    HeldSource::Directory,
                    scim_actor(conn),
                )
                .await
            {
                Ok(_) => stale_batches = 0,
                // A member of this batch changed under the plan: read the
                // same events again and plan from what is there now.
                Err(Error::PreconditionFailed(_)) if stale_batches + 1 < REPLANS => {
                    stale_batches += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            cursor = last;
            self.ports
                .members
                .set_cursor(org_id, conn, cursor, self.now())
                .await?;
            if !self
                .lock_org(org_id, holder, std::time::Duration::ZERO)
                .await?
            {
                // Taken over after a stall: stop writing.
                return Ok(());
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
