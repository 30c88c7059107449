//! Deriving members from the directory: full reconciles (manual syncs, mode
//! and mapping changes, each previewed first when it removes people) and
//! incremental application of the directory's change log.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::Actor;
use crate::auth::{Action, Principal};
use crate::directory::{ConnectionId, EntityKind, ResourceId};
use crate::error::ConflictCode;
use crate::membership::{plan, plan_user, ChangeCounts, ChangeSet, Member, MemberId, OrgPolicy};
use crate::org::{OrgId, OrgKind, Organization, ProvisioningMode};
use crate::page::{Page, PageRequest};
use crate::ports::{
    Clock, ConnectionRepository, DeletionProtection, DirectoryRepository, JobQueue, MemberWrites,
    MembershipRepository, OrgRepository, SyncRunRepository, Task,
};
use crate::service::OrgService;
use crate::sync::{
    restrict, retry_delay, run_status, ConfirmationNeeded, HeldSource, MembershipSettings,
    OrgEffect, Preview, RelinkPolicy, RunStatus, SourceChange, SourcePlan, SourceShift, SyncJob,
    SyncKind, SyncRun, SyncScope,
};
use crate::{Error, Result};

/// Per-member entries kept in a run's report; counts are always complete.
const REPORT_ENTRIES: usize = 1_000;
/// Plans made again when members changed under one before giving up (the
/// job is then retried later).
const REPLANS: usize = 3;
/// How long an admin's change waits for another writer of the org (an
/// incremental batch, a sync job) before answering `sync-in-progress`.
const ADMIN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Change events read per batch by incremental sync.
const EVENT_BATCH: u64 = 1_000;

/// The ports sync works through.
#[derive(Clone)]
pub struct SyncPorts {
    pub orgs: Arc<dyn OrgRepository>,
    pub connections: Arc<dyn ConnectionRepository>,
    pub directory: Arc<dyn DirectoryRepository>,
    pub members: Arc<dyn MembershipRepository>,
    pub runs: Arc<dyn SyncRunRepository>,
    pub protection: Arc<dyn DeletionProtection>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub jobs: JobPolicy,
    pub relink: RelinkPolicy,
}

/// What became of a sync job a worker was handed.
#[derive(Debug)]
pub enum JobOutcome {
    /// Another worker holds it, or it is already finished.
    NotClaimed,
    Done,
    /// Recorded as failed (retried later while attempts remain); `cause` is
    /// for the operator's log, never for the tenant.
    Failed {
        org: OrgId,
        cause: Error,
    },
}

/// How sync jobs are retried and when a silent worker's job is taken back.
#[derive(Debug, Clone, Copy)]
pub struct JobPolicy {
    /// Attempts before a job is marked failed.
    pub max_attempts: u32,
    /// A running job with no heartbeat for this long is put back in the queue;
    /// a queued job not picked up for this long is published again.
    pub lease: std::time::Duration,
    pub base_backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
}

/// What an admin asks a sync to cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncRequest {
    pub scope: SyncScope,
    /// Every org drawing on the same directory (true by default).
    pub cascade: bool,
    /// Sandboxes too (true by default).
    pub include_sandboxes: bool,
}

impl Default for SyncRequest {
    fn default() -> Self {
        Self {
            scope: SyncScope::Both,
            cascade: true,
            include_sandboxes: true,
        }
    }
}

#[derive(Clone)]
pub struct SyncService {
    orgs: OrgService,
    ports: SyncPorts,
}

/// What applying a confirmed change did.
#[derive(Debug, Clone)]
pub struct Applied {
    pub run: Option<SyncRun>,
}

impl SyncService {
    pub fn new(orgs: OrgService, ports: SyncPorts) -> Self {
        Self { orgs, ports }
    }

    pub(crate) fn orgs(&self) -> &OrgService {
        &self.orgs
    }

    pub(crate) fn ports(&self) -> &SyncPorts {
        &self.ports
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }

