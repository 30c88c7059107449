//! The append-only audit log. `org_id` is deliberately not a foreign key:
//! the record of a change outlives what it changed (a deleted org included).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

// The statement's text stays as it first ran, indentation included (SQLite keeps it).
const UP: &[&str] = &[
    "CREATE TABLE audit_events (
                id UUID NOT NULL PRIMARY KEY,
                org_id UUID NOT NULL,
                actor_kind VARCHAR(16) NOT NULL,
                actor TEXT NOT NULL,
                actor_detail TEXT NOT NULL,
                action VARCHAR(64) NOT NULL,
                target_kind VARCHAR(32) NOT NULL,
                target_id TEXT NOT NULL,
                before_state TEXT NULL,
                after_state TEXT NULL,
                at TIMESTAMP WITH TIME ZONE NOT NULL
            )",
    "CREATE INDEX audit_events_org_idx ON audit_events (org_id, id)",
];

const DOWN: &[&str] = &["DROP TABLE audit_events"];

sql_migration!(UP, DOWN);
