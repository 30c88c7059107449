//! Planning and applying: the policy an org is planned with, full plans
//! against a directory (matching members by email when the org moves to it),
//! conditional writes with relinking, and the one way a confirmed plan lands.

use super::*;
use crate::membership::{Reason, Removal};
use crate::service::computing;

/// A full reconcile plan with what it was planned from. It keeps its share
/// of the process's [`PlanBudget`] until it is dropped.
pub(in crate::service) struct FullPlan {
    pub changes: ChangeSet,
    /// The directory and the change-log position the plan reflects
    /// (everything up to it is in the plan).
    pub position: Option<(ConnectionId, i64)>,
    /// The members the plan updates or removes, as planned from.
    pub current: Vec<Member>,
    /// Held, not read: dropping the plan gives its share back. Whoever
    /// plans again while holding a plan must drop it first, or it may wait
    /// for its own share.
    _reserved: Option<PlanPermit>,
}

impl FullPlan {
    fn empty(now: OffsetDateTime, position: Option<(ConnectionId, i64)>) -> Self {
        Self {
            changes: ChangeSet::empty(now),
            position,
            current: Vec::new(),
            _reserved: None,
        }
    }
}

impl SyncService {
    /// Everything that decides `org`'s members when it draws on `conn`, with
    /// `mode` and `settings` as given (the current ones, or the ones a change
    /// would save).
    pub(super) async fn policy(
        &self,
        org: &Organization,
        mode: ProvisioningMode,
        settings: &MembershipSettings,
        conn: Option<ConnectionId>,
    ) -> Result<OrgPolicy> {
        let attributes = match conn {
            Some(conn) => self.ports.members.attributes(conn).await?,
            None => Vec::new(),
        };
        Ok(OrgPolicy {
            org_id: org.id,
            mode,
            mappings: settings.mappings.clone(),
            attributes,
            deprovision: settings.deprovision,
        })
    }

    /// A full reconcile plan against the directory `org` draws on now, and
    /// the event sequence it reflects (everything up to it is in the
    /// snapshot; later events are applied incrementally).
    pub(in crate::service) async fn plan_full(
        &self,
        org: &Organization,
        mode: ProvisioningMode,
        settings: &MembershipSettings,
        waiter: Waiter,
    ) -> Result<FullPlan> {
        let conn = self.ports.connections.drawing_connection(org.id).await?;
        self.plan_against(org, mode, settings, conn, false, waiter)
            .await
    }

    /// A full reconcile plan against `conn`'s directory. An org that has not
    /// reconciled against it yet (or `new_source`) is moving to this
    /// directory: links to another directory's users mean nothing here, so
    /// every member is matched by email, and the same person keeps their
    /// member (id, role, history) across the move.
    pub(super) async fn plan_against(
        &self,
        org: &Organization,
        mode: ProvisioningMode,
        settings: &MembershipSettings,
        conn: Option<ConnectionId>,
        new_source: bool,
        waiter: Waiter,
    ) -> Result<FullPlan> {
        let now = self.now();
        let policy = self.policy(org, mode, settings, conn).await?;
        let Some(conn) = conn else {
            return Ok(FullPlan::empty(now, None));
        };
        if mode != ProvisioningMode::Scim {
            return Ok(FullPlan::empty(now, Some((conn, 0))));
        }
        // What the plan will hold: the org's members, and an add or a
        // removal at most for each directory user.
        let (members, users) = futures::future::try_join(
            self.ports.members.count_members(org.id),
            self.ports.feed.user_count(conn),
        )
        .await?;
        let size = members + users;
        let reserved = self.ports.plan_budget.reserve(size, waiter).await?;
        // The position is read before the snapshot, so nothing between them is missed.
        let position = self.latest_seq(conn).await?;
        let new_source = new_source || self.ports.members.cursor(org.id, conn).await?.is_none();
        // With group mapping on, only users in a role-mapped group (or already
        // members) can be members: reading just those keeps a cascade over many
        // orgs from reading the whole directory once per org.
        let deciding = policy.mappings.deciding_groups();
        let keys = ResourceKeys::for_policy(&policy);
        let roles: Vec<ResourceId> = policy.mappings.roles.iter().map(|m| m.group).collect();
        // The store starts reading pages ahead as soon as it knows which
        // users to read, while the members are read and prepared.
        let snapshot = async {
            let users = if policy.mappings.enabled {
                self.ports
                    .feed
                    .plan_candidates(conn, org.id, &roles, users)
                    .await?
            } else {
                None
            };
            let scope = SnapshotScope {
                deciding,
                keys,
                users,
            };
            Ok(self.ports.feed.snapshot(conn, scope))
        };
        let (mut pages, mut current) =
            futures::future::try_join(snapshot, self.ports.members.all_members(org.id)).await?;
        if new_source {
            // Links to users this directory has (the org drew on it before)
            // stay; the others are another directory's and are dropped.
            let linked: Vec<ResourceId> =
                current.iter().filter_map(|m| m.directory_user_id).collect();
            let here: HashSet<ResourceId> = self
                .ports
                .feed
                .existing_users(conn, &linked)
                .await?
                .into_iter()
                .collect();
            for member in &mut current {
                if member.directory_user_id.is_some_and(|u| !here.contains(&u)) {
                    member.directory_user_id = None;
                }
            }
        }
        let mut planner = computing(|| Planner::new(&policy, &current, now));
        while let Some(page) = pages.try_next().await? {
            computing(|| {
                for (user, groups) in &page {
                    planner.user(user, groups);
                }
            });
        }
        let changes = computing(|| planner.finish());
        // Applying reads only the members a change updates or removes (the
        // version each write expects); the rest of the org need not stay in
        // memory while the plan is applied or held for confirmation.
        computing(|| {
            let touched = changes.touched();
            current.retain(|m| touched.contains(&m.id));
            current.shrink_to_fit();
        });
        Ok(FullPlan {
            changes,
            position: Some((conn, position)),
            current,
            _reserved: Some(reserved),
        })
    }

