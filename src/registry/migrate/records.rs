//! The records table: which migrations of which app are applied on an alias.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::{MigrateError, PlannedMigration, MIGRATIONS_TABLE};
use crate::registry::pool::AnyConnection;
use crate::BackendKind;

diesel::table! {
    __diesel_multidb_migrations (app_label, version) {
        app_label -> Text,
        version -> Text,
        name -> Text,
    }
}

use self::__diesel_multidb_migrations as records;

const CREATE_RECORDS: &str = "CREATE TABLE IF NOT EXISTS __diesel_multidb_migrations (\
    app_label VARCHAR(255) NOT NULL, \
    version VARCHAR(255) NOT NULL, \
    name VARCHAR(255) NOT NULL, \
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
    PRIMARY KEY (app_label, version))";

/// `(app_label, version)` pairs.
pub(super) type Applied = BTreeSet<(String, String)>;

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

fn records_error(alias: &str) -> impl Fn(diesel::result::Error) -> MigrateError + '_ {
    move |source| MigrateError::Records {
        alias: alias.to_owned(),
        source,
    }
}

/// Migrations and their records live on the primary: a multi-host connection reads them
/// there, never on a standby that may not have replayed the last migration yet. The pin is
/// forgotten when the connection goes back to its pool.
fn on_primary(conn: &mut AnyConnection) {
    match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(conn) => conn.pin_to_primary(),
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(conn) => conn.pin_to_primary(),
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// Creates the records table if it does not exist.
pub(super) fn create(conn: &mut AnyConnection, alias: &str) -> Result<(), MigrateError> {
    on_primary(conn);
    diesel::sql_query(CREATE_RECORDS)
        .execute(conn)
        .map(drop)
        .map_err(records_error(alias))
}

/// The pairs recorded on the alias (none when the records table does not exist yet: reading
/// never writes).
pub(super) fn applied(conn: &mut AnyConnection, alias: &str) -> Result<Applied, MigrateError> {
    on_primary(conn);
    let probe = match conn.backend_kind() {
        BackendKind::Postgres => {
            "SELECT (to_regclass('__diesel_multidb_migrations') IS NOT NULL) AS present"
        }
        BackendKind::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = '__diesel_multidb_migrations') AS present"
        }
        BackendKind::Mysql => {
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '__diesel_multidb_migrations') \
             AS present"
        }
    };
    debug_assert!(probe.contains(MIGRATIONS_TABLE));
    let present = diesel::sql_query(probe)
        .get_result::<Present>(conn)
        .map_err(records_error(alias))?;
    if !present.present {
        return Ok(Applied::new());
    }
    let rows = records::table
        .select((records::app_label, records::version))
        .load::<(String, String)>(conn)
        .map_err(records_error(alias))?;
    Ok(rows.into_iter().collect())
}

/// Records an applied migration.
pub(super) fn insert(conn: &mut AnyConnection, m: &PlannedMigration) -> QueryResult<()> {
    diesel::insert_into(records::table)
        .values((
            records::app_label.eq(&m.app),
            records::version.eq(&m.version),
            records::name.eq(&m.name),
        ))
        .execute(conn)
        .map(drop)
}

/// Removes the record of a reverted migration.
pub(super) fn delete(conn: &mut AnyConnection, m: &PlannedMigration) -> QueryResult<()> {
    diesel::delete(
        records::table
            .filter(records::app_label.eq(&m.app))
            .filter(records::version.eq(&m.version)),
    )
    .execute(conn)
    .map(drop)
}
