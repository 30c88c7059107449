//! What background syncs removed or suspended in each org, by the hour, so
//! the deletion gate judges a removal with the others of the last day
//! rather than on its own (an IdP deprovisioning one user per request, or a
//! change applied in batches, adds up). Only the last day's rows are kept.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &["CREATE TABLE org_removal_counts (
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        hour TIMESTAMP WITH TIME ZONE NOT NULL,
        removed BIGINT NOT NULL,
        PRIMARY KEY (org_id, hour)
    )"];

const DOWN: &[&str] = &["DROP TABLE org_removal_counts"];

sql_migration!(UP, DOWN);
