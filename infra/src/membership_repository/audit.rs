//! The audit trail and the events of member writes, written in the writes'
//! own transaction so that a change and its record commit or roll back
//! together.

use orgsync_domain::audit::AuditEntry;
use orgsync_domain::events::Event;
use orgsync_domain::membership::{Member, MemberId, MemberStatus};
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::MemberWrites;
use orgsync_domain::Result;
use sea_orm::DatabaseTransaction;

use super::BATCH;
use crate::audit_log::{insert_entries, insert_entries_with_states, EntryStates};
use crate::events::{insert_events, insert_numbered_events};

/// Events from which a write numbers its own (see [`insert_numbered_events`]).
const NUMBERED_IN_TRANSACTION_FROM: usize = BATCH;

/// One audit entry and one event per member written, in the writes' own
/// transaction (at most one share of a bulk write: the events wait in
/// memory for the end, where they are numbered).
pub(super) async fn record_writes(
    txn: &DatabaseTransaction,
    org: OrgId,
    writes: &MemberWrites<'_>,
) -> Result<()> {
    let entry = |action: &str,
                 id: MemberId,
                 before: Option<serde_json::Value>,
                 after: Option<serde_json::Value>| {
        AuditEntry::new(
            org,
            writes.actor.clone(),
            action,
            ("member", id.0.to_string()),
            before,
            after,
            writes.at,
        )
    };
    let relinked: std::collections::HashSet<MemberId> = writes.relinked.iter().copied().collect();
    let mut events: Vec<Event> = Vec::new();
    // An added member's audit state is its view, which its event carries
    // as text already: printed once, written twice.
    for chunk in writes.added.chunks(BATCH) {
        let created: Vec<Event> = chunk
            .iter()
            .map(|m| Event::member_created(m, writes.at))
            .collect();
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|m| {
                let action = if relinked.contains(&m.id) {
                    "member.relinked"
                } else {
                    "member.created"
                };
                entry(action, m.id, None, None)
            })
            .collect();
        let rows: Vec<EntryStates<'_>> = entries
            .iter()
            .zip(&created)
            .map(|(entry, event)| EntryStates {
                entry,
                before: None,
                after: Some(event.data.as_str().into()),
            })
            .collect();
        insert_entries_with_states(txn, &rows).await?;
        events.extend(created);
    }
    for chunk in writes.updated.chunks(BATCH) {
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|(after, before)| {
                let action = match (before.status, after.status) {
                    (MemberStatus::Active, MemberStatus::Suspended) => "member.suspended",
                    (MemberStatus::Suspended, MemberStatus::Active) => "member.reactivated",
                    _ => "member.updated",
                };
                let (before, after_view) = changed_fields(before, after);
                entry(action, after.id, Some(before), Some(after_view))
            })
            .collect();
        insert_entries(txn, &entries).await?;
        events.extend(
            chunk
                .iter()
                .filter_map(|(after, before)| Event::member_changed(before, after, writes.at)),
        );
    }
    for chunk in writes.removed.chunks(BATCH) {
        let removed: Vec<Event> = chunk
            .iter()
            .map(|m| Event::member_removed(m, writes.at))
            .collect();
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|m| entry("member.removed", m.id, None, None))
            .collect();
        let rows: Vec<EntryStates<'_>> = entries
            .iter()
            .zip(&removed)
            .map(|(entry, event)| EntryStates {
                entry,
                before: Some(event.data.as_str().into()),
                after: None,
            })
            .collect();
        insert_entries_with_states(txn, &rows).await?;
        events.extend(removed);
    }
    // A few events wait for the sequencer, which numbers them after commit
    // without holding up the tenant's other writers; a bulk share numbers
    // its own rather than have every row rewritten.
    if events.len() >= NUMBERED_IN_TRANSACTION_FROM {
        insert_numbered_events(txn, org, &events).await
    } else {
        insert_events(txn, &events).await
    }
}

/// The fields an update changed, before and after (not the whole member:
/// a resync may update 100,000 members, and their audit stays small).
fn changed_fields(before: &Member, after: &Member) -> (serde_json::Value, serde_json::Value) {
    use serde_json::{Map, Value as Json};
    let (Ok(Json::Object(before)), Ok(Json::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return (Json::Null, Json::Null);
    };
    let mut was = Map::new();
    let mut now = Map::new();
    for (key, value) in after {
        let old = before.get(&key).cloned().unwrap_or(Json::Null);
        if key != "updated_at" && old != value {
            was.insert(key.clone(), old);
            now.insert(key, value);
        }
    }
    (Json::Object(was), Json::Object(now))
}
