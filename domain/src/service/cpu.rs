//! Where a use case's long stretches of pure computation run.
//!
//! A plan of a million-member org computes for seconds between awaits
//! (indexing the members, pairing pages of users with their groups,
//! deciding removals). Run in place on a runtime's worker thread, such a
//! stretch holds every task queued behind it on that thread: another
//! tenant's IdP change, a job's heartbeat.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work`, a stretch of computation with no await in it, so that the
/// runtime's other tasks go on meanwhile: on a multi-threaded runtime the
/// thread first hands its queued tasks to another
/// ([`tokio::task::block_in_place`]); a single-threaded runtime (a test's)
/// has no other thread, and runs it in place.
pub fn computing<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::computing;

    /// With one worker thread, a task queued behind a stretch of
    /// computation runs only if the stretch hands it over: here the stretch
    /// waits for that task, and gives up after 10 s if it never ran.
    #[test]
    fn a_stretch_of_computation_lets_the_runtimes_other_tasks_run() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("a runtime");
        let other_ran = Arc::new(AtomicBool::new(false));
        let waited = runtime.block_on({
            let other_ran = other_ran.clone();
            async move {
                let stretch = tokio::spawn(async move {
                    let flag = other_ran.clone();
                    // Queued on the one worker before the stretch starts.
                    let other = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
                    let waited = computing(|| {
                        let started = Instant::now();
                        while !other_ran.load(Ordering::SeqCst)
                            && started.elapsed() < Duration::from_secs(10)
                        {
                            std::hint::spin_loop();
                        }
                        started.elapsed()
                    });
                    other.await.expect("the other task");
                    waited
                });
                stretch.await.expect("the stretch")
            }
        });
        assert!(other_ran.load(Ordering::SeqCst));
        assert!(
            waited < Duration::from_secs(10),
            "the other task waited for the whole stretch"
        );
    }
}
