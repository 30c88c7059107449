//! Which members a group event changed. Sync re-plans just those users when
//! a group that decides anything changes, instead of the whole org: at a
//! million members, a one-member PATCH must not cost a million-member plan.
//! Rewrites (PUT, replacing the list) record the old members and the new
//! ones; the rows go with their event.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &["CREATE TABLE directory_event_members (
        event_id BIGINT NOT NULL REFERENCES directory_events (id) ON DELETE CASCADE,
        member_value TEXT NOT NULL,
        PRIMARY KEY (event_id, member_value)
    )"];

const DOWN: &[&str] = &["DROP TABLE directory_event_members"];

sql_migration!(UP, DOWN);
