use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{RunStatus, SyncScope};
use crate::membership::ChangeCounts;
use crate::org::OrgId;

crate::id::uuid_id!(
    /// Identifies one org's part of a sync run: what the queue carries.
    JobId
);

/// One org's part of a sync: what a worker takes from the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncJob {
    pub id: JobId,
    pub org_id: OrgId,
    pub scope: SyncScope,
    pub status: RunStatus,
    pub attempts: u32,
    /// The worker process that took the latest attempt (`host:pid`).
    pub worker: Option<String>,
    pub counts: ChangeCounts,
    pub error: Option<String>,
    /// The applied change set with per-member reasons (only when asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// Retry delay before attempt `attempt + 1`: exponential from `base`, capped,
/// with "equal jitter" (half fixed, half random) so that jobs failing
/// together do not retry together. `random` is uniform in `[0, 1)`.
pub fn retry_delay(attempt: u32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exponential = base.saturating_mul(1u32 << attempt.min(20));
    let capped = exponential.min(cap);
    let half = capped / 2;
    half + half.mul_f64(random.clamp(0.0, 1.0))
}

/// A run's status from its jobs': running while any runs, queued while any
/// waits, failed if any failed, otherwise succeeded.
pub fn run_status(jobs: &[SyncJob]) -> RunStatus {
    let any = |s: RunStatus| jobs.iter().any(|j| j.status == s);
    if any(RunStatus::Running) {
        RunStatus::Running
    } else if any(RunStatus::Queued) {
        if jobs.iter().any(|j| j.status != RunStatus::Queued) {
            RunStatus::Running
        } else {
            RunStatus::Queued
        }
    } else if any(RunStatus::Failed) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn retry_delays_grow_stay_within_the_cap_and_keep_half_fixed(attempt in 0u32..40, random in 0.0f64..1.0) {
            let (base, cap) = (Duration::from_millis(500), Duration::from_secs(60));
            let delay = retry_delay(attempt, base, cap, random);
            prop_assert!(delay <= cap);
            let ceiling = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
            prop_assert!(delay >= ceiling / 2);
        }
    }

    fn job(status: RunStatus) -> SyncJob {
        SyncJob {
            id: JobId::new(),
            org_id: OrgId::new(),
            scope: SyncScope::Both,
            status,
            attempts: 0,
            worker: None,
            counts: ChangeCounts::default(),
            error: None,
            report: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_run_is_done_only_when_every_job_is() {
        use RunStatus::*;
        assert_eq!(run_status(&[job(Queued), job(Queued)]), Queued);
        assert_eq!(run_status(&[job(Succeeded), job(Queued)]), Running);
        assert_eq!(run_status(&[job(Succeeded), job(Running)]), Running);
        assert_eq!(run_status(&[job(Succeeded), job(Failed)]), Failed);
        assert_eq!(run_status(&[job(Succeeded), job(Succeeded)]), Succeeded);
    }
}
