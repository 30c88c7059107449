//! Relinking by email (when configured): a removed member's email, lower-cased,
//! beside its tombstone, indexed for the look-up a new directory user makes.
//! Older tombstones have none and relink by externalId only.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "ALTER TABLE member_tombstones ADD COLUMN email TEXT NULL",
    "CREATE INDEX member_tombstones_email_idx ON member_tombstones (org_id, email)",
];

const DOWN: &[&str] = &[
    "DROP INDEX member_tombstones_email_idx",
    "ALTER TABLE member_tombstones DROP COLUMN email",
];

sql_migration!(UP, DOWN);
