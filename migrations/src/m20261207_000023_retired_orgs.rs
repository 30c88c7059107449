//! Events outlive their org. Deleting an org removes its members first,
//! each with its `member.removed` event, and those events (with the org's
//! earlier ones) stay in the tenant's log for its ancestors, who read them
//! as part of their subtree through `retired_org_ancestors`: the ancestry
//! the org had, kept from the closure table when it goes. Retention purges
//! the rows with the events.
//!
//! On SQLite `events` still has its key to `organizations` (an SQLite table
//! cannot drop one in place, so the earlier migration that dropped it did
//! nothing there), and the cascade would take the events: the table is
//! rebuilt without it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ANCESTRY: &[&str] = &["CREATE TABLE retired_org_ancestors (
        ancestor_id UUID NOT NULL,
        org_id UUID NOT NULL,
        retired_at TIMESTAMP WITH TIME ZONE NOT NULL,
        PRIMARY KEY (ancestor_id, org_id)
    )"];

const EVENT_INDEXES: [&str; 4] = [
    "CREATE UNIQUE INDEX events_org_seq_idx ON events (org_id, seq)",
    "CREATE UNIQUE INDEX events_root_seq_idx ON events (root_id, seq)",
    "CREATE INDEX events_unnumbered_idx ON events (org_id) WHERE seq IS NULL",
    "CREATE INDEX events_occurred_at_idx ON events (occurred_at)",
];

/// `events` rebuilt on SQLite with `org_key` as the org column's constraint.
fn rebuild_events(org_key: &str) -> Vec<String> {
    let mut statements = vec![
        format!(
            "CREATE TABLE events_rebuilt (
                id UUID PRIMARY KEY,
                org_id UUID NOT NULL{org_key},
                root_id UUID,
                seq BIGINT,
                event_type TEXT NOT NULL,
                occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
                data TEXT NOT NULL,
                previous TEXT
            )"
        ),
        "INSERT INTO events_rebuilt (id, org_id, root_id, seq, event_type, occurred_at, data, previous) \
         SELECT id, org_id, root_id, seq, event_type, occurred_at, data, previous FROM events"
            .to_owned(),
        "DROP TABLE events".to_owned(),
        "ALTER TABLE events_rebuilt RENAME TO events".to_owned(),
    ];
    statements.extend(EVENT_INDEXES.map(str::to_owned));
    statements
}

async fn run(manager: &SchemaManager<'_>, statements: &[String]) -> Result<(), DbErr> {
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    crate::execute_all(manager, &refs).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite {
            run(manager, &rebuild_events("")).await?;
        }
        crate::execute_all(manager, ANCESTRY).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(manager, &["DROP TABLE retired_org_ancestors"]).await?;
        if manager.get_database_backend() == DbBackend::Sqlite {
            crate::execute_all(
                manager,
                &["DELETE FROM events WHERE org_id NOT IN (SELECT id FROM organizations)"],
            )
            .await?;
            run(
                manager,
                &rebuild_events(" REFERENCES organizations (id) ON DELETE CASCADE"),
            )
            .await?;
        }
        Ok(())
    }
}
