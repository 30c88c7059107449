//! A tenant's event sequence in a row of its own, out of `organizations`.
//!
//! Numbering events locked and advanced the root org's row (`event_seq`),
//! a bulk write once per transaction of 5,000 members and the sequencer on
//! every poll that found events waiting. Each time PostgreSQL wrote a new
//! version of that row. The same row is what every member insert's foreign
//! key check reads (`members.org_id` of a root org), and PostgreSQL's check
//! of a tiny table reads it by scanning its page: during a switch that adds
//! members in several transactions at once, each check stepped over the
//! dead versions the writers still running kept from being pruned, and
//! over the MultiXacts of their row locks. In a profile of PostgreSQL
//! during a 300,000-member switch, key checks that scanned fell from 6.1%
//! of its samples to 1.7%, MultiXact lookups from 1.7% to 0.1%. The
//! counter moves to `event_sequences`, a row per tenant that no foreign key
//! reads; the root org's row is left alone.
//!
//! The row is created by the first numbering of the tenant's events (an
//! upsert that also takes the lock), so creating an org writes nothing new.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "CREATE TABLE event_sequences (
        root_id UUID NOT NULL PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
        last_seq BIGINT NOT NULL
    )",
    "INSERT INTO event_sequences (root_id, last_seq) \
     SELECT id, event_seq FROM organizations WHERE id = root_id AND event_seq > 0",
    "ALTER TABLE organizations DROP COLUMN event_seq",
];

const DOWN: &[&str] = &[
    "ALTER TABLE organizations ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0",
    "UPDATE organizations SET event_seq = \
     COALESCE((SELECT last_seq FROM event_sequences s WHERE s.root_id = organizations.id), 0)",
    "DROP TABLE event_sequences",
];

sql_migration!(UP, DOWN);
