//! Database connections and the one place where `DbErr` becomes a domain error.

use std::time::Duration;

use orgsync_domain::error::ConflictCode;
use orgsync_domain::ports::HealthCheck;
use orgsync_domain::Error;
use orgsync_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    FromQueryResult, SqlErr, Statement, TryGetable,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a pooled PostgreSQL connection may sit idle and still be handed
/// out without a ping. Pinging on every checkout (sqlx's default) doubles the
/// round trips of every statement; a connection in steady use has just proved
/// itself, and one idle longer (say, across a server restart) is checked
/// first, as pgbouncer's `server_check_delay` does.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// Whether `url` names a server on this host and leaves TLS to the default
/// (`prefer`, which would encrypt). TLS to the same host protects nothing
/// and costs both sides CPU on every query, so such a URL gets `allow`:
/// plain first, TLS only if the server insists (a `hostssl`-only
/// `pg_hba.conf`). A URL that names `sslmode` is followed as written.
fn loopback_without_tls_choice(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let chooses_tls = parsed.query_pairs().any(|(key, _)| {
        key.eq_ignore_ascii_case("sslmode") || key.eq_ignore_ascii_case("ssl-mode")
    });
    let loopback = match parsed.host() {
        // A `postgres:` URL's IPv4 host is an opaque name to `url`.
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    loopback && !chooses_tls
}

/// The PostgreSQL pool, built with sqlx directly so that a connection is
/// pinged only after [`IDLE_BEFORE_PING`] (sea-orm offers all or nothing).
async fn postgres_pool(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
    let conn_err = |e: sea_orm::sqlx::Error| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e));
    let mut options = url
        .parse::<PgConnectOptions>()
        .map_err(conn_err)?
        .disable_statement_logging();
    if loopback_without_tls_choice(url) {
        options = options.ssl_mode(sea_orm::sqlx::postgres::PgSslMode::Allow);
    }
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(CONNECT_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(conn_err)?;
    Ok(sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(
        pool,
    ))
}

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
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            return Ok(Self {
                conn: postgres_pool(url, max_connections).await?,
            });
        }
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(0)
            .connect_timeout(CONNECT_TIMEOUT)
            .acquire_timeout(CONNECT_TIMEOUT)
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

    /// A pool of its own, of `max_connections`, to the database at `url`
    /// (the one `self` reaches), for work that must not queue behind this
    /// pool's. It opens connections only when used. SQLite is one file
    /// written through one connection, in one process: `self` again.
    ///
    /// # Errors
    /// As [`Database::connect`].
    pub async fn companion(&self, url: &str, max_connections: u32) -> Result<Self, DbErr> {
        if self.backend() == DbBackend::Postgres {
            Self::connect(url, max_connections).await
        } else {
            Ok(self.clone())
        }
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

    /// `sql` with its `$n` placeholders bound to `values`, for this engine.
    pub(crate) fn stmt(&self, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        Statement::from_sql_and_values(self.backend(), sql, values)
    }

    /// The one column each row of `sql` selects.
    pub(crate) async fn column<T: TryGetable>(
        &self,
        sql: &str,
        values: Vec<sea_orm::Value>,
    ) -> orgsync_domain::Result<Vec<T>> {
        let statement = self.stmt(sql, values);
        let rows = self.conn.query_all(statement).await.map_err(db_err)?;
        rows.iter()
            .map(|row| row.try_get_by_index(0).map_err(db_err))
            .collect()
    }

    /// Runs one statement; how many rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        values: Vec<sea_orm::Value>,
    ) -> orgsync_domain::Result<u64> {
        let result = self
            .conn
            .execute(self.stmt(sql, values))
            .await
            .map_err(db_err)?;
        Ok(result.rows_affected())
    }

    /// The one column of the row `sql` selects, if it selects one.
    pub(crate) async fn value<T: TryGetable>(
        &self,
        sql: &str,
        values: Vec<sea_orm::Value>,
    ) -> orgsync_domain::Result<Option<T>> {
        match self.conn.query_one(self.stmt(sql, values)).await {
            Ok(Some(row)) => row.try_get_by_index(0).map(Some).map_err(db_err),
            Ok(None) => Ok(None),
            Err(e) => Err(db_err(e)),
        }
    }

    /// Sync jobs by state (for metrics).
    ///
    /// # Errors
    /// When the database cannot be queried.
    pub async fn job_counts(&self) -> Result<Vec<(String, i64)>, DbErr> {
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            status: String,
            n: i64,
        }
        let rows = Row::find_by_statement(sea_orm::Statement::from_string(
            self.backend(),
            "SELECT status, COUNT(*) AS n FROM sync_jobs GROUP BY status",
        ))
        .all(&self.conn)
        .await?;
        Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
    }

    /// Directory changes numbered but not yet applied, summed over orgs (for metrics).
    ///
    /// # Errors
    /// When the database cannot be queried.
    pub async fn pending_events(&self) -> Result<i64, DbErr> {
        self.count(
            "SELECT CAST(SUM(c.event_seq - oc.applied_seq) AS BIGINT) AS n FROM org_directory_cursors oc \
             JOIN enterprise_connections c ON c.id = oc.connection_id",
        )
        .await
        .map(|n| n.max(0))
    }

    /// Orgs whose removals deletion protection holds for an admin.
    pub async fn held_removal_orgs(&self) -> Result<i64, DbErr> {
        self.count("SELECT COUNT(*) AS n FROM held_removals").await
    }

    /// Webhook deliveries waiting to be sent (due or backing off).
    pub async fn pending_deliveries(&self) -> Result<i64, DbErr> {
        self.count("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'")
            .await
    }

    /// The one number `sql` selects as `n`; nothing (a sum over no rows) is 0.
    async fn count(&self, sql: &str) -> Result<i64, DbErr> {
        #[derive(sea_orm::FromQueryResult)]
        struct Row {
            n: Option<i64>,
        }
        let row = Row::find_by_statement(Statement::from_string(self.backend(), sql))
            .one(&self.conn)
            .await?;
        Ok(row.and_then(|r| r.n).unwrap_or(0))
    }

    /// Open and idle pool connections.
    pub fn pool_usage(&self) -> (u32, usize) {
        match self.backend() {
            DbBackend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), pool.num_idle())
            }
            _ => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle())
            }
        }
    }
}

