//! Deriving members from the directory: full reconciles (manual syncs, mode
//! and mapping changes, each previewed first when it removes people) and
//! incremental application of the directory's change log. By concern:
//! `planning` (plans, and how a confirmed one lands), `settings` (mode and
//! mappings), `runs` (manual syncs and their cascade), `worker` (jobs and the
//! sweeper), `incremental` (change events), `writer` (one writer per org),
//! `source` (orgs moving to another directory), `deletion` (an org's
//! members removed, confirmed, before the org goes).

use std::collections::{BTreeSet, HashMap, HashSet};

use futures::TryStreamExt;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::Actor;
use crate::auth::{Action, Principal};
use crate::directory::{ConnectionId, EntityKind, ResourceId};
use crate::error::ConflictCode;
use crate::membership::{
    plan_user, ChangeCounts, ChangeSet, Member, MemberId, OrgPolicy, Planner, ResourceKeys,
};
use crate::org::{OrgId, OrgKind, Organization, ProvisioningMode};
use crate::page::{Page, PageRequest};
use crate::ports::{
    ChangeFeed, Clock, ConnectionRepository, DeletionProtection, DirectoryRepository, EventLog,
    JobQueue, MemberWrites, MembershipRepository, OrgRepository, SnapshotScope, SyncRunRepository,
    Task,
};
use crate::service::OrgService;
use crate::sync::{
    restrict, retry_delay, run_status, ConfirmationNeeded, HeldSource, JobId, MembershipSettings,
    MovedOrg, OrgEffect, Preview, PreviewPage, RelinkPolicy, RunId, RunStatus, SourceChange,
    SourcePlan, SyncJob, SyncKind, SyncRun, SyncScope,
};
use crate::{Error, Result};

mod budget;
mod deletion;
mod incremental;
mod planning;
mod runs;
mod settings;
mod source;
mod worker;
mod writer;

pub use budget::{PlanBudget, PlanPermit, Waiter};
pub use source::SourceApplied;

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
    /// The SCIM store's reads (the directory views).
    pub directory: Arc<dyn DirectoryRepository>,
    /// The change log and snapshots sync plans from.
    pub feed: Arc<dyn ChangeFeed>,
    pub members: Arc<dyn MembershipRepository>,
    pub runs: Arc<dyn SyncRunRepository>,
    pub protection: Arc<dyn DeletionProtection>,
    /// Events of changes not written with members (runs, holds, connections).
    pub events: Arc<dyn EventLog>,
    pub queue: Arc<dyn JobQueue>,
    pub clock: Arc<dyn Clock>,
    pub jobs: JobPolicy,
    pub relink: RelinkPolicy,
    /// Bounds the memory full plans hold together (shared by every plan of
    /// the process: jobs, previews and admins' changes).
    pub plan_budget: PlanBudget,
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

    /// Publishes an event of a change already committed (like the audit
    /// entry beside it, a failure to record it is reported, not undone).
    pub(crate) async fn publish(
        &self,
        org: OrgId,
        event_type: crate::events::EventType,
        data: serde_json::Value,
    ) -> Result<()> {
        let event = crate::events::Event::new(org, event_type, data, self.now());
        self.ports.events.append(&[event]).await
    }

    fn now(&self) -> OffsetDateTime {
        self.ports.clock.now()
    }
}
