//! Appending to a connection's change log no longer locks the connection.
//!
//! A foreign key check takes a KEY SHARE lock on the referenced row. Every
//! SCIM write appends a `directory_events` row (and every user deletion a
//! tombstone) for the same connection, so under concurrent IdP writes that
//! one row always had several lockers, and PostgreSQL recorded each new set
//! of them as a MultiXact. Under 8 clients of user PATCHes the database
//! spent its time opening and reading the MultiXact files (perf, and
//! `pg_stat_slru`: millions of MultiXact block reads); without the keys the
//! same run did about a quarter more PATCHes a second.
//!
//! What the keys guaranteed is kept by other means. Rows are only ever
//! written for a connection the request authenticated against, in the same
//! statement as a write to a table whose key still holds (users, groups, the
//! members of a group); and a trigger deletes a connection's log and
//! tombstones with it, as `ON DELETE CASCADE` did. It runs after the
//! connection's row, and so its users and groups, are gone: a write racing
//! the deletion either committed first (and its rows are deleted here) or
//! finds nothing to write. SQLite has no MultiXacts and keeps its keys.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &[&str] = &[
    "ALTER TABLE directory_events DROP CONSTRAINT directory_events_connection_id_fkey",
    "ALTER TABLE directory_user_tombstones DROP CONSTRAINT directory_user_tombstones_connection_id_fkey",
    "CREATE FUNCTION forget_connection_directory_log() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       DELETE FROM directory_events WHERE connection_id = OLD.id;
       DELETE FROM directory_user_tombstones WHERE connection_id = OLD.id;
       RETURN OLD;
     END $$",
    "CREATE TRIGGER enterprise_connections_forget_directory_log \
     AFTER DELETE ON enterprise_connections \
     FOR EACH ROW EXECUTE FUNCTION forget_connection_directory_log()",
];

const DOWN: &[&str] = &[
    "DROP TRIGGER enterprise_connections_forget_directory_log ON enterprise_connections",
    "DROP FUNCTION forget_connection_directory_log()",
    "DELETE FROM directory_events e WHERE NOT EXISTS \
     (SELECT 1 FROM enterprise_connections c WHERE c.id = e.connection_id)",
    "DELETE FROM directory_user_tombstones t WHERE NOT EXISTS \
     (SELECT 1 FROM enterprise_connections c WHERE c.id = t.connection_id)",
    "ALTER TABLE directory_events ADD CONSTRAINT directory_events_connection_id_fkey \
     FOREIGN KEY (connection_id) REFERENCES enterprise_connections (id) ON DELETE CASCADE",
    "ALTER TABLE directory_user_tombstones ADD CONSTRAINT directory_user_tombstones_connection_id_fkey \
     FOREIGN KEY (connection_id) REFERENCES enterprise_connections (id) ON DELETE CASCADE",
];

postgres_migration!(UP, DOWN);
