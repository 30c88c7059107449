//! The plan budget: how many members' worth of full plans this process holds
//! at once.
//!
//! A full plan holds its org's members and its changes in memory until it is
//! applied (the directory is read in pages; the members are not). Jobs run
//! side by side and admins preview and save while they do, so without a
//! bound four plans of million-member orgs would hold four times the memory
//! of one. A plan reserves what it will hold before it reads anything and
//! keeps it until it is dropped. Plans wait in arrival order while the budget
//! is spent, so a large one is not overtaken forever by small ones; one
//! larger than the whole budget waits until it is free and then runs alone.
//!
//! Background work waits its turn however long it takes. A request someone
//! is waiting on (an admin's preview, mode switch or mapping save) waits at
//! most the budget's patience and then answers `Busy`, having read and
//! changed nothing, so a tenant's request never hangs behind another's
//! million-member sync.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct PlanBudget {
    slots: Arc<Semaphore>,
    total: u32,
    patience: Duration,
}

/// Who is waiting for a plan's share of the budget, and so for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiter {
    /// Background work (a sync job, catching up with the directory): waits
    /// its turn however long it takes.
    Background,
    /// A request someone is waiting on: waits at most the budget's patience.
    Request,
}

/// A plan's share of the [`PlanBudget`], given back when dropped.
#[derive(Debug)]
pub struct PlanPermit {
    _slots: OwnedSemaphorePermit,
}

impl PlanBudget {
    /// A budget of `size`: members and directory users a plan holds, counted
    /// alike (each is one entry of a plan's working set). A request waits at
    /// most `patience` for its share.
    #[must_use]
    pub fn new(size: u64, patience: Duration) -> Self {
        let total = u32::try_from(size).unwrap_or(u32::MAX).max(1);
        Self {
            slots: Arc::new(Semaphore::new(total as usize)),
            total,
            patience,
        }
    }

    /// Waits until `size` of the budget is free (all of it when `size` is
    /// larger) and takes it.
    ///
    /// # Errors
    /// `Busy` when a [`Waiter::Request`] waited its patience out; it leaves
    /// the line and takes nothing.
    pub async fn reserve(&self, size: u64, waiter: Waiter) -> Result<PlanPermit> {
        let wanted = u32::try_from(size).unwrap_or(u32::MAX).clamp(1, self.total);
        let acquire = Arc::clone(&self.slots).acquire_many_owned(wanted);
        let acquired = match waiter {
            Waiter::Background => acquire.await,
            Waiter::Request => tokio::time::timeout(self.patience, acquire)
                .await
                .map_err(|_| {
                    Error::Busy(format!(
                        "other syncs hold this server's planning capacity (a plan of {size} members \
                         and directory users waited {} s); nothing was changed; retry shortly",
                        self.patience.as_secs_f32()
                    ))
                })?,
        };
        let slots = acquired
            .map_err(|e| Error::Internal(anyhow::anyhow!("the plan budget was closed: {e}")))?;
        Ok(PlanPermit { _slots: slots })
    }

    /// What no plan holds now.
    #[must_use]
    pub fn free(&self) -> u64 {
        self.slots.available_permits() as u64
    }

    #[must_use]
    pub fn total(&self) -> u64 {
        u64::from(self.total)
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn plans_within_the_budget_run_together_and_one_over_it_waits_for_room() {
        let budget = PlanBudget::new(100, PATIENCE);
        let first = budget.reserve(60, Waiter::Background).await.expect("free");
        let second = budget.reserve(40, Waiter::Background).await.expect("free");
        assert_eq!(budget.free(), 0);
        let mut third = Box::pin(budget.reserve(30, Waiter::Background));
        assert!((&mut third).now_or_never().is_none(), "no room yet");
        drop(second);
        let third = third.await.expect("room after the second");
        assert_eq!(budget.free(), 10);
        drop((first, third));
        assert_eq!(budget.free(), 100);
    }

    #[tokio::test]
    async fn a_plan_larger_than_the_budget_waits_for_all_of_it_and_runs_alone() {
        let budget = PlanBudget::new(100, PATIENCE);
        let small = budget.reserve(1, Waiter::Background).await.expect("free");
        let mut huge = Box::pin(budget.reserve(5_000_000_000, Waiter::Background));
        assert!((&mut huge).now_or_never().is_none());
        drop(small);
        let huge = huge.await.expect("the whole budget once free");
        assert_eq!(budget.free(), 0);
        assert!(budget
            .reserve(1, Waiter::Background)
            .now_or_never()
            .is_none());
        drop(huge);
        assert_eq!(budget.free(), 100);
    }

    #[tokio::test]
    async fn a_waiting_plan_is_not_overtaken_by_smaller_ones_that_arrive_later() {
        let budget = PlanBudget::new(100, PATIENCE);
        let running = budget.reserve(50, Waiter::Background).await.expect("free");
        let mut large = Box::pin(budget.reserve(80, Waiter::Background));
        assert!((&mut large).now_or_never().is_none());
        // 50 are free, but the large plan asked first.
        let mut small = Box::pin(budget.reserve(10, Waiter::Background));
        assert!((&mut small).now_or_never().is_none());
        drop(running);
        let large = large.await.expect("first in line");
        let small = small.await.expect("room beside it");
        assert_eq!(budget.free(), 10);
        drop((large, small));
    }

    #[tokio::test]
    async fn an_empty_plan_still_takes_a_slot_and_a_zero_budget_is_one() {
        let budget = PlanBudget::new(0, PATIENCE);
        assert_eq!(budget.total(), 1);
        let held = budget.reserve(0, Waiter::Background).await.expect("free");
        assert!(budget
            .reserve(0, Waiter::Background)
            .now_or_never()
            .is_none());
        drop(held);
    }

    #[tokio::test]
    async fn a_request_waits_at_most_its_patience_then_is_busy_and_leaves_the_line() {
        let budget = PlanBudget::new(100, Duration::from_millis(50));
        let job = budget.reserve(80, Waiter::Background).await.expect("free");
        let refused = budget.reserve(30, Waiter::Request).await;
        assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
        // It took nothing and holds no place: room for the next one is as before.
        assert_eq!(budget.free(), 20);
        let small = budget.reserve(20, Waiter::Request).await.expect("room");
        drop((job, small));
        assert_eq!(budget.free(), 100);
    }

    #[tokio::test]
    async fn a_request_given_room_within_its_patience_goes_ahead() {
        let budget = PlanBudget::new(100, Duration::from_secs(60));
        let job = budget.reserve(80, Waiter::Background).await.expect("free");
        let mut request = Box::pin(budget.reserve(30, Waiter::Request));
        assert!((&mut request).now_or_never().is_none());
        drop(job);
        let granted = request.await.expect("room before its patience ran out");
        assert_eq!(budget.free(), 70);
        drop(granted);
    }
}
