//! Exports' snapshots: on PostgreSQL a read-only REPEATABLE READ
//! transaction, so every page of an export sees the moment it began.

use std::time::Duration;

use orgsync_domain::directory::{ConnectionId, ResourceId};
use orgsync_domain::membership::Member;
use orgsync_domain::org::OrgId;
use orgsync_domain::page::{Page, PageRequest};
use orgsync_domain::ports::{ExportSnapshot, ExportSnapshots};
use orgsync_domain::sync::MemberFilter;
use orgsync_domain::Result;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DbBackend, IsolationLevel, TransactionTrait,
};

use crate::db::db_err;
use crate::Database;

/// How long PostgreSQL lets an export's transaction sit idle (a client that
/// stopped reading) before it ends it. An open snapshot holds back vacuum
/// for the whole cluster, every tenant's tables included.
const IDLE_SNAPSHOT: Duration = Duration::from_secs(60);

pub struct SqlExportSnapshots {
    db: Database,
}

impl SqlExportSnapshots {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

/// The reads of an export, on a transaction (a snapshot) or, on SQLite, on
/// the pool.
struct Reads<C> {
    db: C,
}

#[async_trait::async_trait]
impl ExportSnapshots for SqlExportSnapshots {
    async fn open(&self) -> Result<Box<dyn ExportSnapshot>> {
        let pool = self.db.connection();
        if self.db.backend() != DbBackend::Postgres {
            // SQLite's one connection serves every request: held for an
            // export, it would stop them all until the download ends.
            return Ok(Box::new(Reads::<DatabaseConnection> { db: pool.clone() }));
        }
        let snapshot = pool
            .begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
            .map_err(db_err)?;
        snapshot
            .execute_unprepared(&format!(
                "SET LOCAL idle_in_transaction_session_timeout = {}",
                IDLE_SNAPSHOT.as_millis()
            ))
            .await
            .map_err(db_err)?;
        Ok(Box::new(Reads { db: snapshot }))
    }
}

#[async_trait::async_trait]
impl<C: ConnectionTrait + Send + Sync> ExportSnapshot for Reads<C> {
    async fn members(
        &self,
        org: OrgId,
        filter: &MemberFilter,
        page: PageRequest,
    ) -> Result<Page<Member>> {
        crate::membership_repository::list_members(&self.db, org, filter, page).await
    }

    async fn memberships_of(
        &self,
        conn: ConnectionId,
        users: &[ResourceId],
    ) -> Result<Vec<(ResourceId, ResourceId)>> {
        crate::directory::memberships_of(&self.db, conn, users).await
    }

    async fn group_names(
        &self,
        conn: ConnectionId,
        groups: &[ResourceId],
    ) -> Result<Vec<(ResourceId, String)>> {
        crate::directory::group_names(&self.db, conn, groups).await
    }
}
