//! The pieces migrations build their statements from. They only shorten the
//! Rust: each builds exactly the column, key, index or statement it stands
//! for, so a landed migration still creates the schema it always did.

use sea_orm_migration::prelude::*;

/// `UUID NOT NULL PRIMARY KEY`.
pub(crate) fn uuid_key(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .uuid()
        .not_null()
        .primary_key()
        .to_owned()
}

/// `UUID NOT NULL`.
pub(crate) fn uuid(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().to_owned()
}

/// `VARCHAR(len) NOT NULL`.
pub(crate) fn varchar(col: impl IntoIden, len: u32) -> ColumnDef {
    ColumnDef::new(col).string_len(len).not_null().to_owned()
}

/// `TEXT NOT NULL`.
pub(crate) fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().to_owned()
}

/// `BIGINT NOT NULL`.
pub(crate) fn bigint(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().to_owned()
}

/// `JSONB NOT NULL` (JSON text on SQLite).
pub(crate) fn jsonb(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).json_binary().not_null().to_owned()
}

/// `TIMESTAMP WITH TIME ZONE NOT NULL`.
pub(crate) fn timestamptz(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

/// `FOREIGN KEY (from_col) REFERENCES to_table (to_col) ON DELETE CASCADE`.
pub(crate) fn cascading_key(
    from_table: impl IntoIden + 'static,
    from_col: impl IntoIden + 'static,
    to_table: impl IntoIden + 'static,
    to_col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(
    name: &str,
    table: impl IntoIden + 'static,
    cols: impl IntoIterator<Item = impl IntoIden>,
) -> IndexCreateStatement {
    let mut stmt = Index::create().name(name).table(table).to_owned();
    for col in cols {
        stmt.col(col);
    }
    stmt
}

/// `CREATE INDEX name ON table (cols)`.
pub(crate) async fn create_index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden + 'static,
    cols: impl IntoIterator<Item = impl IntoIden>,
) -> Result<(), DbErr> {
    manager.create_index(index(name, table, cols)).await
}

/// `CREATE UNIQUE INDEX name ON table (cols)`.
pub(crate) async fn create_unique_index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden + 'static,
    cols: impl IntoIterator<Item = impl IntoIden>,
) -> Result<(), DbErr> {
    manager
        .create_index(index(name, table, cols).unique().to_owned())
        .await
}

/// `DROP TABLE` each of `tables`, in order.
pub(crate) async fn drop_tables(
    manager: &SchemaManager<'_>,
    tables: impl IntoIterator<Item = DynIden>,
) -> Result<(), DbErr> {
    for table in tables {
        manager
            .drop_table(Table::drop().table(table).to_owned())
            .await?;
    }
    Ok(())
}