/// Inside `txn`, before inserting one more row of `org` into `table` (its
/// `column` names the org): locks the org's row, so concurrent inserts of
/// one org's rows take turns, then refuses with `Conflict(LimitReached)`
/// when `org` has `at_most` rows there already. A bound checked with a
/// count before the insert holds only one request at a time; this one
/// holds for requests sent at once. (SQLite: the transaction holds the one
/// connection, which orders them already.)
pub(crate) async fn room_for_one_more(
    db: &Database,
    txn: &DatabaseTransaction,
    org: uuid::Uuid,
    (table, column): (&str, &str),
    at_most: u64,
) -> orgsync_domain::Result<()> {
    if db.backend() == DbBackend::Postgres {
        let lock = "SELECT id FROM organizations WHERE id = $1 FOR NO KEY UPDATE";
        txn.execute(db.stmt(lock, vec![org.into()]))
            .await
            .map_err(db_err)?;
    }
    let count = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
    let rows = txn
        .query_one(db.stmt(&count, vec![org.into()]))
        .await
        .map_err(db_err)?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()
        .map_err(db_err)?
        .unwrap_or(0);
    if u64::try_from(rows).unwrap_or(0) >= at_most {
        return Err(Error::conflict(
            ConflictCode::LimitReached,
            format!("at most {at_most} of these per organization"),
        ));
    }
    Ok(())
}

