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
    /// A request past one of its budgets, which it names.
    #[error("{budget} is spent; retry after {retry_after_secs} s")]
    RateLimited {
        budget: RateBudget,
        retry_after_secs: u64,
    },
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

/// Which budget a refused SCIM request ran out of: the IdP's admin acts on
/// each differently (slow one integration down, spread a tenant's pushes
/// out, fix a token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateBudget {
    /// The connection's own requests per second.
    Connection,
    /// What all the connections of the connection's tenant share.
    Tenant,
    /// Failed authentications from the caller's address.
    FailedAuthentications,
}

impl std::fmt::Display for RateBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connection => "this connection's SCIM request budget",
            Self::Tenant => "the SCIM request budget this tenant's connections share",
            Self::FailedAuthentications => "the budget of failed authentications from this address",
        })
    }
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
