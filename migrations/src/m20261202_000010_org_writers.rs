//! One writer per org: a lease on each org's members, held by a sync job's
//! attempt, an incremental catch-up or an admin change while it writes, so
//! full reconciles and incremental catch-up never interleave. A silent
//! holder loses it when it expires.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &["CREATE TABLE org_writers (
        org_id UUID PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
        holder TEXT NOT NULL,
        expires_at TIMESTAMP WITH TIME ZONE NOT NULL
    )"];

const DOWN: &[&str] = &["DROP TABLE org_writers"];

sql_migration!(UP, DOWN);
