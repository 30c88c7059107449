use crate::audit::{Actor, AuditEntry};
use time::OffsetDateTime;

use crate::directory::{ConnectionId, ResourceId};
use crate::membership::{AttributeDefinition, Member, MemberId, Role, SeatTier};
use crate::org::OrgId;
use crate::page::{Page, PageRequest};
use crate::sync::{CustomRole, MemberFilter, MembershipSettings, RelinkRule};
use crate::Result;

/// Stores members and the settings that decide them. Every method is scoped
/// by the org (or, for attribute definitions, the connection).
#[async_trait::async_trait]
pub trait MembershipRepository: Send + Sync {
    /// Every member of the org, for planning.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn all_members(&self, org: OrgId) -> Result<Vec<Member>>;

    /// How many members `org` has.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn count_members(&self, org: OrgId) -> Result<u64>;

    /// # Errors
    /// Only infrastructure failures.
    async fn list_members(
        &self,
        org: OrgId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<Member>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn find_member(&self, org: OrgId, id: MemberId) -> Result<Option<Member>>;

    /// The members linked to any of `users`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn find_by_directory_users(
        &self,
        org: OrgId,
        users: &[crate::directory::ResourceId],
    ) -> Result<Vec<Member>>;

    /// Adds a member, with `audit` and its `member.created` event, in one
    /// transaction.
    ///
    /// # Errors
    /// MUST return `Conflict(AlreadyExists)` when the org has a member with this email.
    async fn insert_member(&self, member: &Member, audit: &AuditEntry) -> Result<()>;

    /// Saves email, role, tier, limit, name, metadata and status of `after` as
    /// given, with `audit` and its event (the fields that changed since
    /// `before`), in one transaction.
    ///
    /// # Errors
    /// MUST return `NotFound` when the member no longer exists.
    async fn update_member(
        &self,
        before: &Member,
        after: &Member,
        audit: &AuditEntry,
    ) -> Result<()>;

    /// Removes `member`, with `audit` and its `member.removed` event, in one
    /// transaction.
    ///
    /// # Errors
    /// MUST return `NotFound` when the member does not exist.
    async fn delete_member(&self, member: &Member, audit: &AuditEntry) -> Result<()>;

    /// Applies a planned change set in set-based batches, together with one
    /// audit entry and one event per member written (`member.created`,
    /// `member.updated`, `member.suspended`, `member.reactivated`,
    /// `member.removed`, by `writes.actor`, with the member before and
    /// after). Each updated or removed member's write is conditional on the
    /// version (`updated_at`) it was planned from, so a plan made before
    /// another change can never overwrite it. A small change set is one
    /// transaction; a large one may be several (all removals, then all
    /// updates, then all adds; the transactions of one phase possibly at
    /// once), each whole with its audit entries.
    ///
    /// # Errors
    /// MUST return `PreconditionFailed` when a member changed, disappeared or
    /// appeared since the plan, applying nothing of the transaction that
    /// found it or of any phase after it; other transactions of its phase
    /// are each applied whole or not at all. The caller re-plans (what was
    /// applied is then planned as done). Otherwise only infrastructure
    /// failures.
    async fn apply(&self, org: OrgId, writes: &MemberWrites<'_>) -> Result<()>;

    /// For each of `users` (directory users about to become members) whose
    /// person's member a sync removed from `org` after `rule.since`: the
    /// member as it was removed. The person is recognised by the externalId
    /// of a user of the same directory deleted since then, or (with
    /// `rule.by_email`) by the member's email when its user is no longer in
    /// this directory; externalId matches win. Relinking gives that member
    /// back instead of a new one.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn relinkable(
        &self,
        org: OrgId,
        conn: ConnectionId,
        users: &[ResourceId],
        rule: RelinkRule,
    ) -> Result<Vec<(ResourceId, Member)>>;

    /// Forgets deleted users and removed members older than `before`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn purge_tombstones(&self, before: OffsetDateTime) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures; an org never configured gets the defaults.
    async fn settings(&self, org: OrgId) -> Result<MembershipSettings>;

    /// # Errors
    /// Only infrastructure failures.
    async fn save_settings(
        &self,
        org: OrgId,
        settings: &MembershipSettings,
        now: OffsetDateTime,
    ) -> Result<()>;

    /// The role members created on first sign-in get; `None`: `user`.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn jit_default_role(&self, org: OrgId) -> Result<Option<Role>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn set_jit_default_role(&self, org: OrgId, role: Option<&Role>) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures.
    async fn roles(&self, org: OrgId) -> Result<Vec<CustomRole>>;

    /// Replaces the org's custom roles.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn save_roles(&self, org: OrgId, roles: &[CustomRole]) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures.
    async fn seat_tiers(&self, org: OrgId) -> Result<Vec<SeatTier>>;

    /// Replaces the org's seat tiers (in display order).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn save_seat_tiers(&self, org: OrgId, tiers: &[SeatTier]) -> Result<()>;

    /// # Errors
    /// Only infrastructure failures.
    async fn attributes(&self, conn: ConnectionId) -> Result<Vec<AttributeDefinition>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn save_attributes(
        &self,
        conn: ConnectionId,
        definitions: &[AttributeDefinition],
        now: OffsetDateTime,
    ) -> Result<()>;

    /// How far the org has applied `conn`'s change log; `None` when it has
    /// never reconciled against `conn` (it draws on it for the first time,
    /// or again after drawing on another directory).
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn cursor(&self, org: OrgId, conn: ConnectionId) -> Result<Option<i64>>;

    /// # Errors
    /// Only infrastructure failures.
    async fn set_cursor(
        &self,
        org: OrgId,
        conn: ConnectionId,
        applied_seq: i64,
        now: OffsetDateTime,
    ) -> Result<()>;
}

/// A planned change set as rows to write, and who writes them.
#[derive(Debug)]
pub struct MemberWrites<'a> {
    pub added: Vec<&'a Member>,
    /// `(after, before)`: the member as it will be, and as the plan read it.
    pub updated: Vec<(Member, &'a Member)>,
    /// The members as the plan read them.
    pub removed: Vec<&'a Member>,
    /// Added members that are removed members given back (same id), audited
    /// as `member.relinked`.
    pub relinked: Vec<MemberId>,
    pub actor: Actor,
    pub at: OffsetDateTime,
}
