//! SAML: the assertions a connection accepted, kept until they expire, so
//! one cannot be presented twice.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE TABLE sso_assertions (
        connection_id UUID NOT NULL,
        assertion_id TEXT NOT NULL,
        expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
        PRIMARY KEY (connection_id, assertion_id)
    )",
    "CREATE INDEX sso_assertions_expiry_idx ON sso_assertions (expires_at)",
];

const DOWN: &[&str] = &["DROP TABLE sso_assertions"];

sql_migration!(UP, DOWN);
