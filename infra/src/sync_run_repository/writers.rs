//! Per-org writer leases: one writer (a sync job's attempt, an incremental
//! catch-up, an admin's change) changes an org's members at a time. A lease
//! expires on its own, so a writer that dies does not hold its org forever.

use orgsync_domain::org::OrgId;
use orgsync_domain::ports::job_writer;
use orgsync_domain::sync::JobId;
use orgsync_domain::Result;
use sea_orm::{ConnectionTrait, Statement};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SqlSyncRunRepository;
use crate::db::db_err;

pub(super) async fn lock_org(
    repo: &SqlSyncRunRepository,
    org: OrgId,
    holder: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
    wait: std::time::Duration,
) -> Result<bool> {
    let started = std::time::Instant::now();
    loop {
        let waited = started.elapsed();
        if take_lease(
            repo.db.connection(),
            org,
            holder,
            now + waited,
            until + waited,
        )
        .await?
        {
            return Ok(true);
        }
        if waited >= wait {
            return Ok(false);
        }
        // Writers hold an org for milliseconds to seconds; a short poll
        // keeps an admin's request from waiting much longer than needed.
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

pub(super) async fn unlock_org(
    repo: &SqlSyncRunRepository,
    org: OrgId,
    holder: &str,
) -> Result<()> {
    repo.execute(
        "DELETE FROM org_writers WHERE org_id = $1 AND holder = $2",
        vec![org.0.into(), holder.to_owned().into()],
    )
    .await?;
    Ok(())
}

pub(super) async fn release_writer(
    repo: &SqlSyncRunRepository,
    job: Uuid,
    attempt: u32,
) -> Result<()> {
    repo.execute(
        "DELETE FROM org_writers WHERE holder = $1",
        vec![job_writer(JobId(job), attempt).into()],
    )
    .await?;
    Ok(())
}

/// Takes or extends `org`'s writer lease for `holder`; concurrent takers
/// serialise on the org's row, so exactly one wins.
pub(super) async fn take_lease(
    db: &impl ConnectionTrait,
    org: OrgId,
    holder: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<bool> {
    let result = db
        .execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO org_writers (org_id, holder, expires_at) VALUES ($1, $2, $4) \
             ON CONFLICT (org_id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE org_writers.holder = excluded.holder OR org_writers.expires_at <= $3",
            vec![
                org.0.into(),
                holder.to_owned().into(),
                now.into(),
                until.into(),
            ],
        ))
        .await
        .map_err(db_err)?;
    Ok(result.rows_affected() == 1)
}
