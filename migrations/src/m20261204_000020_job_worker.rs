//! Which worker process ran a job's latest attempt (`host:pid`), so an
//! operator can tell which process to look at, and a benchmark can prove
//! that a separate `orgsync worker` took part.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &["ALTER TABLE sync_jobs ADD COLUMN worker TEXT"];

const DOWN: &[&str] = &["ALTER TABLE sync_jobs DROP COLUMN worker"];

sql_migration!(UP, DOWN);
