//! The users this process last read or wrote, kept as the base of the next
//! read-modify-write (a SCIM PATCH), so that an IdP's usual "look the user
//! up, then PATCH it" costs one statement instead of two. It is never an
//! answer: a record here may be stale (another process may have written
//! since), and the write that uses it expects its version, so a stale base
//! only costs the read it tried to save. Bounded by bytes, so one tenant's
//! large directory can only evict, never grow the process.

use std::sync::Arc;

use moka::sync::Cache;
use orgsync_domain::directory::{ConnectionId, ResourceId, UserRecord};
use serde_json::Value;

/// Whether a page of users read for a list is worth remembering: an IdP
/// looks one user up by a filter before writing it; a full listing would
/// only push out what is about to be used.
pub(super) const REMEMBERED_PAGE: usize = 4;

#[derive(Clone)]
pub(super) struct RecentUsers {
    records: Cache<(ConnectionId, ResourceId), Arc<UserRecord>>,
}

impl RecentUsers {
    pub(super) fn new(max_bytes: u64) -> Self {
        Self {
            records: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, record: &Arc<UserRecord>| weight(record))
                .build(),
        }
    }

    pub(super) fn get(&self, conn: ConnectionId, id: ResourceId) -> Option<Arc<UserRecord>> {
        self.records.get(&(conn, id))
    }

    pub(super) fn remember(&self, record: &UserRecord) {
        self.records
            .insert((record.connection_id, record.id), Arc::new(record.clone()));
    }

    pub(super) fn forget(&self, conn: ConnectionId, id: ResourceId) {
        self.records.invalidate(&(conn, id));
    }
}

/// Bytes a remembered record holds on the heap, an estimate from above:
/// the cache's bound is meant as memory, not as a count of characters. A
/// first estimate (a word per JSON value plus the strings) was less than
/// half the truth: in the million-user benchmark, 64 MiB of it held about
/// 140 MiB of the process. Most of the difference is structure: every JSON object
/// is at least one B-tree node with room for eleven entries, every string
/// its own allocation, and every entry the cache's own bookkeeping.
fn weight(record: &UserRecord) -> u32 {
    /// The record, its `Arc` and the cache's entry for it.
    const ENTRY: usize = 768;
    /// A `serde_json::Value`, wherever it sits.
    const VALUE: usize = 32;
    /// A B-tree node of an object's entries: up to eleven keys and values.
    const NODE: usize = 11 * (24 + VALUE) + 64;
    /// A string's own allocation: rounded up to the allocator's classes.
    fn heap(len: usize) -> usize {
        if len == 0 {
            0
        } else {
            len.next_multiple_of(16) + 16
        }
    }
    /// What `value` holds beyond its own `VALUE` bytes.
    fn beyond(value: &Value) -> usize {
        match value {
            Value::String(s) => heap(s.len()),
            Value::Array(items) => items.iter().map(|v| VALUE + beyond(v)).sum(),
            Value::Object(map) => {
                map.len().div_ceil(11) * NODE
                    + map
                        .iter()
                        .map(|(k, v)| heap(k.len()) + beyond(v))
                        .sum::<usize>()
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        }
    }
    let fields = &record.fields;
    let strings = [&fields.external_id, &fields.display_name, &fields.email]
        .into_iter()
        .flatten()
        .map(|s| heap(s.len()))
        .sum::<usize>();
    let bytes = ENTRY + heap(fields.user_name.len()) + strings + beyond(&fields.resource);
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orgsync_domain::directory::UserFields;
    use serde_json::json;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn record(conn: ConnectionId, padding: usize) -> UserRecord {
        let resource = json!({"userName": "ada", "padding": "x".repeat(padding)});
        let fields = UserFields {
            user_name: "ada".into(),
            external_id: None,
            display_name: None,
            active: true,
            email: None,
            resource,
        };
        UserRecord::created(Uuid::now_v7(), conn, fields, OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn a_record_is_found_only_under_its_own_connection() {
        let recent = RecentUsers::new(1 << 20);
        let (mine, theirs) = (ConnectionId(Uuid::now_v7()), ConnectionId(Uuid::now_v7()));
        let ada = record(mine, 10);
        recent.remember(&ada);
        assert_eq!(recent.get(mine, ada.id).as_deref(), Some(&ada));
        assert_eq!(recent.get(theirs, ada.id), None);
        recent.forget(mine, ada.id);
        assert_eq!(recent.get(mine, ada.id), None);
    }

    #[test]
    fn large_records_are_bounded_by_bytes_not_by_count() {
        let recent = RecentUsers::new(1 << 20);
        let conn = ConnectionId(Uuid::now_v7());
        for _ in 0..200 {
            recent.remember(&record(conn, 60_000));
        }
        recent.records.run_pending_tasks();
        assert!(recent.records.weighted_size() <= 1 << 20);
        assert!(recent.records.entry_count() < 20);
    }
}
