//! Coalesces "this directory changed" nudges: at most one per connection per
//! window from this process, always followed by one after the last change
//! (trailing edge), so a burst of IdP writes costs the workers one catch-up
//! per window instead of one per write, and no change waits for the sweeper.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orgsync_domain::directory::ConnectionId;
use orgsync_domain::service::SyncService;

pub struct Nudger {
    sync: SyncService,
    window: Duration,
    scheduled: Arc<Mutex<HashSet<ConnectionId>>>,
}

impl Nudger {
    pub fn new(sync: SyncService, window: Duration) -> Self {
        Self {
            sync,
            window,
            scheduled: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Schedules a nudge for `conn` unless one is already on its way.
    pub fn nudge(&self, conn: ConnectionId) {
        let newly = match self.scheduled.lock() {
            Ok(mut scheduled) => scheduled.insert(conn),
            Err(_) => true,
        };
        if !newly {
            return;
        }
        let (sync, window, scheduled) = (self.sync.clone(), self.window, self.scheduled.clone());
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            // Cleared before publishing: a change arriving now schedules the next nudge.
            if let Ok(mut pending) = scheduled.lock() {
                pending.remove(&conn);
            }
            if let Err(e) = sync.notify_directory_changed(conn).await {
                // The sweeper nudges lagging directories; this only delays the change.
                tracing::warn!(error = %e, connection = %conn, "could not queue directory change");
            }
        });
    }
}
