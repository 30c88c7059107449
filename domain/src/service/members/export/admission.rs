//! How many exports read at once. Each holds a database connection and a
//! snapshot for as long as it reads, and a slow client slows its reading;
//! without a bound a few downloads could take the pool every SCIM and
//! admin request needs. Within the bound no tenant takes more than half,
//! so one tenant's exports never shut out another's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::org::OrgId;
use crate::{Error, Result};

/// How long an export waits for another tenant's to finish before it is
/// refused.
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ExportAdmission {
    slots: Arc<Semaphore>,
    per_tenant: usize,
    running: Arc<Mutex<HashMap<OrgId, usize>>>,
    longest: Duration,
}

/// An export's place, given back when the export is dropped.
#[derive(Debug)]
pub struct ExportSlot {
    _slot: OwnedSemaphorePermit,
    _tenant: TenantShare,
    /// When the export must have finished reading.
    pub deadline: tokio::time::Instant,
}

/// One of a tenant's running exports.
#[derive(Debug)]
struct TenantShare {
    tenant: OrgId,
    running: Arc<Mutex<HashMap<OrgId, usize>>>,
}

impl Drop for TenantShare {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

impl ExportAdmission {
    /// `at_once` exports in the process (at least one), each reading for at
    /// most `longest`.
    #[must_use]
    pub fn new(at_once: usize, longest: Duration) -> Self {
        let at_once = at_once.max(1);
        Self {
            slots: Arc::new(Semaphore::new(at_once)),
            per_tenant: at_once.div_ceil(2),
            running: Arc::default(),
            longest,
        }
    }

    /// A place for an export of `tenant`'s.
    ///
    /// # Errors
    /// `Busy` when the tenant already runs its share, or no place freed up
    /// within a few seconds.
    pub async fn admit(&self, tenant: OrgId) -> Result<ExportSlot> {
        let share = self.share(tenant)?;
        let slot = tokio::time::timeout(PATIENCE, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| {
                Error::Busy(
                    "the server is exporting for other organizations; retry in a few seconds"
                        .into(),
                )
            })?
            .map_err(|e| Error::Internal(anyhow::anyhow!("export admission closed: {e}")))?;
        Ok(ExportSlot {
            _slot: slot,
            _tenant: share,
            deadline: tokio::time::Instant::now() + self.longest,
        })
    }

    fn share(&self, tenant: OrgId) -> Result<TenantShare> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = running.entry(tenant).or_default();
        if *count >= self.per_tenant {
            return Err(Error::Busy(format!(
                "this tenant already runs {count} export(s), as many as it may at once; \
                 retry when one has finished"
            )));
        }
        *count += 1;
        Ok(TenantShare {
            tenant,
            running: Arc::clone(&self.running),
        })
    }

    /// Places free now.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: Duration = Duration::from_secs(600);

    fn tenant() -> OrgId {
        OrgId(uuid::Uuid::new_v4())
    }

    #[tokio::test]
    async fn a_tenant_takes_at_most_half_and_gets_its_place_back_when_an_export_ends() {
        let admission = ExportAdmission::new(4, LONGEST);
        let (a, b) = (tenant(), tenant());
        let first = admission.admit(a).await.expect("room");
        let second = admission.admit(a).await.expect("room");
        let refused = admission.admit(a).await;
        assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
        let other = admission.admit(b).await.expect("another tenant has room");
        assert_eq!(admission.free(), 1);
        drop(first);
        let again = admission.admit(a).await.expect("a place came back");
        drop((second, other, again));
        assert_eq!(admission.free(), 4);
        assert!(admission.running.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_place_is_one_export_and_a_refusal_takes_nothing() {
        let admission = ExportAdmission::new(1, LONGEST);
        let a = tenant();
        let only = admission.admit(a).await.expect("room");
        assert!(matches!(admission.admit(a).await, Err(Error::Busy(_))));
        drop(only);
        assert_eq!(admission.free(), 1);
        let again = admission.admit(a).await.expect("room again");
        drop(again);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_server_makes_an_export_wait_a_little_then_refuses_it() {
        let admission = ExportAdmission::new(2, LONGEST);
        let (a, b, c) = (tenant(), tenant(), tenant());
        let held = (
            admission.admit(a).await.expect("room"),
            admission.admit(b).await.expect("room"),
        );
        let started = tokio::time::Instant::now();
        let refused = admission.admit(c).await;
        assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
        assert_eq!(started.elapsed(), PATIENCE);
        assert!(
            !admission.running.lock().unwrap().contains_key(&c),
            "a refused export leaves no share behind"
        );
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(c).await.map(|slot| slot.deadline) }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(held);
        let deadline = waiting
            .await
            .expect("joined")
            .expect("admitted once room came");
        assert!(deadline > started + LONGEST);
    }
}
