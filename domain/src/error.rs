//! The domain's error contract. Adapters translate their failures into these
//! once, at the boundary; the API maps each variant to exactly one response.

/// Failures a use case can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target does not exist, or exists outside what the caller may see.
    /// The two are deliberately indistinguishable so that existence never leaks.
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    /// The caller may see the target but may not perform this action on it.
    #[error("{0}")]
    Forbidden(String),

    /// Input failed validation; nothing was changed.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },

    /// The request conflicts with current state (a duplicate, a rule that
    /// forbids the change in this state); nothing was changed.
    #[error("{detail}")]
    Conflict { code: ConflictCode, detail: String },

    /// The change removes or suspends members and was not confirmed with the
    /// token of exactly what it would do now; nothing was changed.
    #[error("{}", .0.detail)]
    ConfirmationRequired(Box<crate::sync::ConfirmationNeeded>),

    /// The caller's expected version (`If-Match`) is no longer current; nothing was changed.
    #[error("{0}")]
    PreconditionFailed(String),

    /// A backing service (database, queue) is unreachable; retrying later may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),

    /// The process is at capacity for this kind of work and the request did
    /// not wait longer for room; nothing was read or changed, and retrying
    /// later may succeed.
    #[error("{0}")]
    Busy(String),

    /// A failure with no meaning to the caller (a bug, a corrupt row).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// What a tenant may be shown about a failure of background work: a
    /// stable code and a sentence, never the cause (raw database or queue
    /// text belongs in the operator's log).
    pub fn public_summary(&self) -> String {
        match self {
            Self::NotFound { entity } => format!("not-found: the {entity} no longer exists"),
            Self::Forbidden(_) => "forbidden: the change is not allowed".into(),
            // Domain-written sentences, safe to show.
            Self::Invalid { .. }
            | Self::Conflict { .. }
            | Self::ConfirmationRequired(_)
            | Self::PreconditionFailed(_) => {
                format!("rejected: {self}")
            }
            Self::Unavailable(_) => {
                "unavailable: the database or queue did not answer; the work is retried".into()
            }
            Self::Busy(_) => "busy: the server had no room for the work; it is retried".into(),
            Self::Internal(_) => {
                "internal: an unexpected error occurred; it has been logged".into()
            }
        }
    }
}

/// Why a request conflicts with the current state; each has its own problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictCode {
    /// A unique value (slug, userName, ...) is already taken.
    AlreadyExists,
    /// The organization still has child organizations.
    HasChildren,
    /// Members joined the organization while it was being deleted.
    HasMembers,
    /// The operation needs directory sync on.
    DirectorySyncDisabled,
    /// SCIM provisioning needs a connection with directory sync on that reaches the org.
    NoDirectory,
    /// The change removes or suspends members and was not confirmed with its preview.
    ConfirmationRequired,
    /// The field is governed by the directory (a group mapping, a synced attribute).
    GovernedByDirectory,
    /// Another writer (a sync job, the IdP's changes being applied) is
    /// changing the org's members right now; retry in a moment.
    SyncInProgress,
    /// The org has as many of these as one org may have.
    LimitReached,
}

impl ConflictCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyExists => "already-exists",
            Self::HasChildren => "has-children",
            Self::HasMembers => "has-members",
            Self::DirectorySyncDisabled => "directory-sync-disabled",
            Self::NoDirectory => "no-directory",
            Self::ConfirmationRequired => "confirmation-required",
            Self::LimitReached => "limit-reached",
            Self::GovernedByDirectory => "governed-by-directory",
            Self::SyncInProgress => "sync-in-progress",
        }
    }
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(code: ConflictCode, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// This error, or, when it is a `LimitReached` conflict (a store that
    /// found the bound reached), `reached()`: the caller's words for it.
    #[must_use]
    pub fn when_limit_reached(self, reached: impl FnOnce() -> Self) -> Self {
        match self {
            Self::Conflict {
                code: ConflictCode::LimitReached,
                ..
            } => reached(),
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
