//! Database connections, the statements every adapter runs through them,
//! and the operational counts metrics read.

use std::time::Duration;

use orgsync_domain::error::ConflictCode;
use orgsync_domain::ports::HealthCheck;
use orgsync_domain::Error;
use orgsync_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    FromQueryResult, Statement, TryGetable,
};

mod errors;
mod planning;

pub(crate) use errors::{db_err, sql_err};
pub(crate) use planning::{analyze_after_bulk_write, find_replanned, plan_afresh, query_replanned};

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
    use super::loopback_without_tls_choice;

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
