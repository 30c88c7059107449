//! One manual (or JIT) member per email in an org, enforced by the database:
//! the service's check-then-insert alone let two concurrent adds of the same
//! email both succeed. Directory members are left out: a directory may hold
//! two users with one email, and they are told apart by their directory id.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE UNIQUE INDEX members_manual_email_key ON members (org_id, email_lower) \
     WHERE directory_user_id IS NULL",
];

const DOWN: &[&str] = &["DROP INDEX members_manual_email_key"];

sql_migration!(UP, DOWN);
