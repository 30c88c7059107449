//! Members and the settings that decide them, on PostgreSQL or SQLite.
//! A planned change set is applied in one transaction with multi-row
//! statements (500 rows each): never one round trip per member.
//!
//! This file is the [`MembershipRepository`] port, each operation pointing
//! to where it lives:
//! - `rows`: the member row, and the batched INSERT and DELETE of members;
//! - `queries`: counts, whole-org reads, pages and look-ups;
//! - `members`: one member written by hand (insert, update, delete);
//! - `apply`: a planned change set, checked against the versions it was planned on;
//! - `audit`: the audit entries of a change set, in its transaction;
//! - `tombstones`: removed members kept for relinking, and their purge;
//! - `settings`: membership settings, roles, seat tiers, attributes, cursors.

use orgsync_domain::audit::AuditEntry;
use orgsync_domain::directory::{ConnectionId, ResourceId};
use orgsync_domain::membership::{AttributeDefinition, Member, MemberId, Role, SeatTier};
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::{MemberWrites, MembershipRepository};
use orgsync_domain::sync::{CustomRole, MemberFilter, MembershipSettings, RelinkRule};
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, FromQueryResult, Value};
use time::OffsetDateTime;

use crate::db::db_err;
use crate::Database;

mod apply;
mod audit;
mod members;
mod queries;
pub(crate) mod rows;
mod settings;
mod tombstones;

pub(crate) use queries::list as list_members;

/// Rows per multi-row statement: well under both engines' bound-parameter limits.
const BATCH: usize = 500;

pub struct SqlMembershipRepository {
    db: Database,
    /// Transactions of bulk writes (shares of a large change set) open at
    /// once in this process, whatever the number of jobs writing: each holds
    /// a pooled connection for its whole length, and the pool also serves
    /// every SCIM and admin request.
    bulk_transactions: tokio::sync::Semaphore,
}

/// [`SqlMembershipRepository::bulk_transactions`] on PostgreSQL: with the
/// shipped pool of ten, seven connections stay for everything else. SQLite
/// has one writer (and one connection), so one share at a time.
const BULK_TRANSACTIONS_POSTGRES: usize = 3;

impl SqlMembershipRepository {
    pub fn new(db: Database) -> Self {
        let permits = match db.backend() {
            sea_orm::DbBackend::Postgres => BULK_TRANSACTIONS_POSTGRES,
            _ => 1,
        };
        Self {
            db,
            bulk_transactions: tokio::sync::Semaphore::new(permits),
        }
    }

    async fn fetch_all<R: FromQueryResult + Send>(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Vec<R>> {
        R::find_by_statement(self.db.stmt(sql, values))
            .all(self.db.connection())
            .await
            .map_err(db_err)
    }

    async fn fetch_one<R: FromQueryResult + Send>(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Option<R>> {
        R::find_by_statement(self.db.stmt(sql, values))
            .one(self.db.connection())
            .await
            .map_err(db_err)
    }

    async fn execute(&self, sql: &str, values: Vec<Value>) -> Result<()> {
        self.db
            .connection()
            .execute(self.db.stmt(sql, values))
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl MembershipRepository for SqlMembershipRepository {
    async fn count_members(&self, org: OrgId) -> Result<u64> {
        queries::count(self, org).await
    }

    async fn all_members(&self, org: OrgId) -> Result<Vec<Member>> {
        queries::all(self, org).await
    }

    async fn list_members(
        &self,
        org: OrgId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<Member>> {
        queries::list(self.db.connection(), org, filter, page).await
    }

    async fn find_member(&self, org: OrgId, id: MemberId) -> Result<Option<Member>> {
        queries::find(self, org, id).await
    }

    async fn find_by_directory_users(
        &self,
        org: OrgId,
        users: &[ResourceId],
    ) -> Result<Vec<Member>> {
        queries::by_directory_users(self, org, users).await
    }

    async fn insert_member(&self, member: &Member, audit: &AuditEntry) -> Result<()> {
        members::insert(self, member, audit).await
    }

    async fn update_member(
        &self,
        before: &Member,
        after: &Member,
        audit: &AuditEntry,
    ) -> Result<()> {
        members::update(self, before, after, audit).await
    }

    async fn delete_member(&self, member: &Member, audit: &AuditEntry) -> Result<()> {
        members::delete(self, member, audit).await
    }

    async fn apply(&self, org: OrgId, writes: &MemberWrites<'_>) -> Result<()> {
        apply::apply(self, org, writes).await
    }

    async fn relinkable(
        &self,
        org: OrgId,
        conn: ConnectionId,
        users: &[ResourceId],
        rule: RelinkRule,
    ) -> Result<Vec<(ResourceId, Member)>> {
        tombstones::relinkable(self, org, conn, users, rule).await
    }

    async fn purge_tombstones(&self, before: OffsetDateTime) -> Result<()> {
        tombstones::purge(self, before).await
    }

    async fn settings(&self, org: OrgId) -> Result<MembershipSettings> {
        settings::settings(self, org).await
    }

    async fn save_settings(
        &self,
        org: OrgId,
        settings: &MembershipSettings,
        now: OffsetDateTime,
    ) -> Result<()> {
        settings::save_settings(self, org, settings, now).await
    }

    async fn roles(&self, org: OrgId) -> Result<Vec<CustomRole>> {
        settings::roles(self, org).await
    }

    async fn jit_default_role(&self, org: OrgId) -> Result<Option<Role>> {
        settings::jit_default_role(self, org).await
    }

    async fn set_jit_default_role(&self, org: OrgId, role: Option<&Role>) -> Result<()> {
        settings::set_jit_default_role(self, org, role).await
    }

    async fn save_roles(&self, org: OrgId, roles: &[CustomRole]) -> Result<()> {
        settings::save_roles(self, org, roles).await
    }

    async fn seat_tiers(&self, org: OrgId) -> Result<Vec<SeatTier>> {
        settings::seat_tiers(self, org).await
    }

    async fn save_seat_tiers(&self, org: OrgId, tiers: &[SeatTier]) -> Result<()> {
        settings::save_seat_tiers(self, org, tiers).await
    }

    async fn attributes(&self, conn: ConnectionId) -> Result<Vec<AttributeDefinition>> {
        settings::attributes(self, conn).await
    }

    async fn save_attributes(
        &self,
        conn: ConnectionId,
        definitions: &[AttributeDefinition],
        now: OffsetDateTime,
    ) -> Result<()> {
        settings::save_attributes(self, conn, definitions, now).await
    }

    async fn cursor(&self, org: OrgId, conn: ConnectionId) -> Result<Option<i64>> {
        settings::cursor(self, org, conn).await
    }

    async fn set_cursor(
        &self,
        org: OrgId,
        conn: ConnectionId,
        applied_seq: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        settings::set_cursor(self, org, conn, applied_seq, now).await
    }
}
