//! Database connections and the one place where `DbErr` becomes a domain error.

use std::time::Duration;

use orgsync_domain::error::ConflictCode;
use orgsync_domain::ports::HealthCheck;
use orgsync_domain::Error;
use orgsync_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlErr};

/// A connection pool to PostgreSQL or SQLite; cheap to clone.
#[derive(Clone, Debug)]
pub struct Database {
    conn: DatabaseConnection,
}

impl Database {
    /// Connects to `url` (`postgres://...` or `sqlite://...`). A SQLite file is
    /// created if missing.
    ///
    /// # Errors
    /// When the URL is malformed or the server cannot be reached.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(0)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // One writer at a time is SQLite's model; a single connection avoids
            // "database is locked" under concurrent requests in embedded mode.
            options.max_connections(1);
        }
        let conn = sea_orm::Database::connect(options).await?;
        if conn.get_database_backend() == DbBackend::Sqlite {
            conn.execute_unprepared("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON;")
                .await?;
        }
        Ok(Self { conn })
    }

    /// Applies every pending migration.
    ///
    /// # Errors
    /// When a migration fails; the failing migration is rolled back where the engine allows.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.conn, None).await
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }
}

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
    match err {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => Error::Unavailable(err.to_string()),
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(ref inner))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(ref inner))
            if is_connection_failure(inner) =>
        {
            Error::Unavailable(err.to_string())
        }
        other => Error::Internal(anyhow::Error::new(other)),
    }
}

fn is_connection_failure(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    matches!(
        err,
        E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Tls(_)
    )
}

/// Readiness of the database: a trivial query must succeed.
pub struct DatabaseHealth(pub Database);

#[async_trait::async_trait]
impl HealthCheck for DatabaseHealth {
    fn component(&self) -> &'static str {
        "database"
    }

    async fn check(&self) -> Result<(), String> {
        self.0
            .conn
            .execute_unprepared("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
