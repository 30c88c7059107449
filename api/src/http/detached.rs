//! Where a request's plans and changes run: not on the HTTP worker that
//! took the request.
//!
//! An HTTP worker is one thread serving every connection it accepted, any
//! tenant's. A plan of a million-member org computes for seconds between
//! awaits; run on that worker, it held every request of its connections
//! meanwhile (another tenant's reads waited 205 ms behind a 100,000-member
//! preview). Plans and changes run on the process's multi-threaded runtime
//! instead ([`Heavy`]), where the jobs run and where a stretch of
//! computation hands the thread's other tasks over first.
//!
//! Changes must also not stop halfway because their request did: actix-web
//! drops a handler's future when its client goes away (a closed tab, a
//! proxy's timeout), and a mode switch, a mapping save, a source change or
//! an org's deletion applies its members in committed batches under the
//! org's writer lease. Dropped between two batches, it would leave the org
//! half changed and the lease held until it expires, blocking every sync
//! meanwhile. Run through [`Heavy::to_completion`], it finishes on its own
//! and releases the lease whatever became of the request; the request, if
//! still there, gets the outcome. A preview ([`Heavy::run`]) only reads,
//! and stops with its request.

use std::future::Future;

use orgsync_domain::Error;
use tokio::runtime::Handle;
use tokio_util::task::AbortOnDropHandle;

use super::problem::ApiError;

/// The runtime a request's plans and changes run on: the one the process
/// started on (`serve`'s multi-threaded runtime; a test's own).
#[derive(Clone, Debug)]
pub struct Heavy(Handle);

impl Heavy {
    /// The runtime this is called on.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    #[must_use]
    pub fn current() -> Self {
        Self(Handle::current())
    }

    /// Runs `change` as a task of its own, to its end whatever becomes of
    /// the request, and waits for its outcome.
    ///
    /// # Errors
    /// `change`'s own; `Internal` if the task panicked.
    pub async fn to_completion<T: Send + 'static>(
        &self,
        change: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, ApiError> {
        let outcome = self
            .0
            .spawn(change)
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("a detached change failed: {e}")))?;
        Ok(outcome?)
    }

    /// Runs `read` as a task of its own, stopped if the request is dropped.
    ///
    /// # Errors
    /// `read`'s own; `Internal` if the task panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        read: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, ApiError> {
        let outcome = AbortOnDropHandle::new(self.0.spawn(read))
            .await
            .map_err(|e| Error::Internal(anyhow::anyhow!("a plan's task failed: {e}")))?;
        Ok(outcome?)
    }
}
