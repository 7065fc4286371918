//! The r2d2 connection manager of one alias.

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "sqlite")]
use diesel::connection::SimpleConnection;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, ConnectionError};

use crate::any_connection::AnyConnection;
use crate::backend_url::{BackendKind, Target};
use crate::redact::redact;

/// A callback told of every statement: `(alias, sql)`. See
/// [`DatabasesBuilder::on_statement`](crate::DatabasesBuilder::on_statement).
pub(crate) type StatementObserver = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Opens connections of one alias, always with the backend its URL names (Diesel's derived
/// `AnyConnection::establish` would try every backend in turn).
pub(crate) struct AliasManager {
    pub(crate) alias: String,
    pub(crate) target: Target,
    pub(crate) observer: Option<StatementObserver>,
}

impl fmt::Debug for AliasManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliasManager")
            .field("alias", &self.alias)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// SQLite settings applied to every new connection: wait up to 5 s for a lock held by
/// another connection, and enforce foreign keys (as Django does).
#[cfg(feature = "sqlite")]
const SQLITE_SETUP: &str = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

/// Opens one connection to `target` (used by the pools and by `topology`).
pub(crate) fn establish(target: &Target) -> Result<AnyConnection, ConnectionError> {
    match target.kind {
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            let mut cs: crate::ConnectionString =
                target
                    .connect
                    .parse()
                    .map_err(|e: crate::ConnectionStringError| {
                        ConnectionError::InvalidConnectionUrl(e.to_string())
                    })?;
            if target.mirror && !cs.target_session_attrs_given {
                cs.target_session_attrs = crate::TargetSessionAttrs::PreferStandby;
            }
            crate::any_connection::PostgresConnection::connect(&cs).map(AnyConnection::Postgres)
        }
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => {
            let mut conn = diesel::SqliteConnection::establish(&target.connect)?;
            conn.batch_execute(SQLITE_SETUP)
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(AnyConnection::Sqlite(conn))
        }
        #[allow(unreachable_patterns)]
        kind => Err(ConnectionError::BadConnection(format!(
            "{kind} support is not compiled in"
        ))),
    }
}

/// Reports each statement to the observer.
struct Observe {
    alias: String,
    observer: StatementObserver,
}

impl Instrumentation for Observe {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            (self.observer)(&self.alias, &query.to_string());
        }
    }
}

impl r2d2::ManageConnection for AliasManager {
    type Connection = AnyConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<AnyConnection, ConnectionError> {
        let mut conn = establish(&self.target)?;
        tracing::debug!(alias = %self.alias, "opened a connection");
        if let Some(observer) = &self.observer {
            conn.set_instrumentation(Observe {
                alias: self.alias.clone(),
                observer: observer.clone(),
            });
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectionError> {
        conn.ping()
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        conn.is_broken()
    }
}

/// Logs failed connection attempts with `tracing`, password redacted.
#[derive(Debug)]
pub(crate) struct LogErrors {
    pub(crate) alias: String,
}

impl r2d2::HandleError<ConnectionError> for LogErrors {
    fn handle_error(&self, error: ConnectionError) {
        tracing::warn!(alias = %self.alias, error = %redact(&error.to_string()), "connection attempt failed");
    }
}
