//! The role a member created on first sign-in (JIT) gets, per org; NULL
//! means `user`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &["ALTER TABLE organizations ADD COLUMN jit_default_role TEXT"];

const DOWN: &[&str] = &["ALTER TABLE organizations DROP COLUMN jit_default_role"];

sql_migration!(UP, DOWN);
