use time::OffsetDateTime;

use crate::events::{Event, EventQuery};
use crate::org::OrgId;
use crate::Result;

/// The outbox of events, read by cursor. Events of member writes are
/// appended by the writes themselves, in their transaction; this port
/// appends the others and reads them all.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync {
    /// Records events of changes already committed.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn append(&self, events: &[Event]) -> Result<()>;

    /// The org's events after `query.after`, oldest first, every one with
    /// its `seq`. Events committed by then are numbered first, so a reader
    /// moving its cursor to the last `seq` it saw misses none and sees none
    /// twice.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn read(&self, org: OrgId, query: &EventQuery) -> Result<Vec<Event>>;

    /// Forgets events that occurred before `before`, and webhook deliveries
    /// made before it that are done with; returns how many rows went.
    ///
    /// # Errors
    /// Only infrastructure failures.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64>;
}
