//! The audit trail and the events of member writes, written in the writes'
//! own transaction so that a change and its record commit or roll back
//! together.

use orgsync_domain::audit::AuditEntry;
use orgsync_domain::events::{Event, MemberUpdate};
use orgsync_domain::membership::{MemberId, MemberStatus};
use orgsync_domain::org::OrgId;
use orgsync_domain::ports::MemberWrites;
use orgsync_domain::Result;
use sea_orm::DatabaseTransaction;

use super::BATCH;
use crate::audit_log::{insert_entries_with_states, EntryStates};
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
    // Entries without states: each member's states are given as text.
    let entry = |action: &str, id: MemberId| {
        let target = ("member", id.0.to_string());
        AuditEntry::new(
            org,
            writes.actor.clone(),
            action,
            target,
            None,
            None,
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
                entry(action, m.id)
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
    // An update's audit entry records the fields it changed, before (its
    // event's `previous`, as text already) and after.
    for chunk in writes.updated.chunks(BATCH) {
        let updates: Vec<(AuditEntry, Option<MemberUpdate>)> = chunk
            .iter()
            .map(|(after, before)| {
                let action = match (before.status, after.status) {
                    (MemberStatus::Active, MemberStatus::Suspended) => "member.suspended",
                    (MemberStatus::Suspended, MemberStatus::Active) => "member.reactivated",
                    _ => "member.updated",
                };
                let entry = entry(action, after.id);
                (entry, MemberUpdate::of(before, after, writes.at))
            })
            .collect();
        let rows: Vec<EntryStates<'_>> = updates
            .iter()
            .map(|(entry, update)| {
                // A touch that changed nothing visible is audited as such.
                let (before, after) = match update {
                    Some(update) => (
                        update.event.previous.as_ref().map(|p| p.as_str().into()),
                        serde_json::to_string(&update.changed).ok().map(Into::into),
                    ),
                    None => (Some("{}".into()), Some("{}".into())),
                };
                EntryStates {
                    entry,
                    before,
                    after,
                }
            })
            .collect();
        insert_entries_with_states(txn, &rows).await?;
        events.extend(
            updates
                .into_iter()
                .filter_map(|(_, update)| update.map(|u| u.event)),
        );
    }
    for chunk in writes.removed.chunks(BATCH) {
        let removed: Vec<Event> = chunk
            .iter()
            .map(|m| Event::member_removed(m, writes.at))
            .collect();
        let entries: Vec<AuditEntry> = chunk
            .iter()
            .map(|m| entry("member.removed", m.id))
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