    /// Everything that decides `org`'s members when it draws on `conn`, with
    /// `mode` and `settings` as given (the current ones, or the ones a change
    /// would save).
    async fn policy(
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
    pub(super) async fn plan_full(
        &self,
        org: &Organization,
        mode: ProvisioningMode,
        settings: &MembershipSettings,
    ) -> Result<(ChangeSet, Option<(ConnectionId, i64)>, Vec<Member>)> {
        let conn = self.ports.connections.drawing_connection(org.id).await?;
        self.plan_against(org, mode, settings, conn, false).await
    }

    /// A full reconcile plan against `conn`'s directory. An org that has not
    /// reconciled against it yet (or `new_source`) is moving to this
    /// directory: links to another directory's users mean nothing here, so
    /// every member is matched by email, and the same person keeps their
    /// member (id, role, history) across the move.
    async fn plan_against(
        &self,
        org: &Organization,
        mode: ProvisioningMode,
        settings: &MembershipSettings,
        conn: Option<ConnectionId>,
        new_source: bool,
    ) -> Result<(ChangeSet, Option<(ConnectionId, i64)>, Vec<Member>)> {
        let now = self.now();
        let policy = self.policy(org, mode, settings, conn).await?;
        let Some(conn) = conn else {
            return Ok((ChangeSet::empty(now), None, Vec::new()));
        };
        if mode != ProvisioningMode::Scim {
            return Ok((ChangeSet::empty(now), Some((conn, 0)), Vec::new()));
        }
        // The position is read before the snapshot, so nothing between them is missed.
        let position = self.latest_seq(conn).await?;
        let new_source = new_source || self.ports.members.cursor(org.id, conn).await?.is_none();
        // With group mapping on, only users in a role-mapped group (or already
        // members) can be members: reading just those keeps a cascade over many
        // orgs from reading the whole directory once per org.
        let deciding = policy.mappings.deciding_groups();
        let roles: Vec<ResourceId> = policy.mappings.roles.iter().map(|m| m.group).collect();
        let snapshot = async {
            if policy.mappings.enabled {
                self.ports
                    .directory
                    .snapshot_for_org(conn, org.id, &roles, &deciding)
                    .await
            } else {
                self.ports.directory.snapshot(conn, &deciding).await
            }
        };
        // Read side by side: the database answers one while this decodes the other.
        let (users, mut current) =
            futures::future::try_join(snapshot, self.ports.members.all_members(org.id)).await?;
        if new_source {
            // Links to users this directory has (the org drew on it before)
            // stay; the others are another directory's and are dropped.
            let linked: Vec<ResourceId> =
                current.iter().filter_map(|m| m.directory_user_id).collect();
            let here: HashSet<ResourceId> = self
                .ports
                .directory
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
        let changes = plan(users, &policy, &current, now);
        Ok((changes, Some((conn, position)), current))
    }

    async fn latest_seq(&self, conn: ConnectionId) -> Result<i64> {
        self.ports.directory.latest_seq(conn).await
    }

    /// Applies a change set: adds and updated members as complete rows,
    /// removals by id. `current` holds (at least) the updated and removed
    /// members as they were planned from; the store applies each write only
    /// if the member is still that version.
    ///
    /// # Errors
    /// `PreconditionFailed` when a member changed since the plan (nothing is
    /// applied; re-plan), or infrastructure failures.
    pub(super) async fn apply(
        &self,
        org: OrgId,
        changes: &ChangeSet,
        current: &[Member],
        actor: &Actor,
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let touched: HashSet<MemberId> = changes
            .updates
            .iter()
            .map(|u| u.member_id)
            .chain(changes.removals.iter().map(|r| r.member_id))
            .collect();
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

    /// The planned adds that give a removed member back: an IdP that deleted
    /// a person and created them again (some connectors do on an email or
    /// domain change) with the same externalId (or email, per [`RelinkPolicy`])
    /// within the relink window gets
    /// the old member (id, creation, history; role and seat tier too unless
    /// group mappings decide them) with the new directory user's fields.
    async fn relinks(
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
    async fn apply_plan(
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
    async fn record(
        &self,
        org: OrgId,
        kind: SyncKind,
        scope: SyncScope,
        principal: &Principal,
        changes: &ChangeSet,
        started: OffsetDateTime,
    ) -> Result<SyncRun> {
        let run = SyncRun {
            id: Uuid::now_v7(),
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

    async fn require_directory(&self, org: &Organization) -> Result<ConnectionId> {
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

    /// What switching `org` to `mode` would do.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write`; `Conflict(NoDirectory)` for
    /// `scim` when no directory reaches the org.
    pub async fn preview_mode(
        &self,
        principal: &Principal,
        org: OrgId,
        mode: ProvisioningMode,
    ) -> Result<Preview> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        if mode == ProvisioningMode::Scim {
            self.require_directory(&org).await?;
        }
        let settings = self.ports.members.settings(org.id).await?;
        let (changes, _, _) = self.plan_full(&org, mode, &settings).await?;
        Ok(Preview::of(changes, &mode))
    }

    /// Switches the provisioning mode. Switching to `scim` reconciles the org
    /// with its directory in the same request; when that removes or suspends
    /// anyone, `confirm` must be the confirmation of the preview showing it.
    ///
    /// # Errors
    /// As [`Self::preview_mode`]; `Conflict(ConfirmationRequired)` when a
    /// destructive change was not confirmed (or the preview is out of date).
    pub async fn set_mode(
        &self,
        principal: &Principal,
        org: OrgId,
        mode: ProvisioningMode,
        confirm: Option<&str>,
    ) -> Result<(Organization, Applied)> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        self.as_writer(
            org.id,
            self.set_mode_as_writer(principal, org, mode, confirm),
        )
        .await
    }

    async fn set_mode_as_writer(
        &self,
        principal: &Principal,
        mut org: Organization,
        mode: ProvisioningMode,
        confirm: Option<&str>,
    ) -> Result<(Organization, Applied)> {
        let started = self.now();
        if mode == ProvisioningMode::Scim {
            self.require_directory(&org).await?;
        }
        let settings = self.ports.members.settings(org.id).await?;
        let (changes, position, current) = self.plan_full(&org, mode, &settings).await?;
        let preview = Preview::of(changes, &mode);
        require_confirmation(org.id, &preview, confirm)?;
        if org.provisioning_mode != mode {
            let before = org.provisioning_mode;
            org.provisioning_mode = mode;
            org.updated_at = self.now();
            self.ports.orgs.update(&org).await?;
            self.orgs
                .audit(
                    principal,
                    org.id,
                    "provisioning_mode.changed",
                    ("org", org.id.to_string()),
                    Some(serde_json::json!({ "mode": before })),
                    Some(serde_json::json!({ "mode": mode, "changes": preview.counts })),
                )
                .await?;
        }
        if mode != ProvisioningMode::Scim {
            return Ok((org, Applied { run: None }));
        }
        let run = self
            .apply_plan(
                org.id,
                principal,
                SyncKind::ModeChange,
                (&preview.changes, &current, position),
                started,
            )
            .await?;
        Ok((org, Applied { run: Some(run) }))
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn settings(&self, principal: &Principal, org: OrgId) -> Result<MembershipSettings> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        self.ports.members.settings(org).await
    }

    async fn validate_settings(
        &self,
        org: &Organization,
        settings: &MembershipSettings,
    ) -> Result<()> {
        let mappings = &settings.mappings;
        let groups: Vec<ResourceId> = mappings
            .roles
            .iter()
            .map(|m| m.group)
            .chain(mappings.seat_tiers.iter().map(|m| m.group))
            .chain(mappings.spend_limits.iter().map(|m| m.group))
            .collect();
        let existing: HashSet<ResourceId> =
            match self.ports.connections.drawing_connection(org.id).await? {
                Some(conn) if !groups.is_empty() => self
                    .ports
                    .directory
                    .existing_groups(conn, &groups)
                    .await?
                    .into_iter()
                    .collect(),
                _ => HashSet::new(),
            };
        let roles: HashSet<String> = self
            .ports
            .members
            .roles(org.id)
            .await?
            .into_iter()
            .map(|r| r.name.as_str().to_owned())
            .collect();
        let tiers: HashSet<String> = self
            .ports
            .members
            .seat_tiers(org.id)
            .await?
            .into_iter()
            .map(|t| t.as_str().to_owned())
            .collect();
        mappings.validate(
            &|group| existing.contains(&group),
            &|role| roles.contains(role.as_str()),
            &|tier| tiers.contains(tier.as_str()),
        )
    }

    /// What saving `settings` would do to the members.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write`; `Invalid` for mappings naming
    /// unknown groups, roles or tiers, or listing a group twice.
    pub async fn preview_settings(
        &self,
        principal: &Principal,
        org: OrgId,
        settings: &MembershipSettings,
    ) -> Result<Preview> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        self.validate_settings(&org, settings).await?;
        let (changes, _, _) = self
            .plan_full(&org, org.provisioning_mode, settings)
            .await?;
        Ok(Preview::of(changes, settings))
    }

    /// Saves group mappings and deprovisioning, and (in SCIM mode) applies
    /// them to every member at once; removals need the preview's confirmation.
    ///
    /// # Errors
    /// As [`Self::preview_settings`]; `Conflict(ConfirmationRequired)` as in [`Self::set_mode`].
    pub async fn save_settings(
        &self,
        principal: &Principal,
        org: OrgId,
        settings: &MembershipSettings,
        confirm: Option<&str>,
    ) -> Result<Applied> {
        let org = self.orgs.authorize(principal, org, Action::Write).await?;
        self.as_writer(
            org.id,
            self.save_settings_as_writer(principal, org, settings, confirm),
        )
        .await
    }

    async fn save_settings_as_writer(
        &self,
        principal: &Principal,
        org: Organization,
        settings: &MembershipSettings,
        confirm: Option<&str>,
    ) -> Result<Applied> {
        let started = self.now();
        self.validate_settings(&org, settings).await?;
        let (changes, position, current) = self
            .plan_full(&org, org.provisioning_mode, settings)
            .await?;
        let preview = Preview::of(changes, settings);
        require_confirmation(org.id, &preview, confirm)?;
        let before = self.ports.members.settings(org.id).await?;
        self.ports
            .members
            .save_settings(org.id, settings, self.now())
            .await?;
        self.orgs
            .audit(
                principal,
                org.id,
                "group_mappings.saved",
                ("org", org.id.to_string()),
                serde_json::to_value(&before).ok(),
                serde_json::to_value(settings).ok(),
            )
            .await?;
        if org.provisioning_mode != ProvisioningMode::Scim {
            return Ok(Applied { run: None });
        }
        let run = self
            .apply_plan(
                org.id,
                principal,
                SyncKind::MappingChange,
                (&preview.changes, &current, position),
                started,
            )
            .await?;
        Ok(Applied { run: Some(run) })
    }

    /// The orgs a sync requested on `org` covers: with `cascade`, every org
    /// drawing on the same directory (the parent, children and, with
    /// `include_sandboxes`, sandboxes); the requested org is always in it.
    /// The caller must be able to write to every one of them.
    async fn sync_scope(
        &self,
        principal: &Principal,
        org: OrgId,
        request: SyncRequest,
    ) -> Result<Vec<Organization>> {
        let requested = self.orgs.authorize(principal, org, Action::Write).await?;
        let mut ids = vec![requested.id];
        if request.cascade {
            if let Some(conn) = self.ports.connections.drawing_connection(org).await? {
                ids.extend(
                    self.ports
                        .connections
                        .orgs_drawing_on(conn)
                        .await?
                        .into_iter()
                        .filter(|o| *o != org),
                );
            }
        }
        let mut orgs = vec![requested];
        for id in ids.into_iter().skip(1) {
            let found = match self.orgs.authorize(principal, id, Action::Write).await {
                Ok(found) => found,
                Err(Error::NotFound { .. } | Error::Forbidden(_)) => {
                    return Err(Error::Forbidden(
                        "this sync cascades to organizations outside this token's reach; \
                         ask with a token of the directory's owner, or with \"cascade\": false"
                            .into(),
                    ))
                }
                Err(other) => return Err(other),
            };
            if request.include_sandboxes || found.kind != OrgKind::Sandbox {
                orgs.push(found);
            }
        }
        Ok(orgs)
    }

    /// What a sync would change now, org by org over its whole scope.
    ///
    /// # Errors
    /// As [`Self::start_sync`].
    pub async fn preview_sync(
        &self,
        principal: &Principal,
        org: OrgId,
        request: SyncRequest,
    ) -> Result<Vec<(Organization, Preview)>> {
        let mut out = Vec::new();
        for org in self.sync_scope(principal, org, request).await? {
            let settings = self.ports.members.settings(org.id).await?;
            let (changes, _, _) = self
                .plan_full(&org, org.provisioning_mode, &settings)
                .await?;
            let preview = Preview::of(restrict(changes, request.scope), &request.scope);
            out.push((org, preview));
        }
        Ok(out)
    }

    /// Queues a sync: one job per org of its scope, fanned out through the
    /// queue. An org whose job is still queued joins it instead.
    ///
    /// # Errors
    /// As `OrgService::authorize` with `Write` on every org of the scope
    /// (`Forbidden` when the cascade leaves the token's reach). A queue
    /// outage is not an error: the jobs are recorded and re-published.
    pub async fn start_sync(
        &self,
        principal: &Principal,
        org: OrgId,
        request: SyncRequest,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        let orgs = self.sync_scope(principal, org, request).await?;
        let now = self.now();
        let run = SyncRun {
            id: Uuid::now_v7(),
            org_id: org,
            kind: SyncKind::Manual,
            scope: request.scope,
            requested_by: principal.subject().to_owned(),
            status: RunStatus::Queued,
            counts: ChangeCounts::default(),
            report: None,
            error: None,
            created_at: now,
            started_at: None,
            finished_at: None,
        };
        let ids: Vec<OrgId> = orgs.iter().map(|o| o.id).collect();
        let new_jobs = self.ports.runs.enqueue(&run, &ids, now).await?;
        self.orgs
            .audit(
                principal,
                org,
                "sync.requested",
                ("sync_run", run.id.to_string()),
                None,
                Some(serde_json::json!({ "scope": request.scope, "orgs": ids })),
            )
            .await?;
        for job in new_jobs {
            // Best effort: the sweeper re-publishes anything the queue did not take.
            let _ = self.publish_job(job).await;
        }
        self.with_jobs(run, false).await
    }

    async fn publish_job(&self, job: Uuid) -> Result<()> {
        self.ports
            .queue
            .publish(&Task::Sync { job_id: job }.to_job())
            .await
    }

    /// A manual run's status and counts come from its jobs.
    async fn with_jobs(
        &self,
        mut run: SyncRun,
        with_reports: bool,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        if run.kind != SyncKind::Manual {
            return Ok((run, Vec::new()));
        }
        let jobs = self.ports.runs.jobs_of(run.id, with_reports).await?;
        summarize(&mut run, &jobs);
        Ok((run, jobs))
    }

    /// # Errors
    /// As `OrgService::authorize` with `Read`.
    pub async fn runs(
        &self,
        principal: &Principal,
        org: OrgId,
        page: PageRequest,
    ) -> Result<Page<SyncRun>> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        let mut page = self.ports.runs.list(org, page).await?;
        // One query for the jobs of the whole page, not one per run.
        let manual: Vec<Uuid> = page
            .items
            .iter()
            .filter(|r| r.kind == SyncKind::Manual)
            .map(|r| r.id)
            .collect();
        let mut jobs: HashMap<Uuid, Vec<SyncJob>> = HashMap::new();
        for (run, job) in self.ports.runs.jobs_of_runs(&manual).await? {
            jobs.entry(run).or_default().push(job);
        }
        for run in &mut page.items {
            if let Some(jobs) = jobs.get(&run.id) {
                summarize(run, jobs);
            }
        }
        Ok(page)
    }
}

/// A manual run's status, counts and timings come from its jobs.
fn summarize(run: &mut SyncRun, jobs: &[SyncJob]) {
    if jobs.is_empty() {
        return;
    }
    run.status = run_status(jobs);
    run.counts = jobs
        .iter()
        .fold(ChangeCounts::default(), |sum, j| ChangeCounts {
            adds: sum.adds + j.counts.adds,
            updates: sum.updates + j.counts.updates,
            removals: sum.removals + j.counts.removals,
            suspensions: sum.suspensions + j.counts.suspensions,
        });
    run.started_at = jobs.iter().filter_map(|j| j.started_at).min();
    run.finished_at = if matches!(run.status, RunStatus::Succeeded | RunStatus::Failed) {
        jobs.iter().filter_map(|j| j.finished_at).max()
    } else {
        None
    };
    run.error = jobs.iter().find_map(|j| j.error.clone());
}

impl SyncService {
    /// # Errors
    /// `NotFound` for a run of another org, or as `OrgService::authorize` with `Read`.
    pub async fn run(
        &self,
        principal: &Principal,
        org: OrgId,
        id: Uuid,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        self.orgs.authorize(principal, org, Action::Read).await?;
        let run = self
            .ports
            .runs
            .find(org, id)
            .await?
            .ok_or(Error::NotFound { entity: "sync run" })?;
        self.with_jobs(run, true).await
    }

    /// Queues a run's failed jobs again.
    ///
    /// # Errors
    /// As [`Self::run`] with `Write`.
    pub async fn retry(
        &self,
        principal: &Principal,
        org: OrgId,
        id: Uuid,
    ) -> Result<(SyncRun, Vec<SyncJob>)> {
        self.orgs.authorize(principal, org, Action::Write).await?;
        let run = self
            .ports
            .runs
            .find(org, id)
            .await?
            .ok_or(Error::NotFound { entity: "sync run" })?;
        for job in self.ports.runs.retry_failed(run.id, self.now()).await? {
            let _ = self.publish_job(job).await;
        }
        self.with_jobs(run, false).await
    }

    /// Performs one org's job (the worker's side of [`Self::start_sync`]).
    /// Delivery is at least once: a job already taken, finished or not yet
    /// due is left alone, and applying a plan twice changes nothing.
    ///
    /// # Errors
    /// Infrastructure failures while recording (the queue retries); a failed
    /// sync is recorded on the job and retried with backoff instead.
    pub async fn perform_job(&self, job_id: Uuid) -> Result<JobOutcome> {
        match self.claim_job(job_id).await? {
            Some(job) => self.run_claimed(job).await,
            None => Ok(JobOutcome::NotClaimed),
        }
    }

    /// Takes `job_id` for this worker: `None` when another holds it, its org
    /// has a job running, or it is not due. The claimed job's `attempts` is
    /// this worker's fencing token ([`Self::renew_lease`]).
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn claim_job(&self, job_id: Uuid) -> Result<Option<SyncJob>> {
        let now = self.now();
        self.ports
            .runs
            .claim(job_id, now, now + self.ports.jobs.lease)
            .await
    }

    /// Runs a job this worker claimed; its outcome is recorded only while
    /// the claim still holds the lease.
    ///
    /// # Errors
    /// As [`Self::perform_job`].
    pub async fn run_claimed(&self, job: SyncJob) -> Result<JobOutcome> {
        let outcome = self
            .reconcile(job.org_id, job.scope, Actor::Sync { job_id: job.id })
            .await;
        let now = self.now();
        let result = match outcome {
            Ok(changes) => {
                self.ports
                    .runs
                    .complete(
                        job.id,
                        job.attempts,
                        changes.counts(),
                        Some(report(&changes)),
                        now,
                    )
                    .await?;
                if !changes.is_empty() {
                    self.orgs
                        .audit_as(
                            Actor::Sync { job_id: job.id },
                            job.org_id,
                            "members.synced",
                            ("sync_job", job.id.to_string()),
                            None,
                            Some(serde_json::json!({ "counts": changes.counts() })),
                        )
                        .await?;
                }
                JobOutcome::Done
            }
            Err(e) => {
                let policy = &self.ports.jobs;
                let retry_at = (job.attempts < policy.max_attempts).then(|| {
                    let random = f64::from(Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
                    now + retry_delay(
                        job.attempts,
                        policy.base_backoff,
                        policy.max_backoff,
                        random,
                    )
                });
                // Tenants see a stable sentence; the cause goes back to the
                // caller for the operator's log.
                self.ports
                    .runs
                    .fail(job.id, job.attempts, &e.public_summary(), retry_at, now)
                    .await?;
                JobOutcome::Failed {
                    org: job.org_id,
                    cause: e,
                }
            }
        };
        self.after_writing(job.org_id, true).await;
        Ok(result)
    }

    /// How long a silent worker keeps a job; workers renew well within it.
    pub fn lease(&self) -> std::time::Duration {
        self.ports.jobs.lease
    }

    /// Renews the lease of the attempt of `job_id` that this worker runs (the
    /// job's current attempt when it claimed it); `false` once lost.
    ///
    /// # Errors
    /// Only infrastructure failures.
    pub async fn renew_lease(&self, job_id: Uuid, attempt: u32) -> Result<bool> {
        let now = self.now();
        self.ports
            .runs
            .heartbeat(job_id, attempt, now, now + self.ports.jobs.lease)
            .await
    }

    /// Keeps the queue honest against PostgreSQL: puts back jobs whose worker
    /// died, re-publishes due jobs the queue lost (a Redis flush or restart)
    /// or that wait out a retry, and re-nudges directories with unapplied
    /// changes. Every worker runs it periodically; running it twice is harmless.
    ///
    /// # Errors
    /// Infrastructure failures.
    pub async fn sweep(&self) -> Result<()> {
        let now = self.now();
        let policy = &self.ports.jobs;
        self.ports
            .runs
            .reclaim_stale(now - policy.lease, now)
            .await?;
        for job in self
            .ports
            .runs
            .due_for_publish(now, now - policy.lease)
            .await?
        {
            self.publish_job(job).await?;
        }
        for conn in self.ports.connections.lagging().await? {
            self.notify_directory_changed(conn).await?;
        }
        self.ports
            .members
            .purge_tombstones(now - self.ports.relink.window)
            .await?;
        Ok(())
    }

    /// Reconciles one org fully and applies the result through the deletion gate.
    async fn reconcile(&self, org: OrgId, scope: SyncScope, actor: Actor) -> Result<ChangeSet> {
        let org = self.ports.orgs.find(org).await?.ok_or(Error::NotFound {
            entity: "organization",
        })?;
        let settings = self.ports.members.settings(org.id).await?;
        let mut attempt = 1;
        let (changes, position) = loop {
            let (changes, position, current) = self
                .plan_full(&org, org.provisioning_mode, &settings)
                .await?;
            let changes = restrict(changes, scope);
            match self
                .apply_gated(
                    org.id,
                    changes,
                    &current,
                    HeldSource::Reconcile,
                    actor.clone(),
                )
                .await
            {
                // Members changed while this plan was made (an incremental
                // change, an admin): plan again from what is there now.
                Err(Error::PreconditionFailed(_)) if attempt < REPLANS => attempt += 1,
                other => break (other?, position),
            }
        };
        if let (Some((conn, seq)), SyncScope::Both) = (position, scope) {
            self.ports
                .members
                .set_cursor(org.id, conn, seq, self.now())
                .await?;
        }
        Ok(changes)
    }

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
    async fn catch_up(&self, org_id: OrgId, conn: ConnectionId) -> Result<()> {
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

    async fn lock_org(&self, org: OrgId, holder: &str, wait: std::time::Duration) -> Result<bool> {
        let now = self.now();
        // Longer than a job's lease: these holders do not heartbeat, and
        // give the lease up explicitly; expiry only matters after a crash.
        let lease = self
            .ports
            .jobs
            .lease
            .max(std::time::Duration::from_secs(60));
        self.ports
            .runs
            .lock_org(org, holder, now, now + lease, wait)
            .await
    }

    /// What a writer does once it has let `org` go: start the sync jobs it
    /// kept waiting and, unless it was the incremental path itself, nudge the
    /// directory so changes that arrived meanwhile are applied.
    async fn after_writing(&self, org: OrgId, nudge: bool) {
        if let Ok(waiting) = self.ports.runs.queued_for_org(org).await {
            for job in waiting {
                let _ = self.publish_job(job).await;
            }
        }
        if nudge {
            let _ = self.nudge_if_behind(org).await;
        }
    }

    /// Nudges the directory `org` draws on when it has events the org has
    /// not applied (changes that arrived while the org was held).
    async fn nudge_if_behind(&self, org: OrgId) -> Result<()> {
        let Some(conn) = self.ports.connections.drawing_connection(org).await? else {
            return Ok(());
        };
        if let Some(applied) = self.ports.members.cursor(org, conn).await? {
            if self.latest_seq(conn).await? > applied {
                self.notify_directory_changed(conn).await?;
            }
        }
        Ok(())
    }

    /// Runs `work` (an admin's change to `org`'s members) as the org's only
    /// writer.
    ///
    /// # Errors
    /// `Conflict(SyncInProgress)` while another writer has the org; or `work`'s.
    pub(super) async fn as_writer<T>(
        &self,
        org: OrgId,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let holder = format!("admin:{}", Uuid::new_v4());
        if !self.lock_org(org, &holder, ADMIN_WAIT).await? {
            return Err(Error::conflict(
                ConflictCode::SyncInProgress,
                "a sync is changing this organization's members right now; retry in a few seconds",
            ));
        }
        let result = work.await;
        let released = self.ports.runs.unlock_org(org, &holder).await;
        self.after_writing(org, true).await;
        let value = result?;
        released?;
        Ok(value)
    }

    async fn catch_up_locked(&self, org_id: OrgId, conn: ConnectionId, holder: &str) -> Result<()> {
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
            let events = self
                .ports
                .directory
                .events(conn, cursor, EVENT_BATCH)
                .await?;
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
                .directory
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
            let (changes, _, _) = self
                .plan_against(&org, org.provisioning_mode, &settings, shift.to, true)
                .await?;
            orgs.push((shift, Preview::of(changes, &change)));
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
        for (shift, previewed) in &plan.orgs {
            let Some(to) = shift.to else {
                continue;
            };
            let org = shift.org_id;
            let result = self
                .as_writer(org, self.adopt_source(principal, plan, shift, previewed))
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

    async fn adopt_source(
        &self,
        principal: &Principal,
        plan: &SourcePlan,
        shift: &SourceShift,
        previewed: &Preview,
    ) -> Result<Option<SyncRun>> {
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
        let (changes, position, current) = self
            .plan_against(&org, org.provisioning_mode, &settings, shift.to, true)
            .await?;
        let preview = Preview::of(changes, &plan.change);
        let drawn = self.ports.connections.drawing_connection(org.id).await?;
        if preview.confirmation != previewed.confirmation || drawn != shift.to {
            self.reconcile(org.id, SyncScope::Both, Actor::of(principal))
                .await?;
            return Ok(None);
        }
        match self
            .apply_plan(
                org.id,
                principal,
                SyncKind::SourceChange,
                (&preview.changes, &current, position),
                started,
            )
            .await
        {
            Err(Error::PreconditionFailed(_)) => {
                self.reconcile(org.id, SyncScope::Both, Actor::of(principal))
                    .await?;
                Ok(None)
            }
            other => other.map(Some),
        }
    }
}

fn scim_actor(conn: ConnectionId) -> Actor {
    Actor::Scim {
        connection_id: conn.0,
    }
}

fn require_confirmation(org: OrgId, preview: &Preview, confirm: Option<&str>) -> Result<()> {
    if !preview.is_destructive() || confirm == Some(preview.confirmation.as_str()) {
        return Ok(());
    }
    let counts = preview.counts;
    Err(Error::ConfirmationRequired(Box::new(ConfirmationNeeded {
        detail: format!(
            "this change removes {} and suspends {} member(s); preview it and confirm with \"confirm\": \"{}\"",
            counts.removals, counts.suspensions, preview.confirmation
        ),
        confirmation: preview.confirmation.clone(),
        effects: vec![OrgEffect::of(org, None, preview)],
    })))
}

/// A run's report: the counts and the per-member entries (capped).
fn report(changes: &ChangeSet) -> serde_json::Value {
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
