//! Deletion thresholds, held removals, and the hourly counts of what
//! background syncs removed that the gate's window reads.

use orgsync_domain::org::OrgId;
use orgsync_domain::ports::DeletionProtection;
use orgsync_domain::sync::{DeletionThreshold, HeldRemovals, PROTECTION_WINDOW};
use orgsync_domain::{Error, Result};
use sea_orm::{ConnectionTrait, TransactionTrait};
use time::OffsetDateTime;

use crate::db::db_err;
use crate::Database;

pub struct SqlDeletionProtection {
    db: Database,
}

impl SqlDeletionProtection {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl DeletionProtection for SqlDeletionProtection {
    async fn threshold(&self, org: OrgId) -> Result<DeletionThreshold> {
        let sql = "SELECT max_removals FROM org_deletion_protection WHERE org_id = $1";
        let max_removals: Option<i32> = self.db.value(sql, vec![org.0.into()]).await?;
        Ok(
            max_removals.map_or_else(DeletionThreshold::default, |max| DeletionThreshold {
                max_removals: u32::try_from(max).unwrap_or(0),
            }),
        )
    }

    async fn set_threshold(
        &self,
        org: OrgId,
        threshold: DeletionThreshold,
        now: OffsetDateTime,
    ) -> Result<()> {
        let max = i32::try_from(threshold.max_removals).unwrap_or(i32::MAX);
        self.db
            .connection()
            .execute(self.db.stmt(
                "INSERT INTO org_deletion_protection (org_id, max_removals, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (org_id) DO UPDATE SET max_removals = excluded.max_removals, updated_at = excluded.updated_at",
                vec![org.0.into(), max.into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn held(&self, org: OrgId) -> Result<Option<HeldRemovals>> {
        let sql = "SELECT plan FROM held_removals WHERE org_id = $1";
        let plan: Option<String> = self.db.value(sql, vec![org.0.into()]).await?;
        plan.map(|plan| {
            serde_json::from_str(&plan).map_err(|e| {
                Error::Internal(anyhow::anyhow!("org {org}: corrupt held removals: {e}"))
            })
        })
        .transpose()
    }

    async fn hold(&self, held: &HeldRemovals) -> Result<()> {
        let plan = serde_json::to_string(held).map_err(|e| Error::Internal(e.into()))?;
        self.db
            .connection()
            .execute(self.db.stmt(
                "INSERT INTO held_removals (org_id, confirmation, plan, held_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (org_id) DO UPDATE SET confirmation = excluded.confirmation, \
                 plan = excluded.plan, held_at = excluded.held_at",
                vec![
                    held.org_id.0.into(),
                    held.confirmation.clone().into(),
                    plan.into(),
                    held.held_at.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn release(&self, org: OrgId) -> Result<bool> {
        let sql = "DELETE FROM held_removals WHERE org_id = $1";
        Ok(self.db.execute(sql, vec![org.0.into()]).await? > 0)
    }

    async fn removed_since(&self, org: OrgId, since: OffsetDateTime) -> Result<u64> {
        let sql = "SELECT CAST(COALESCE(SUM(removed), 0) AS BIGINT) FROM org_removal_counts \
                   WHERE org_id = $1 AND hour >= $2";
        let removed: Option<i64> = self
            .db
            .value(sql, vec![org.0.into(), hour_of(since).into()])
            .await?;
        Ok(removed.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    async fn count_removed(&self, org: OrgId, removed: u64, at: OffsetDateTime) -> Result<()> {
        let removed = i64::try_from(removed).unwrap_or(i64::MAX);
        let txn = self.db.connection().begin().await.map_err(db_err)?;
        txn.execute(self.db.stmt(
            "INSERT INTO org_removal_counts (org_id, hour, removed) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, hour) DO UPDATE SET removed = org_removal_counts.removed + excluded.removed",
            vec![org.0.into(), hour_of(at).into(), removed.into()],
        ))
        .await
        .map_err(db_err)?;
        txn.execute(self.db.stmt(
            "DELETE FROM org_removal_counts WHERE org_id = $1 AND hour < $2",
            vec![org.0.into(), hour_of(at - PROTECTION_WINDOW).into()],
        ))
        .await
        .map_err(db_err)?;
        txn.commit().await.map_err(db_err)
    }

    async fn reset_removed(&self, org: OrgId) -> Result<()> {
        let sql = "DELETE FROM org_removal_counts WHERE org_id = $1";
        self.db.execute(sql, vec![org.0.into()]).await.map(drop)
    }
}

/// The hour `at` falls in: counts are kept by the hour, and a window read
/// from the start of its first hour, so it reaches back up to an hour more
/// than asked (holding more, never less).
fn hour_of(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    at.replace_time(time::Time::from_hms(at.hour(), 0, 0).unwrap_or(time::Time::MIDNIGHT))
}
