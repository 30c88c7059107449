//! The events outbox without a foreign key to `organizations`, as the audit
//! log has none. A bulk write numbers its events while it holds its
//! tenant's sequence (so readers see them in commit order), and every row's
//! key check ran inside that hold: at a million members added, 8 of the 19
//! microseconds each event row cost, serialised across the writers. An
//! org's events are deleted with it by `delete_leaf` instead of by cascade.
//!
//! PostgreSQL only: SQLite cannot drop a constraint without rebuilding the
//! table, and the embedded mode's writes are far too small for it to matter.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &["ALTER TABLE events DROP CONSTRAINT IF EXISTS events_org_id_fkey"];

const DOWN: &[&str] = &[
    "DELETE FROM events WHERE org_id NOT IN (SELECT id FROM organizations)",
    "ALTER TABLE events ADD CONSTRAINT events_org_id_fkey \
     FOREIGN KEY (org_id) REFERENCES organizations (id) ON DELETE CASCADE",
];

postgres_migration!(UP, DOWN);
