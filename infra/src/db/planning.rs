//! Keeping PostgreSQL's plans true to the tables as they are: statistics
//! refreshed after bulk writes, and change-log reads planned afresh.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, FromQueryResult, Statement};

use super::db_err;

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