    /// A plan that removes every member of `org`, which is being deleted:
    /// what the deletion's confirmation covers and how its removals land.
    pub(super) async fn plan_removing_everyone(
        &self,
        org: OrgId,
        waiter: Waiter,
    ) -> Result<FullPlan> {
        let count = self.ports.members.count_members(org).await?;
        let reserved = self.ports.plan_budget.reserve(count, waiter).await?;
        let current = self.ports.members.all_members(org).await?;
        let mut changes = ChangeSet::empty(self.now());
        changes.removals = current
            .iter()
            .map(|member| Removal {
                member_id: member.id,
                email: member.email.clone(),
                reason: Reason::OrgDeleted,
            })
            .collect();
        changes
            .removals
            .sort_by(|a, b| (&a.email, a.member_id.0).cmp(&(&b.email, b.member_id.0)));
        Ok(FullPlan {
            changes,
            position: None,
            current,
            _reserved: Some(reserved),
        })
    }

    pub(super) async fn latest_seq(&self, conn: ConnectionId) -> Result<i64> {
        self.ports.feed.latest_seq(conn).await
    }

    /// Applies a change set: adds and updated members as complete rows,
    /// removals by id. `current` holds (at least) the updated and removed
    /// members as they were planned from; the store applies each write only
    /// if the member is still that version.
    ///
    /// # Errors
    /// `PreconditionFailed` when a member changed since the plan (nothing is
    /// applied; re-plan), or infrastructure failures.
    pub(in crate::service) async fn apply(
        &self,
        org: OrgId,
        changes: &ChangeSet,
        current: &[Member],
        actor: &Actor,
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let touched = changes.touched();
        let current: HashMap<MemberId, &Member> = current
            .iter()
            .filter(|m| touched.contains(&m.id))
            .map(|m| (m.id, m))
            .collect();
        let updated = changes
            .updates
            .iter()
            .filter_map(|update| {
                let before = *current.get(&update.member_id)?;
                let mut after = before.clone();
                for change in &update.changes {
                    change.apply_to(&mut after);
                }
                after.updated_at = changes.planned_at;
                Some((after, before))
            })
            .collect();
        let relinks = self.relinks(org, changes).await?;
        let writes = MemberWrites {
            // References, not copies: at 100k adds a second copy is most of the memory.
            added: changes
                .adds
                .iter()
                .map(|a| {
                    a.member
                        .directory_user_id
                        .and_then(|user| relinks.get(&user))
                        .unwrap_or(&a.member)
                })
                .collect(),
            relinked: relinks.values().map(|m| m.id).collect(),
            updated,
            removed: changes
                .removals
                .iter()
                .filter_map(|r| current.get(&r.member_id).copied())
                .collect(),
            actor: actor.clone(),
            at: changes.planned_at,
        };
        self.ports.members.apply(org, &writes).await
    }

