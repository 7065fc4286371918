//! What a backend connection must offer to be wrapped by a `MultiHostConnection`.

use std::fmt;

use diesel::connection::{AnsiTransactionManager, Connection, LoadConnection};
use diesel::migration::MigrationConnection;
use diesel::query_builder::QueryFragment;
use diesel::r2d2::R2D2Connection;
use diesel::result::{ConnectionResult, DatabaseErrorKind, Error, QueryResult};

use crate::connection_string::{ConnectionString, Host};

/// The role a server plays in its cluster, as seen by a session on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerRole {
    /// Not in recovery and its sessions accept writes.
    Primary,
    /// Not in recovery, but its sessions are read-only
    /// (`default_transaction_read_only = on`).
    ReadOnlyPrimary,
    /// In recovery (a hot standby).
    Standby,
}

impl ServerRole {
    /// Whether sessions on this server accept writes.
    pub fn is_writable(self) -> bool {
        self == ServerRole::Primary
    }
    /// Whether this server is in recovery.
    pub fn is_standby(self) -> bool {
        self == ServerRole::Standby
    }
}

impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerRole::Primary => "primary",
            ServerRole::ReadOnlyPrimary => "read-only primary",
            ServerRole::Standby => "standby",
        })
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A backend connection that [`MultiHostConnection`](crate::MultiHostConnection) can wrap.
///
/// Implemented for [`diesel::PgConnection`] (feature `postgres`). The trait is sealed: its
/// methods are the crate's internal contract with each backend.
pub trait HostConnection:
    Connection<TransactionManager = AnsiTransactionManager>
    + LoadConnection
    + R2D2Connection
    + MigrationConnection
    + Send
    + 'static
    + sealed::Sealed
{
    /// Opens a connection to one host of `cs`.
    #[doc(hidden)]
    fn connect_host(cs: &ConnectionString, host: &Host) -> ConnectionResult<Self>;

    /// Renders a query's SQL text, for classification.
    #[doc(hidden)]
    fn render_sql<T: QueryFragment<Self::Backend>>(source: &T) -> QueryResult<String>;

    /// Asks the server which role it plays.
    #[doc(hidden)]
    fn probe_role(&mut self) -> QueryResult<ServerRole>;

    /// Whether `error` means the server refused a write because the session is read-only
    /// (PostgreSQL SQLSTATE 25006): nothing was applied.
    #[doc(hidden)]
    fn is_read_only_error(error: &Error) -> bool {
        matches!(
            error,
            Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _)
        )
    }

    /// Whether `error` means the connection itself is gone.
    #[doc(hidden)]
    fn is_connection_error(error: &Error) -> bool {
        matches!(
            error,
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _
            )
        )
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use diesel::pg::{Pg, PgConnection, PgQueryBuilder};
    use diesel::prelude::*;
    use diesel::query_builder::QueryBuilder;
    use diesel::sql_types::{Bool, Text};

    use super::*;

    #[derive(QueryableByName)]
    struct RoleRow {
        #[diesel(sql_type = Bool)]
        in_recovery: bool,
        #[diesel(sql_type = Text)]
        read_only: String,
    }

    impl sealed::Sealed for PgConnection {}

    impl HostConnection for PgConnection {
        fn connect_host(cs: &ConnectionString, host: &Host) -> ConnectionResult<Self> {
            PgConnection::establish(&cs.host_conninfo(host))
        }

        fn render_sql<T: QueryFragment<Pg>>(source: &T) -> QueryResult<String> {
            let mut builder = PgQueryBuilder::default();
            source.to_sql(&mut builder, &Pg)?;
            Ok(builder.finish())
        }

        fn probe_role(&mut self) -> QueryResult<ServerRole> {
            let row: RoleRow = diesel::sql_query(
                "SELECT pg_is_in_recovery() AS in_recovery, \
                 current_setting('transaction_read_only') AS read_only",
            )
            .get_result(self)?;
            Ok(match (row.in_recovery, row.read_only.as_str()) {
                (true, _) => ServerRole::Standby,
                (false, "on") => ServerRole::ReadOnlyPrimary,
                (false, _) => ServerRole::Primary,
            })
        }
    }
}
