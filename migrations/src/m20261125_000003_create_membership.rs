//! Membership: members, the org's roles and seat tiers, its membership
//! settings (group mappings, deprovisioning), the connection's attribute
//! definitions, sync runs and each org's position in its directory's event log.
//! Documents replaced as a whole (mappings, definitions) are JSON; members
//! are rows with the columns filters and bulk updates need.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE TABLE members (
        id UUID NOT NULL PRIMARY KEY,
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        directory_user_id UUID NULL,
        email TEXT NOT NULL,
        email_lower TEXT NOT NULL,
        name TEXT NULL,
        role VARCHAR(64) NOT NULL,
        seat_tier VARCHAR(63) NULL,
        spend_limit_minor BIGINT NULL,
        spend_limit_currency VARCHAR(3) NULL,
        public_metadata TEXT NOT NULL,
        status VARCHAR(16) NOT NULL,
        source VARCHAR(16) NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    // One member per directory user per org: identity is the directory id.
    "CREATE UNIQUE INDEX members_directory_user_key ON members (org_id, directory_user_id) WHERE directory_user_id IS NOT NULL",
    "CREATE INDEX members_org_idx ON members (org_id, id)",
    "CREATE INDEX members_email_idx ON members (org_id, email_lower)",
    "CREATE TABLE org_roles (
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        name VARCHAR(64) NOT NULL,
        capabilities TEXT NOT NULL,
        PRIMARY KEY (org_id, name)
    )",
    "CREATE TABLE org_seat_tiers (
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        name VARCHAR(63) NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (org_id, name)
    )",
    "CREATE TABLE org_membership_settings (
        org_id UUID NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
        group_mappings TEXT NOT NULL,
        deprovision VARCHAR(16) NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE TABLE connection_attributes (
        connection_id UUID NOT NULL PRIMARY KEY REFERENCES enterprise_connections (id) ON DELETE CASCADE,
        definitions TEXT NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE TABLE sync_runs (
        id UUID NOT NULL PRIMARY KEY,
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        kind VARCHAR(32) NOT NULL,
        scope VARCHAR(16) NOT NULL,
        requested_by TEXT NOT NULL,
        status VARCHAR(16) NOT NULL,
        added BIGINT NOT NULL DEFAULT 0,
        updated BIGINT NOT NULL DEFAULT 0,
        removed BIGINT NOT NULL DEFAULT 0,
        report TEXT NULL,
        error TEXT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        started_at TIMESTAMP WITH TIME ZONE NULL,
        finished_at TIMESTAMP WITH TIME ZONE NULL
    )",
    "CREATE INDEX sync_runs_org_idx ON sync_runs (org_id, id)",
    // How far each org has applied its directory's change log.
    "CREATE TABLE org_directory_cursors (
        org_id UUID NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
        connection_id UUID NOT NULL REFERENCES enterprise_connections (id) ON DELETE CASCADE,
        applied_seq BIGINT NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
];

const DOWN: &[&str] = &[
    "DROP TABLE org_directory_cursors",
    "DROP TABLE sync_runs",
    "DROP TABLE connection_attributes",
    "DROP TABLE org_membership_settings",
    "DROP TABLE org_seat_tiers",
    "DROP TABLE org_roles",
    "DROP TABLE members",
];

sql_migration!(UP, DOWN);
