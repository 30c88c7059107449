//! Relinking: a person the IdP deletes and creates again (some connectors do
//! on an email or domain change) gets their old member back (same id,
//! history, and role unless group mappings decide it) instead of a new one.

use time::{Duration, OffsetDateTime};

/// How a new directory user is recognised as a removed member's person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelinkPolicy {
    /// How long after a removal the member can come back (`sync.relink_window`).
    pub window: Duration,
    /// Also by email, not only by externalId (`sync.relink_by_email`). Off by
    /// default: an email can be handed to another person, an externalId is
    /// the IdP's immutable key.
    pub by_email: bool,
}

impl Default for RelinkPolicy {
    fn default() -> Self {
        Self {
            window: Duration::days(7),
            by_email: false,
        }
    }
}

impl RelinkPolicy {
    /// The look-up rule for changes planned at `now`.
    pub fn at(self, now: OffsetDateTime) -> RelinkRule {
        RelinkRule {
            since: now - self.window,
            by_email: self.by_email,
        }
    }
}

/// Which removed members a look-up may return: removed after `since`, matched
/// by externalId, and by email when `by_email`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelinkRule {
    pub since: OffsetDateTime,
    pub by_email: bool,
}
