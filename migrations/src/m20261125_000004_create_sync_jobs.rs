//! Sync jobs: one per org per sync, the unit workers take from the queue.
//! A run (what an admin asked) links to its jobs; a job can serve several
//! runs, because a request for an org whose job is still queued joins it.
//! PostgreSQL holds the truth: Redis only carries job ids.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE TABLE sync_jobs (
        id UUID NOT NULL PRIMARY KEY,
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        scope VARCHAR(16) NOT NULL,
        status VARCHAR(16) NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        added BIGINT NOT NULL DEFAULT 0,
        updated BIGINT NOT NULL DEFAULT 0,
        removed BIGINT NOT NULL DEFAULT 0,
        report TEXT NULL,
        error TEXT NULL,
        not_before TIMESTAMP WITH TIME ZONE NOT NULL,
        heartbeat_at TIMESTAMP WITH TIME ZONE NULL,
        published_at TIMESTAMP WITH TIME ZONE NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        started_at TIMESTAMP WITH TIME ZONE NULL,
        finished_at TIMESTAMP WITH TIME ZONE NULL
    )",
    // At most one queued job per org: a second request joins it.
    "CREATE UNIQUE INDEX sync_jobs_one_queued_per_org ON sync_jobs (org_id) WHERE status = 'queued'",
    "CREATE INDEX sync_jobs_status_idx ON sync_jobs (status, not_before)",
    "CREATE TABLE sync_run_jobs (
        run_id UUID NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
        job_id UUID NOT NULL REFERENCES sync_jobs (id) ON DELETE CASCADE,
        PRIMARY KEY (run_id, job_id)
    )",
    "CREATE INDEX sync_run_jobs_job_idx ON sync_run_jobs (job_id)",
];

const DOWN: &[&str] = &["DROP TABLE sync_run_jobs", "DROP TABLE sync_jobs"];

sql_migration!(UP, DOWN);
