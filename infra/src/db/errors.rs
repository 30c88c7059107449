//! The one place where `DbErr` becomes a domain error: what the caller is
//! told when a statement fails, and whether it may retry.

use orgsync_domain::error::ConflictCode;
use orgsync_domain::Error;
use sea_orm::{DbErr, SqlErr};

/// Translates a database error into the domain's terms. Constraint violations
/// become conflicts named by `on_unique`; lost connections become `Unavailable`.
pub(crate) fn sql_err(err: DbErr, on_unique: &str) -> Error {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            Error::conflict(ConflictCode::AlreadyExists, on_unique)
        }
        _ => db_err(err),
    }
}

/// Translates a database error with no expected constraint violation.
pub(crate) fn db_err(err: DbErr) -> Error {
    if let Some(SqlErr::ForeignKeyConstraintViolation(message)) = err.sql_err() {
        // What the write refers to was deleted while it ran (an org deleted
        // while an admin, a sign-in or a job wrote to it): the caller gets
        // the answer the same request gets a moment later.
        return Error::NotFound {
            entity: referenced_entity(&message),
        };
    }
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => Error::Unavailable(err.to_string()),
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(ref inner))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(ref inner))
            if is_connection_failure(inner) =>
        {
            Error::Unavailable(err.to_string())
        }
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(ref inner))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(ref inner))
            if lost_to_a_concurrent_change(inner) =>
        {
            // Rolled back whole, so nothing changed; the same request a
            // moment later goes through. A 503 with Retry-After says so
            // (SCIM clients retry it), where a 500 says the server is broken.
            tracing::warn!(error = %err, "a statement lost to a concurrent change");
            Error::Busy(
                "the change met a concurrent change to the same records and was rolled back; retry it"
                    .into(),
            )
        }
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(ref inner))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(ref inner))
            if unstorable_input(inner).is_some() =>
        {
            let message = unstorable_input(inner).unwrap_or_default();
            Error::invalid("body", message)
        }
        other => Error::Internal(anyhow::Error::new(other)),
    }
}

/// What a failed foreign key refers to, by its constraint's name
/// (PostgreSQL names it; SQLite does not).
fn referenced_entity(message: &str) -> &'static str {
    if message.contains("org_id_fkey") || message.contains("parent_id_fkey") {
        "organization"
    } else if message.contains("connection_id_fkey") {
        "connection"
    } else {
        "record it refers to"
    }
}

/// Input the database refuses to store, as a sentence for the caller: a
/// request carrying it is the caller's mistake (400/422), not a server error.
/// The use cases validate what they know of; this catches the rest at the one
/// place every statement passes.
fn unstorable_input(err: &sea_orm::sqlx::Error) -> Option<&'static str> {
    let code = err.as_database_error()?.code()?;
    match code.as_ref() {
        // character_not_in_repertoire, untranslatable_character: NUL in text or JSON.
        "22021" | "22P05" => Some("text may not contain NUL (\\u0000) characters"),
        // program_limit_exceeded: e.g. a value too large for an index entry.
        "54000" => Some("a value is too long to be stored"),
        _ => None,
    }
}

/// A statement the database rolled back to let a concurrent one through:
/// a deadlock (`40P01`), a serialization failure (`40001`) or a lock it
/// would not wait for (`55P03`). Lock order prevents the deadlocks we know
/// of; this keeps one we do not from reading as a server fault.
fn lost_to_a_concurrent_change(err: &sea_orm::sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| matches!(code.as_ref(), "40P01" | "40001" | "55P03"))
}

fn is_connection_failure(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    if let Some(code) = err.as_database_error().and_then(|e| e.code()) {
        // Class 08 (connection exception) and 57P (the server shutting down,
        // starting up or dropping the session) say the server went away, not
        // that the statement was wrong: a pooled connection learns it so.
        return code.starts_with("08") || code.starts_with("57P");
    }
    matches!(
        err,
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_)
    )
}

#[cfg(test)]
mod tests {
    use super::db_err;
    use crate::db::Database;
    use orgsync_domain::Error;
    use sea_orm::ConnectionTrait;

    /// What the database answers a statement that raises `code`, through `db_err`.
    async fn raised(db: &Database, code: &str) -> Error {
        let raise =
            format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$");
        let failed = db
            .connection()
            .execute_unprepared(&raise)
            .await
            .expect_err("the statement raises");
        db_err(failed)
    }

    #[tokio::test]
    async fn a_statement_that_lost_to_a_concurrent_change_is_busy_not_internal() {
        let url = std::env::var("ORGSYNC_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let db = Database::connect(&url, 1).await.expect("PostgreSQL is up");
        for code in ["40P01", "40001", "55P03"] {
            let error = raised(&db, code).await;
            assert!(matches!(error, Error::Busy(_)), "{code}: {error:?}");
        }
        // Other failures keep their meaning.
        assert!(matches!(raised(&db, "P0001").await, Error::Internal(_)));
        assert!(matches!(raised(&db, "22021").await, Error::Invalid { .. }));
    }
}
