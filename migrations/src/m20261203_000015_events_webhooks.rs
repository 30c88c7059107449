//! Events out. `events` is the outbox: each change writes its events in its
//! own transaction with no number; numbering (`seq`, per tenant, in commit
//! order, with the tenant's `root_id`) happens afterwards under the root
//! org's row lock, so readers paging by `seq` (of an org, or of a subtree)
//! never skip an event committed late. Webhook endpoints follow their
//! org's events with a cursor (`fanned_out_seq`) and keep one delivery row
//! per event sent, with its attempts. A directory's change log (written in
//! the SCIM writes' own transactions) is published as `directory.*` events
//! up to `published_seq`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "ALTER TABLE organizations ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE enterprise_connections ADD COLUMN published_seq BIGINT NOT NULL DEFAULT 0",
    // Directories publish from now on, not their whole history.
    "UPDATE enterprise_connections SET published_seq = event_seq",
    // What a group change did to each member it names: `added`, `removed`,
    // or `kept` (named by both sides of a rewrite); NULL on older entries.
    "ALTER TABLE directory_event_members ADD COLUMN change TEXT",
    "CREATE TABLE events (
        id UUID PRIMARY KEY,
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        root_id UUID,
        seq BIGINT,
        event_type TEXT NOT NULL,
        occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
        data TEXT NOT NULL,
        previous TEXT
    )",
    "CREATE UNIQUE INDEX events_org_seq_idx ON events (org_id, seq)",
    "CREATE UNIQUE INDEX events_root_seq_idx ON events (root_id, seq)",
    "CREATE INDEX events_unnumbered_idx ON events (org_id) WHERE seq IS NULL",
    "CREATE INDEX events_occurred_at_idx ON events (occurred_at)",
    "CREATE TABLE webhook_endpoints (
        id UUID PRIMARY KEY,
        org_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        event_types TEXT NOT NULL,
        description TEXT,
        secret TEXT NOT NULL,
        previous_secret TEXT,
        previous_secret_until TIMESTAMP WITH TIME ZONE,
        enabled BOOLEAN NOT NULL,
        disabled_reason TEXT,
        fanned_out_seq BIGINT NOT NULL,
        lease_holder TEXT,
        lease_until TIMESTAMP WITH TIME ZONE,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL
    )",
    "CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (org_id)",
    "CREATE TABLE webhook_deliveries (
        id UUID PRIMARY KEY,
        endpoint_id UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        event_id UUID NOT NULL,
        event_seq BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TIMESTAMP WITH TIME ZONE,
        first_failed_at TIMESTAMP WITH TIME ZONE,
        last_attempt_at TIMESTAMP WITH TIME ZONE,
        last_status_code INTEGER,
        last_latency_ms BIGINT,
        last_error TEXT,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        delivered_at TIMESTAMP WITH TIME ZONE
    )",
    "CREATE UNIQUE INDEX webhook_deliveries_event_idx ON webhook_deliveries (endpoint_id, event_seq)",
    "CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'",
    "CREATE INDEX webhook_deliveries_listing_idx ON webhook_deliveries (endpoint_id, id)",
    "CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at)",
];

const DOWN: &[&str] = &[
    "DROP TABLE webhook_deliveries",
    "DROP TABLE webhook_endpoints",
    "DROP TABLE events",
    "ALTER TABLE organizations DROP COLUMN event_seq",
    "ALTER TABLE enterprise_connections DROP COLUMN published_seq",
    "ALTER TABLE directory_event_members DROP COLUMN change",
];

sql_migration!(UP, DOWN);
