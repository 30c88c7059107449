//! orgsync's schema. One file per change, append-only: a landed migration's
//! statements are never changed (its Rust may be tidied only into code that
//! builds the very same statements). Each declares its own identifiers rather
//! than importing entities, so the schema's history does not move when the
//! code does. Every migration runs on PostgreSQL and on SQLite (the embedded
//! mode).

pub use sea_orm_migration::prelude::*;

/// Implements [`MigrationTrait`] for the module's `Migration` as plain SQL
/// that reads the same on PostgreSQL and SQLite: the statements of `$up` in
/// order, and those of `$down` to undo them.
macro_rules! sql_migration {
    ($up:expr, $down:expr) => {
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::execute_all(manager, $up).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::execute_all(manager, $down).await
            }
        }
    };
}

/// As [`sql_migration!`] for a change that only PostgreSQL needs (a storage
/// setting, a lock it takes that SQLite does not): on SQLite it does nothing.
macro_rules! postgres_migration {
    ($up:expr, $down:expr) => {
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                match manager.get_database_backend() {
                    sea_orm_migration::sea_orm::DbBackend::Postgres => {
                        $crate::execute_all(manager, $up).await
                    }
                    _ => Ok(()),
                }
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                match manager.get_database_backend() {
                    sea_orm_migration::sea_orm::DbBackend::Postgres => {
                        $crate::execute_all(manager, $down).await
                    }
                    _ => Ok(()),
                }
            }
        }
    };
}

mod ddl;

mod m20261125_000001_create_organizations;
mod m20261125_000002_create_directory;
mod m20261125_000003_create_membership;
mod m20261125_000004_create_sync_jobs;
mod m20261125_000005_create_audit_events;
mod m20261202_000006_unique_manual_member_email;
mod m20261202_000007_deletion_protection;
mod m20261202_000008_relink_tombstones;
mod m20261202_000009_relink_by_email;
mod m20261202_000010_org_writers;
mod m20261203_000011_group_deltas;
mod m20261203_000012_hot_updates;
mod m20261203_000013_event_members;
mod m20261203_000014_member_groups_index;
mod m20261203_000015_events_webhooks;
mod m20261203_000016_sso;
mod m20261203_000017_saml_assertions;
mod m20261203_000018_jit_default_role;
mod m20261204_000019_unlocked_change_log;
mod m20261204_000020_job_worker;
mod m20261206_000021_events_without_org_key;
mod m20261206_000022_event_sequences;
mod m20261207_000023_retired_orgs;
mod m20261207_000024_removal_counts;

/// Runs a migration's statements in order (the plain-SQL ones, through
/// `sql_migration!`, and the statements sea-query cannot build).
pub(crate) async fn execute_all(
    manager: &SchemaManager<'_>,
    statements: &[&str],
) -> Result<(), DbErr> {
    for statement in statements {
        manager
            .get_connection()
            .execute_unprepared(statement)
            .await?;
    }
    Ok(())
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_organizations::Migration),
            Box::new(m20261125_000002_create_directory::Migration),
            Box::new(m20261125_000003_create_membership::Migration),
            Box::new(m20261125_000004_create_sync_jobs::Migration),
            Box::new(m20261125_000005_create_audit_events::Migration),
            Box::new(m20261202_000006_unique_manual_member_email::Migration),
            Box::new(m20261202_000007_deletion_protection::Migration),
            Box::new(m20261202_000008_relink_tombstones::Migration),
            Box::new(m20261202_000009_relink_by_email::Migration),
            Box::new(m20261202_000010_org_writers::Migration),
            Box::new(m20261203_000011_group_deltas::Migration),
            Box::new(m20261203_000012_hot_updates::Migration),
            Box::new(m20261203_000013_event_members::Migration),
            Box::new(m20261203_000014_member_groups_index::Migration),
            Box::new(m20261203_000015_events_webhooks::Migration),
            Box::new(m20261203_000016_sso::Migration),
            Box::new(m20261203_000017_saml_assertions::Migration),
            Box::new(m20261203_000018_jit_default_role::Migration),
            Box::new(m20261204_000019_unlocked_change_log::Migration),
            Box::new(m20261204_000020_job_worker::Migration),
            Box::new(m20261206_000021_events_without_org_key::Migration),
            Box::new(m20261206_000022_event_sequences::Migration),
            Box::new(m20261207_000023_retired_orgs::Migration),
            Box::new(m20261207_000024_removal_counts::Migration),
        ]
    }
}
