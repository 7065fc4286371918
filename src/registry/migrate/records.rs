//! The records table: which migrations of which app are applied on an alias.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::{MigrateError, PlannedMigration, MIGRATIONS_TABLE};
use crate::BackendKind;

diesel::table! {
    __diesel_multidb_migrations (app_label, version) {
        app_label -> Text,
        version -> Text,
        name -> Text,
    }
}

pub(crate) use self::__diesel_multidb_migrations as records;

const CREATE_RECORDS: &str = "CREATE TABLE IF NOT EXISTS __diesel_multidb_migrations (\
    app_label VARCHAR(255) NOT NULL, \
    version VARCHAR(255) NOT NULL, \
    name VARCHAR(255) NOT NULL, \
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
    PRIMARY KEY (app_label, version))";

/// `(app_label, version)` pairs.
pub(super) type Applied = BTreeSet<(String, String)>;

#[derive(QueryableByName)]
pub(crate) struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub(crate) present: bool,
}

fn records_error(alias: &str) -> impl Fn(diesel::result::Error) -> MigrateError + '_ {
    move |source| MigrateError::Records {
        alias: alias.to_owned(),
        source,
    }
}

/// A (sync) connection migrations and their records run on: the sync registry's
/// [`AnyConnection`](crate::AnyConnection), or the async registry's pooled connection
/// behind diesel-async's `AsyncConnectionWrapper`. The queries on the records table are
/// written once, in [`records_connection!`].
#[allow(unreachable_pub)]
pub trait RecordsConnection: Connection + 'static {
    /// The server kind (for the query that finds the records table).
    fn kind(&self) -> BackendKind;
    /// Migrations and their records live on the primary: a multi-host connection reads them
    /// there, never on a standby that may not have replayed the last migration yet. The pin
    /// is forgotten when the connection goes back to its pool.
    fn on_primary(&mut self);
    /// Whether the records table exists, by `probe`.
    fn probe(&mut self, probe: &str) -> QueryResult<bool>;
    /// The recorded `(app_label, version)` pairs.
    fn records(&mut self) -> QueryResult<Vec<(String, String)>>;
    /// Records an applied migration.
    fn insert(&mut self, m: &PlannedMigration) -> QueryResult<()>;
    /// Removes the record of a reverted migration.
    fn delete(&mut self, m: &PlannedMigration) -> QueryResult<()>;
}

/// Implements [`RecordsConnection`] for a connection type: `$kind` and `$pin` are closures
/// over the connection.
macro_rules! records_connection {
    ($ty:ty, $kind:expr, $pin:expr) => {
        impl $crate::registry::migrate::records::RecordsConnection for $ty {
            fn kind(&self) -> $crate::BackendKind {
                ($kind)(self)
            }
            fn on_primary(&mut self) {
                ($pin)(self)
            }
            fn probe(&mut self, probe: &str) -> diesel::QueryResult<bool> {
                use diesel::RunQueryDsl;
                diesel::sql_query(probe)
                    .get_result::<$crate::registry::migrate::records::Present>(self)
                    .map(|p| p.present)
            }
            fn records(&mut self) -> diesel::QueryResult<Vec<(String, String)>> {
                use diesel::prelude::*;
                use $crate::registry::migrate::records::records as r;
                r::table.select((r::app_label, r::version)).load(self)
            }
            fn insert(
                &mut self,
                m: &$crate::registry::migrate::PlannedMigration,
            ) -> diesel::QueryResult<()> {
                use diesel::prelude::*;
                use $crate::registry::migrate::records::records as r;
                diesel::insert_into(r::table)
                    .values((
                        r::app_label.eq(&m.app),
                        r::version.eq(&m.version),
                        r::name.eq(&m.name),
                    ))
                    .execute(self)
                    .map(drop)
            }
            fn delete(
                &mut self,
                m: &$crate::registry::migrate::PlannedMigration,
            ) -> diesel::QueryResult<()> {
                use diesel::prelude::*;
                use $crate::registry::migrate::records::records as r;
                diesel::delete(
                    r::table
                        .filter(r::app_label.eq(&m.app))
                        .filter(r::version.eq(&m.version)),
                )
                .execute(self)
                .map(drop)
            }
        }
    };
}
#[cfg(feature = "async")]
pub(crate) use records_connection;

#[cfg(multidb_sync)]
records_connection!(
    crate::registry::pool::AnyConnection,
    crate::registry::pool::AnyConnection::backend_kind,
    |conn: &mut crate::registry::pool::AnyConnection| match conn {
        #[cfg(feature = "postgres")]
        crate::registry::pool::AnyConnection::Postgres(conn) => conn.pin_to_primary(),
        #[cfg(feature = "mysql")]
        crate::registry::pool::AnyConnection::Mysql(conn) => conn.pin_to_primary(),
        #[allow(unreachable_patterns)]
        _ => {}
    }
);

/// Creates the records table if it does not exist.
pub(super) fn create<C: RecordsConnection>(conn: &mut C, alias: &str) -> Result<(), MigrateError> {
    conn.on_primary();
    conn.batch_execute(CREATE_RECORDS)
        .map_err(records_error(alias))
}

/// The pairs recorded on the alias (none when the records table does not exist yet: reading
/// never writes).
pub(super) fn applied<C: RecordsConnection>(
    conn: &mut C,
    alias: &str,
) -> Result<Applied, MigrateError> {
    conn.on_primary();
    let probe = match conn.kind() {
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
    if !conn.probe(probe).map_err(records_error(alias))? {
        return Ok(Applied::new());
    }
    let rows = conn.records().map_err(records_error(alias))?;
    Ok(rows.into_iter().collect())
}
