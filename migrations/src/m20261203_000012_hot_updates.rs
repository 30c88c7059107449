//! Room on each page for a row's next version. SCIM writes update users
//! (PATCH, PUT) and groups (folds) in place without touching an indexed
//! column; with free space on the page PostgreSQL keeps the new version
//! there and skips every index (a HOT update), so a user PATCH writes one
//! heap tuple instead of one per index. SQLite has no such setting.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "ALTER TABLE directory_users SET (fillfactor = 80)",
    "ALTER TABLE directory_groups SET (fillfactor = 80)",
];

const DOWN: &[&str] = &[
    "ALTER TABLE directory_users RESET (fillfactor)",
    "ALTER TABLE directory_groups RESET (fillfactor)",
];

postgres_migration!(UP, DOWN);
