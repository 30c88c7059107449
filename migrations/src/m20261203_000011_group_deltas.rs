//! Group membership changes without a hot row. A member PATCH records its
//! effect (one version step, its net member change) as a delta row instead
//! of updating the group's row, so concurrent PATCHes of one big group do not
//! queue on that row's lock until each commits. Readers see the group through
//! `directory_groups_current`, the row plus its pending deltas; the
//! directory-changed job folds deltas into the row in the background.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    // The foreign key matters beyond cleanup: inserting a delta takes a key-share
    // lock on the group row, so a writer that locks the row FOR UPDATE (If-Match,
    // a whole-list rewrite) waits for in-flight deltas and sees them all.
    "CREATE TABLE directory_group_deltas (
        group_id UUID NOT NULL REFERENCES directory_groups (id) ON DELETE CASCADE,
        connection_id UUID NOT NULL,
        member_delta BIGINT NOT NULL,
        changed_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE INDEX idx_directory_group_deltas_group ON directory_group_deltas (group_id)",
    "CREATE INDEX idx_directory_group_deltas_connection ON directory_group_deltas (connection_id)",
];

/// The group as readers see it: its row plus its pending deltas. PostgreSQL
/// reads a group's deltas in one index scan (LATERAL); SQLite has no LATERAL
/// and probes once per column. (SUM of BIGINT is NUMERIC on PostgreSQL, hence
/// the cast.)
const VIEW_POSTGRES: &str = "CREATE VIEW directory_groups_current AS
     SELECT g.id, g.connection_id, g.display_name, g.display_name_lower, g.external_id,
            g.resource, g.created_at,
            g.member_count + CAST(COALESCE(d.members, 0) AS BIGINT) AS member_count,
            g.version + d.steps AS version,
            GREATEST(g.updated_at, d.last_at) AS updated_at
     FROM directory_groups g,
          LATERAL (SELECT COUNT(*) AS steps, SUM(member_delta) AS members,
                          MAX(changed_at) AS last_at
                   FROM directory_group_deltas WHERE group_id = g.id) d";

const VIEW_SQLITE: &str = "CREATE VIEW directory_groups_current AS
     SELECT g.id, g.connection_id, g.display_name, g.display_name_lower, g.external_id,
            g.resource, g.created_at,
            g.member_count + COALESCE((SELECT SUM(d.member_delta) FROM directory_group_deltas d
                                       WHERE d.group_id = g.id), 0) AS member_count,
            g.version + (SELECT COUNT(*) FROM directory_group_deltas d
                         WHERE d.group_id = g.id) AS version,
            COALESCE((SELECT MAX(d.changed_at) FROM directory_group_deltas d
                      WHERE d.group_id = g.id AND d.changed_at > g.updated_at),
                     g.updated_at) AS updated_at
     FROM directory_groups g";

const DOWN: &[&str] = &[
    "DROP VIEW directory_groups_current",
    "DROP TABLE directory_group_deltas",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(manager, UP).await?;
        let view = match manager.get_database_backend() {
            sea_orm_migration::sea_orm::DbBackend::Postgres => VIEW_POSTGRES,
            _ => VIEW_SQLITE,
        };
        crate::execute_all(manager, &[view]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(manager, DOWN).await
    }
}
