//! Deletion protection: each org's threshold, and the removals a background
//! sync held for an admin to confirm or reject (one plan per org, as JSON:
//! it is read and replaced whole).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE TABLE org_deletion_protection (
        org_id UUID NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
        max_removals INTEGER NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE TABLE held_removals (
        org_id UUID NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
        confirmation VARCHAR(64) NOT NULL,
        plan TEXT NOT NULL,
        held_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
];

const DOWN: &[&str] = &[
    "DROP TABLE held_removals",
    "DROP TABLE org_deletion_protection",
];

sql_migration!(UP, DOWN);
