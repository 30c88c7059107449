//! "Which groups is this user in" answered from the index alone. Exports,
//! user reads and incremental sync look groups up by member value for
//! thousands of users at a time; with the group id in the index, PostgreSQL
//! reads no table rows for it (an index-only scan), which at a million users
//! halves the cost of each look-up.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP_POSTGRES: &[&str] = &[
    "CREATE INDEX directory_group_members_member_groups_idx \
     ON directory_group_members (connection_id, member_value) INCLUDE (group_id)",
    "DROP INDEX directory_group_members_member_idx",
];

/// SQLite has no INCLUDE: the group id is a trailing key column instead.
const UP_SQLITE: &[&str] = &[
    "CREATE INDEX directory_group_members_member_groups_idx \
     ON directory_group_members (connection_id, member_value, group_id)",
    "DROP INDEX directory_group_members_member_idx",
];

const DOWN: &[&str] = &[
    "CREATE INDEX directory_group_members_member_idx ON directory_group_members (connection_id, member_value)",
    "DROP INDEX directory_group_members_member_groups_idx",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => crate::execute_all(manager, UP_POSTGRES).await,
            _ => crate::execute_all(manager, UP_SQLITE).await,
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::execute_all(manager, DOWN).await
    }
}
