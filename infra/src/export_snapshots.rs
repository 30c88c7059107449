//! Exports' snapshots: on PostgreSQL read-only REPEATABLE READ
//! transactions sharing one snapshot (`pg_export_snapshot`), so every page
//! of an export sees the moment it began.

use std::time::Duration;

use orgsync_domain::directory::{ConnectionId, ResourceId};
use orgsync_domain::membership::Member;
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::{ExportSnapshot, ExportSnapshots};
use orgsync_domain::sync::MemberFilter;
use orgsync_domain::{Error, Result};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    IsolationLevel, Statement, TransactionTrait,
};

use crate::db::db_err;
use crate::Database;

/// The longest PostgreSQL lets an export's transaction sit idle (a client
/// that stopped reading) before it ends it. An open snapshot holds back
/// vacuum for the whole cluster, every tenant's tables included.
const IDLE_SNAPSHOT: Duration = Duration::from_secs(60);

pub struct SqlExportSnapshots {
    db: Database,
    /// How long a snapshot may sit idle: a minute, or less when no export
    /// may read that long at all.
    idle: Duration,
}

impl SqlExportSnapshots {
    /// Snapshots for exports that read for at most `longest`.
    pub fn new(db: Database, longest: Duration) -> Self {
        Self {
            db,
            idle: longest.min(IDLE_SNAPSHOT),
        }
    }
}

/// The reads of an export: its members on one connection, their groups on
/// another, so that each page's groups are looked up while the next page
/// is read (as the pool would); on PostgreSQL two transactions on one
/// snapshot, on SQLite both the pool.
struct Reads<C> {
    members: C,
    groups: C,
}

#[async_trait::async_trait]
impl ExportSnapshots for SqlExportSnapshots {
    async fn open(&self) -> Result<Box<dyn ExportSnapshot>> {
        let pool = self.db.connection();
        if self.db.backend() != DbBackend::Postgres {
            // SQLite's one connection serves every request: held for an
            // export, it would stop them all until the download ends.
            return Ok(Box::new(Reads::<DatabaseConnection> {
                members: pool.clone(),
                groups: pool.clone(),
            }));
        }
        let members = snapshot_transaction(pool, self.idle).await?;
        let exported = members
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_export_snapshot() AS id",
            ))
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("pg_export_snapshot answered nothing")))?
            .try_get::<String>("", "id")
            .map_err(db_err)?;
        let groups = snapshot_transaction(pool, self.idle).await?;
        // The id comes from PostgreSQL itself (hex digits and dashes), and
        // SET takes no bind parameters.
        groups
            .execute_unprepared(&format!("SET TRANSACTION SNAPSHOT '{exported}'"))
            .await
            .map_err(db_err)?;
        Ok(Box::new(Reads { members, groups }))
    }
}

/// A read-only REPEATABLE READ transaction that PostgreSQL ends after
/// `idle` idle.
async fn snapshot_transaction(
    pool: &DatabaseConnection,
    idle: Duration,
) -> Result<DatabaseTransaction> {
    let txn = pool
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await
        .map_err(db_err)?;
    txn.execute_unprepared(&format!(
        "SET LOCAL idle_in_transaction_session_timeout = {}",
        idle.as_millis()
    ))
    .await
    .map_err(db_err)?;
    Ok(txn)
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Send + Sync> ExportSnapshot for Reads<C> {
    async fn members(
        &self,
        org: OrgId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<Member>> {
        crate::membership_repository::list_members(&self.members, org, filter, page).await
    }

    async fn memberships_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(ResourceId, ResourceId)>> {
        crate::directory::memberships_of(&self.groups, conn, users).await
    }

    async fn group_names(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
    ) -> Result<Vec<(ResourceId, String)>> {
        crate::directory::group_names(&self.groups, conn, groups).await
    }
}