/// Refreshes PostgreSQL's statistics of `table` after a bulk write of
/// `written` rows that is a large share of it (a tenth or more of what the
/// planner believes it holds). The planner's row estimates come from the
/// last ANALYZE: a table it saw empty that now holds a million members
/// gets plans for an empty table, such as a lookup of 500 members by
/// directory user that reads every member of the org (300 ms, not 9 ms).
/// Autovacuum would analyze it eventually, a minute later at best, and not
/// at all where it is off; a bulk write knows at once. Small writes, and
/// other engines, skip it.
pub(crate) async fn analyze_after_bulk_write(
    conn: &impl ConnectionTrait,
    table: &'static str,
    written: usize,
) -> orgsync_domain::Result<()> {
    const SMALLEST_BULK_WRITE: usize = 1_000;
    if written < SMALLEST_BULK_WRITE || conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let believed = conn
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT reltuples::float8 AS believed FROM pg_class WHERE oid = to_regclass($1)",
            [table.into()],
        ))
        .await
        .map_err(db_err)?
        .and_then(|row| row.try_get::<f64>("", "believed").ok())
        .unwrap_or(-1.0);
    // -1: never analyzed. Rows in a table of a few billion fit an f64 exactly enough.
    if believed >= 0.0 && (written as f64) * 10.0 < believed {
        return Ok(());
    }
    conn.execute_unprepared(&format!("ANALYZE {table}"))
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Runs a query over a change log planned afresh on every call (PostgreSQL's
/// unnamed statement), where every other statement is prepared once per
/// connection. A prepared statement's plan is made for the tables as they
/// are the first few times it runs and kept until their statistics change.
/// The change logs (`directory_events`, `events` and what hangs off them)
/// start empty and grow by a row a write: planned on a one-page table, a
/// read of a connection's next events became a sequential scan, and stayed
/// one once the log held a hundred thousand entries (20 ms a call where an
/// index takes 0.1), for as long as nothing analyzed the table (autovacuum
/// does a minute later at best; never where it is off). Which plan a
/// connection kept depended on what it happened to run first. A custom plan
/// sees the table as it is now; planning costs tens of microseconds, which
/// these reads can spare.
pub(crate) async fn query_replanned(
    db: &sea_orm::DatabaseConnection,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return db
            .query_all(Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                values,
            ))
            .await;
    }
    let values = sea_query_binder::SqlxValues(sea_orm::sea_query::Values(values));
    let rows = sea_orm::sqlx::query_with(sql, values)
        .persistent(false)
        .fetch_all(db.get_postgres_connection_pool())
        .await
        .map_err(|e| DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)))?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// [`query_replanned`], each row read as a `T`.
pub(crate) async fn find_replanned<T: FromQueryResult>(
    db: &sea_orm::DatabaseConnection,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> orgsync_domain::Result<Vec<T>> {
    query_replanned(db, sql, values)
        .await
        .and_then(|rows| {
            rows.iter()
                .map(|row| T::from_query_result(row, ""))
                .collect()
        })
        .map_err(db_err)
}

/// Plans the rest of `txn`'s statements afresh, as [`query_replanned`]
/// does for one: for the transactions that number a change log.
pub(crate) async fn plan_afresh(txn: &DatabaseTransaction) -> orgsync_domain::Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await
            .map_err(db_err)?;
    }
    Ok(())
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

/// A `, `-separated column list with each column prefixed by `table.`, for
/// selects that join or alias the table.
pub(crate) fn qualified(columns: &str, table: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{table}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{db_err, loopback_without_tls_choice, Database};
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

    #[test]
    fn plain_is_tried_first_only_for_this_host_and_only_when_the_url_leaves_tls_open() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/db",
            "postgres://postgres@localhost/db",
            "postgresql://u:p@[::1]:5432/db?application_name=orgsync",
        ] {
            assert!(loopback_without_tls_choice(url), "{url}");
        }
        for url in [
            "postgres://postgres@127.0.0.1:5432/db?sslmode=require",
            "postgres://postgres@localhost/db?ssl-mode=verify-full",
            "postgres://postgres@db.internal:5432/db",
            "postgres://postgres@10.0.0.5/db",
            "not a url",
        ] {
            assert!(!loopback_without_tls_choice(url), "{url}");
        }
    }
}
