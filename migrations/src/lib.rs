//! orgsync's schema. One file per change, append-only: a landed migration is
//! never edited. Each declares its own identifiers rather than importing
//! entities, so the schema's history does not move when the code does.
//! Every migration runs on PostgreSQL and on SQLite (the embedded mode).

pub use sea_orm_migration::prelude::*;

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

/// Runs a migration's statements in order (the migrations after 5 use it;
/// landed ones keep their own loops, as they are never edited).
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
        ]
    }
}
