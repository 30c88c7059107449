//! Failures of SCIM operations, in RFC 7644 §3.12 terms.

use crate::error::ConflictCode;
use crate::scim::{FilterError, PatchError};

/// A SCIM operation's failure, by RFC 7644 error kind (the API maps each
/// to one HTTP status and `scimType`).
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// No valid bearer token for this connection (or directory sync is off).
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// A unique attribute (userName) is taken in this directory.
    #[error("{0}")]
    Uniqueness(String),
    #[error("{0}")]
    InvalidValue(String),
    #[error("{0}")]
    InvalidSyntax(String),
    #[error("{0}")]
    InvalidFilter(String),
    #[error("{0}")]
    InvalidPath(String),
    #[error("{0}")]
    NoTarget(String),
    #[error("{0}")]
    Mutability(String),
    #[error("{0}")]
    TooMany(String),
    /// The connection sent more requests than its rate limit allows.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The request body exceeds the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// `If-Match` named a version that is no longer current.
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<crate::Error> for ScimError {
    fn from(err: crate::Error) -> Self {
        use crate::Error as E;
        match err {
            E::NotFound { entity } => Self::NotFound(format!("{entity} not found")),
            E::Conflict { code, detail } => match code {
                ConflictCode::AlreadyExists => Self::Uniqueness(detail),
                ConflictCode::GovernedByDirectory => Self::Mutability(detail),
                ConflictCode::DirectorySyncDisabled => Self::Unauthorized(detail),
                ConflictCode::HasChildren
                | ConflictCode::HasMembers
                | ConflictCode::NoDirectory
                | ConflictCode::ConfirmationRequired
                | ConflictCode::SyncInProgress
                | ConflictCode::LimitReached => Self::InvalidValue(detail),
            },
            E::Invalid { field, message } => Self::InvalidValue(format!("{field}: {message}")),
            E::Forbidden(detail) => Self::Mutability(detail),
            E::PreconditionFailed(detail) => Self::PreconditionFailed(detail),
            E::Unavailable(detail) | E::Busy(detail) => Self::Unavailable(detail),
            E::Internal(cause) => Self::Internal(cause),
            // Only admin changes ask for confirmation; reaching here is a bug.
            E::ConfirmationRequired(needed) => Self::Internal(anyhow::anyhow!(
                "a SCIM request asked for confirmation: {}",
                needed.detail
            )),
        }
    }
}

impl From<FilterError> for ScimError {
    fn from(err: FilterError) -> Self {
        Self::InvalidFilter(err.to_string())
    }
}

impl From<PatchError> for ScimError {
    fn from(err: PatchError) -> Self {
        let detail = err.to_string();
        match err {
            PatchError::InvalidPath(_) => Self::InvalidPath(detail),
            PatchError::NoTarget(_) => Self::NoTarget(detail),
            PatchError::InvalidValue(_) => Self::InvalidValue(detail),
            PatchError::Mutability(_) => Self::Mutability(detail),
            PatchError::InvalidSyntax(_) => Self::InvalidSyntax(detail),
        }
    }
}
