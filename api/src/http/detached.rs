//! Changes that must not stop halfway because their request did.
//!
//! actix-web drops a handler's future when its client goes away (a closed
//! tab, a proxy's timeout), and a mode switch, a mapping save, a source
//! change or an org's deletion applies its members in committed batches
//! under the org's writer lease. Dropped between two batches, it would leave
//! the org half changed and the lease held until it expires, blocking every
//! sync meanwhile. Run through [`to_completion`], it finishes on its own and
//! releases the lease whatever became of the request; the request, if still
//! there, gets the outcome.

use std::future::Future;

use orgsync_domain::Error;

use super::problem::ApiError;

/// Runs `change` as a task of its own and waits for its outcome.
///
/// # Errors
/// `change`'s own; `Internal` if the task panicked.
pub(super) async fn to_completion<T: Send + 'static>(
    change: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, ApiError> {
    let outcome = tokio::spawn(change)
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("a detached change failed: {e}")))?;
    Ok(outcome?)
}
