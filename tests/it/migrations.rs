//! Migrations that move data: each is run against a schema holding rows
//! written by the code before it, on PostgreSQL and on SQLite, and undone.

use orgsync_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database as SeaDatabase, DatabaseConnection, Statement};
use uuid::Uuid;

use crate::support::{admin_url, url_for};

/// `sql` with `values`, for `db`'s engine.
fn statement(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) {
    db.execute(statement(db, sql, values)).await.expect(sql);
}

/// The number `sql` reads for `id`, its one parameter.
async fn one_i64(db: &DatabaseConnection, sql: &str, id: Uuid) -> Option<i64> {
    db.query_one(statement(db, sql, vec![id.into()]))
        .await
        .expect(sql)
        .map(|row| row.try_get_by_index::<i64>(0).expect(sql))
}

/// Every migration before the one named `next`, which the test then runs
/// (and undoes) itself.
async fn migrate_up_to(db: &DatabaseConnection, next: &str) {
    let older = Migrator::migrations()
        .iter()
        .position(|m| m.name() == next)
        .unwrap_or_else(|| panic!("no migration {next}"));
    Migrator::up(db, Some(u32::try_from(older).unwrap()))
        .await
        .unwrap();
}

async fn insert_org(db: &DatabaseConnection, id: Uuid, root: Uuid, slug: &str) {
    let parent = (id != root).then_some(root);
    exec(
        db,
        "INSERT INTO organizations (id, parent_id, root_id, kind, name, slug, provisioning_mode, created_at, updated_at) \
         VALUES ($1, $2, $3, 'standard', $4, $4, 'manual', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        vec![id.into(), parent.into(), root.into(), slug.into()],
    )
    .await;
}

/// An unnumbered event of `org`, as the outbox holds it before numbering.
async fn insert_event(db: &DatabaseConnection, org: Uuid) {
    exec(
        db,
        "INSERT INTO events (id, org_id, event_type, occurred_at, data) \
         VALUES ($1, $2, 'member.created', CURRENT_TIMESTAMP, '{}')",
        vec![Uuid::now_v7().into(), org.into()],
    )
    .await;
}

/// A tenant's event numbers continue across the move of its sequence out
/// of `organizations`, and back again when the migration is undone.
async fn event_sequences_keep_each_tenants_numbers(db: &DatabaseConnection) {
    migrate_up_to(db, "m20261206_000022_event_sequences").await;
    let (numbered, child, silent) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    insert_org(db, numbered, numbered, "numbered").await;
    insert_org(db, child, numbered, "child").await;
    insert_org(db, silent, silent, "silent").await;
    exec(
        db,
        "UPDATE organizations SET event_seq = 41 WHERE id = $1",
        vec![numbered.into()],
    )
    .await;

    Migrator::up(db, Some(1)).await.unwrap();
    let last = |root: Uuid| {
        one_i64(
            db,
            "SELECT last_seq FROM event_sequences WHERE root_id = $1",
            root,
        )
    };
    assert_eq!(last(numbered).await, Some(41));
    assert_eq!(last(child).await, None, "only roots have a sequence");
    assert_eq!(last(silent).await, None, "created by its first event");

    // The child's next event is the tenant's 42nd; the silent tenant starts at 1.
    for org in [child, silent] {
        insert_event(db, org).await;
    }
    assert_eq!(
        orgsync_infra::events::sequence_root(db, numbered)
            .await
            .unwrap(),
        42
    );
    assert_eq!(
        orgsync_infra::events::sequence_root(db, silent)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        one_i64(db, "SELECT seq FROM events WHERE org_id = $1", child).await,
        Some(42)
    );

    Migrator::down(db, Some(1)).await.unwrap();
    let seq = |org: Uuid| one_i64(db, "SELECT event_seq FROM organizations WHERE id = $1", org);
    assert_eq!(seq(numbered).await, Some(42));
    assert_eq!(seq(silent).await, Some(1));
    assert_eq!(seq(child).await, Some(0));
}

/// A deleted org's events stay (its ancestors read them): on SQLite the
/// events table loses its cascading key to `organizations`, rebuilt with
/// its rows; undone, the key (and the orphans' removal) come back.
async fn events_outlive_their_org(db: &DatabaseConnection) {
    migrate_up_to(db, "m20261207_000023_retired_orgs").await;
    let (root, child) = (Uuid::now_v7(), Uuid::now_v7());
    insert_org(db, root, root, "root").await;
    insert_org(db, child, root, "child").await;
    for org in [root, child] {
        insert_event(db, org).await;
    }
    Migrator::up(db, Some(1)).await.unwrap();
    let events_of = |org: Uuid| one_i64(db, "SELECT count(*) FROM events WHERE org_id = $1", org);
    assert_eq!(events_of(child).await, Some(1), "rows kept by the rebuild");
    exec(
        db,
        "INSERT INTO retired_org_ancestors (ancestor_id, org_id, retired_at) \
         VALUES ($1, $2, CURRENT_TIMESTAMP)",
        vec![root.into(), child.into()],
    )
    .await;
    exec(
        db,
        "DELETE FROM organizations WHERE id = $1",
        vec![child.into()],
    )
    .await;
    assert_eq!(events_of(child).await, Some(1), "no cascade");

    Migrator::down(db, Some(1)).await.unwrap();
    assert_eq!(events_of(root).await, Some(1));
    let ancestry = db
        .execute(statement(db, "SELECT 1 FROM retired_org_ancestors", vec![]))
        .await;
    assert!(ancestry.is_err(), "the table is dropped");
}

/// A database of its own on PostgreSQL for `scenario`, dropped afterwards.
async fn on_postgres(scenario: impl AsyncFnOnce(&DatabaseConnection)) {
    let name = format!("orgsync_migration_{}", Uuid::new_v4().simple());
    let admin = SeaDatabase::connect(admin_url()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let db = SeaDatabase::connect(url_for(&name)).await.unwrap();
    scenario(&db).await;
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

/// A new SQLite file for `scenario`, removed afterwards.
async fn on_sqlite(scenario: impl AsyncFnOnce(&DatabaseConnection)) {
    let dir = std::env::temp_dir().join(format!("orgsync-migration-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("orgsync.db").display());
    let db = SeaDatabase::connect(url).await.unwrap();
    scenario(&db).await;
    db.close().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[actix_web::test]
async fn event_sequences_move_with_their_numbers_on_postgres() {
    on_postgres(event_sequences_keep_each_tenants_numbers).await;
}

#[actix_web::test]
async fn event_sequences_move_with_their_numbers_on_sqlite() {
    on_sqlite(event_sequences_keep_each_tenants_numbers).await;
}

#[actix_web::test]
async fn events_outlive_their_org_on_postgres() {
    on_postgres(events_outlive_their_org).await;
}

#[actix_web::test]
async fn events_outlive_their_org_on_sqlite() {
    on_sqlite(events_outlive_their_org).await;
}
