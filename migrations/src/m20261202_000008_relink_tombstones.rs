//! What relinking needs once a person is gone: the externalId of each
//! directory user deleted (kept by the directory, per connection), and the
//! last state of each member a sync removed (per org). Both are read only
//! within the relink window; the sweeper purges older rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE TABLE directory_user_tombstones (
        connection_id UUID NOT NULL REFERENCES enterprise_connections (id) ON DELETE CASCADE,
        user_id UUID NOT NULL,
        external_id TEXT NOT NULL,
        deleted_at TIMESTAMP WITH TIME ZONE NOT NULL,
        PRIMARY KEY (connection_id, user_id)
    )",
    "CREATE INDEX directory_user_tombstones_external_idx ON directory_user_tombstones (connection_id, external_id)",
    "CREATE TABLE member_tombstones (
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        member_id UUID NOT NULL,
        directory_user_id UUID NOT NULL,
        member TEXT NOT NULL,
        removed_at TIMESTAMP WITH TIME ZONE NOT NULL,
        PRIMARY KEY (org_id, member_id)
    )",
    "CREATE INDEX member_tombstones_user_idx ON member_tombstones (org_id, directory_user_id)",
];

const DOWN: &[&str] = &[
    "DROP TABLE member_tombstones",
    "DROP TABLE directory_user_tombstones",
];

sql_migration!(UP, DOWN);