    /// The planned adds that give a removed member back within the relink
    /// window: a directory user back in a mapped group or reactivated, or
    /// one an IdP deleted and created again (some connectors do on an email
    /// or domain change) with the same externalId (or email, per
    /// [`RelinkPolicy`]), gets the old member (id, creation, history; role and seat tier too unless
    /// group mappings decide them) with the new directory user's fields.
    pub(super) async fn relinks(
        &self,
        org: OrgId,
        changes: &ChangeSet,
    ) -> Result<HashMap<ResourceId, Member>> {
        let planned: HashMap<ResourceId, &Member> = changes
            .adds
            .iter()
            .filter_map(|a| Some((a.member.directory_user_id?, &a.member)))
            .collect();
        if planned.is_empty() {
            return Ok(HashMap::new());
        }
        let Some(conn) = self.ports.connections.drawing_connection(org).await? else {
            return Ok(HashMap::new());
        };
        let users: Vec<ResourceId> = planned.keys().copied().collect();
        let found = self
            .ports
            .members
            .relinkable(org, conn, &users, self.ports.relink.at(changes.planned_at))
            .await?;
        if found.is_empty() {
            return Ok(HashMap::new());
        }
        let roles_are_mapped = self.ports.members.settings(org).await?.mappings.enabled;
        let mut relinks = HashMap::new();
        // One old member comes back once, to the first user that claims it.
        let mut claimed = HashSet::new();
        for (user, old) in found {
            let Some(new) = planned.get(&user) else {
                continue;
            };
            if !claimed.insert(old.id) {
                continue;
            }
            let mut member = (*new).clone();
            member.id = old.id;
            member.created_at = old.created_at;
            if !roles_are_mapped {
                member.role = old.role;
                member.seat_tier = old.seat_tier;
            }
            relinks.insert(user, member);
        }
        Ok(relinks)
    }

    /// How a plan an admin confirmed lands in the request itself: the
    /// (conditional) member writes, then the org's cursor moves to the event
    /// the plan reflects, then a finished run records it.
    ///
    /// # Errors
    /// `PreconditionFailed` when a member changed since the plan (nothing is
    /// applied), or infrastructure failures.
    pub(super) async fn apply_plan(
        &self,
        org: OrgId,
        principal: &Principal,
        kind: SyncKind,
        (changes, current, position): (&ChangeSet, &[Member], Option<(ConnectionId, i64)>),
        started: OffsetDateTime,
    ) -> Result<SyncRun> {
        self.apply(org, changes, current, &Actor::of(principal))
            .await?;
        if let Some((conn, seq)) = position {
            self.ports
                .members
                .set_cursor(org, conn, seq, self.now())
                .await?;
        }
        self.record(org, kind, SyncScope::Both, principal, changes, started)
            .await
    }

    /// Records a finished run for a change applied in the request itself.
    pub(super) async fn record(
        &self,
        org: OrgId,
        kind: SyncKind,
        scope: SyncScope,
        principal: &Principal,
        changes: &ChangeSet,
        started: OffsetDateTime,
    ) -> Result<SyncRun> {
        let run = SyncRun {
            id: RunId::new(),
            org_id: org,
            kind,
            scope,
            requested_by: principal.subject().to_owned(),
            status: RunStatus::Succeeded,
            counts: changes.counts(),
            report: Some(report(changes)),
            error: None,
            created_at: started,
            started_at: Some(started),
            finished_at: Some(self.now()),
        };
        self.ports.runs.insert(&run).await?;
        Ok(run)
    }

    pub(super) async fn require_directory(&self, org: &Organization) -> Result<ConnectionId> {
        self.ports
            .connections
            .drawing_connection(org.id)
            .await?
            .ok_or_else(|| {
                Error::conflict(
                    ConflictCode::NoDirectory,
                    "no enterprise connection with directory sync on reaches this organization",
                )
            })
    }
}

/// A run's report: the counts and the per-member entries (capped).
pub(super) fn report(changes: &ChangeSet) -> serde_json::Value {
    #[derive(Serialize)]
    struct Report<'a> {
        counts: ChangeCounts,
        truncated: bool,
        adds: &'a [crate::membership::Add],
        updates: &'a [crate::membership::Update],
        removals: &'a [crate::membership::Removal],
    }
    let cap = |n: usize| n.min(REPORT_ENTRIES);
    let report = Report {
        counts: changes.counts(),
        truncated: changes.adds.len() > REPORT_ENTRIES
            || changes.updates.len() > REPORT_ENTRIES
            || changes.removals.len() > REPORT_ENTRIES,
        adds: &changes.adds[..cap(changes.adds.len())],
        updates: &changes.updates[..cap(changes.updates.len())],
        removals: &changes.removals[..cap(changes.removals.len())],
    };
    serde_json::to_value(report).unwrap_or_default()
}
