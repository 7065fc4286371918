//! The pool of one alias: its settings, the r2d2 connection manager and the connection type
//! ([`AnyConnection`]).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "sqlite")]
use diesel::connection::SimpleConnection;
use diesel::connection::{Instrumentation, InstrumentationEvent};
#[cfg(multidb_sync)]
use diesel::r2d2::R2D2Connection;
#[cfg(multidb_sync)]
use diesel::Connection;

#[cfg(multidb_sync)]
use crate::registry::alias_url::{Connect, Target};
use crate::registry::config::DatabaseConfig;

#[cfg(multidb_sync)]
/// The registry's connection type: one enum over the backends compiled in.
///
/// Diesel's `MultiConnection` derive ignores `#[cfg]` on variants, so the enum is declared
/// once per feature combination (both backends, PostgreSQL only, SQLite only).
mod any {
    #![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

    use diesel::Connection;

    /// The connection type of PostgreSQL aliases: a [`MultiHostConnection`](crate::MultiHostConnection),
    /// so any alias may hold a multi-host URL (a single-host URL works as with `PgConnection`).
    #[cfg(feature = "postgres")]
    pub type PostgresConnection = crate::MultiHostConnection<diesel::PgConnection>;

    /// The connection type of MySQL / MariaDB aliases (not exported under this name: it
    /// would clash with Diesel's).
    #[cfg(feature = "mysql")]
    pub(crate) type MysqlConnection = crate::MultiHostConnection<diesel::MysqlConnection>;

    /// Declares `AnyConnection` with the variants of the backends compiled in: Diesel's
    /// `MultiConnection` derive ignores `#[cfg]` on variants, so the enum is declared once
    /// per feature combination.
    macro_rules! any_connection {
        ($($(#[$attr:meta])* $variant:ident($ty:ty)),+ $(,)?) => {
            /// A connection to any alias of the registry, whatever backend the alias's URL
            /// names (Diesel's [`MultiConnection`](diesel::MultiConnection) derive over the
            /// backends compiled in).
            ///
            /// Queries written against [`AnyBackend`] run on all of them; match on the
            /// variants to use backend-specific features. Non-exhaustive: enabling a
            /// feature adds a variant.
            #[derive(diesel::MultiConnection)]
            // A connection lives in its pool slot; boxing it would cost an allocation per
            // checkout.
            #[allow(clippy::large_enum_variant)]
            #[non_exhaustive]
            pub enum AnyConnection {
                $($(#[$attr])* $variant($ty),)+
            }
        };
    }

    #[cfg(all(feature = "postgres", feature = "sqlite", feature = "mysql"))]
    any_connection!(
        /// A PostgreSQL alias.
        Postgres(PostgresConnection),
        /// A SQLite alias.
        Sqlite(diesel::SqliteConnection),
        /// A MySQL / MariaDB alias: `MultiHostConnection<diesel::MysqlConnection>`.
        Mysql(MysqlConnection),
    );
    #[cfg(all(feature = "postgres", feature = "sqlite", not(feature = "mysql")))]
    any_connection!(
        /// A PostgreSQL alias.
        Postgres(PostgresConnection),
        /// A SQLite alias.
        Sqlite(diesel::SqliteConnection),
    );
    #[cfg(all(feature = "postgres", not(feature = "sqlite"), feature = "mysql"))]
    any_connection!(
        /// A PostgreSQL alias.
        Postgres(PostgresConnection),
        /// A MySQL / MariaDB alias: `MultiHostConnection<diesel::MysqlConnection>`.
        Mysql(MysqlConnection),
    );
    #[cfg(all(not(feature = "postgres"), feature = "sqlite", feature = "mysql"))]
    any_connection!(
        /// A SQLite alias.
        Sqlite(diesel::SqliteConnection),
        /// A MySQL / MariaDB alias: `MultiHostConnection<diesel::MysqlConnection>`.
        Mysql(MysqlConnection),
    );
    #[cfg(all(feature = "postgres", not(feature = "sqlite"), not(feature = "mysql")))]
    any_connection!(
        /// A PostgreSQL alias.
        Postgres(PostgresConnection),
    );
    #[cfg(all(not(feature = "postgres"), feature = "sqlite", not(feature = "mysql")))]
    any_connection!(
        /// A SQLite alias.
        Sqlite(diesel::SqliteConnection),
    );
    #[cfg(all(not(feature = "postgres"), not(feature = "sqlite"), feature = "mysql"))]
    any_connection!(
        /// A MySQL / MariaDB alias: `MultiHostConnection<diesel::MysqlConnection>`.
        Mysql(MysqlConnection),
    );

    /// The backend of [`AnyConnection`]: queries generic over it run on every alias.
    pub type AnyBackend = <AnyConnection as Connection>::Backend;

    impl AnyConnection {
        /// The kind of server this connection talks to.
        pub fn backend_kind(&self) -> crate::BackendKind {
            match self {
                #[cfg(feature = "postgres")]
                AnyConnection::Postgres(_) => crate::BackendKind::Postgres,
                #[cfg(feature = "sqlite")]
                AnyConnection::Sqlite(_) => crate::BackendKind::Sqlite,
                #[cfg(feature = "mysql")]
                AnyConnection::Mysql(_) => crate::BackendKind::Mysql,
            }
        }

        /// A token covering every write this connection has committed, for
        /// [`read_after`](Self::read_after) on another connection of the alias (see
        /// [`MultiHostConnection::causal_token`](crate::MultiHostConnection::causal_token)).
        /// `None` for a backend without replicas (SQLite): every connection reads every
        /// committed write there.
        ///
        /// # Errors
        ///
        /// When the primary cannot be reached.
        pub fn causal_token(&mut self) -> diesel::QueryResult<Option<crate::CausalToken>> {
            match self {
                #[cfg(feature = "postgres")]
                AnyConnection::Postgres(conn) => conn.causal_token().map(Some),
                #[cfg(feature = "mysql")]
                AnyConnection::Mysql(conn) => conn.causal_token().map(Some),
                #[cfg(feature = "sqlite")]
                AnyConnection::Sqlite(_) => Ok(None),
            }
        }

        /// Later reads on this connection see at least what `token` covers (see
        /// [`MultiHostConnection::read_after`](crate::MultiHostConnection::read_after)).
        /// Nothing to do for a backend without replicas.
        pub fn read_after(&mut self, token: &crate::CausalToken) {
            match self {
                #[cfg(feature = "postgres")]
                AnyConnection::Postgres(conn) => conn.read_after(token),
                #[cfg(feature = "mysql")]
                AnyConnection::Mysql(conn) => conn.read_after(token),
                #[cfg(feature = "sqlite")]
                AnyConnection::Sqlite(_) => {
                    let _ = token;
                }
            }
        }
    }

    impl std::fmt::Debug for AnyConnection {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "AnyConnection({})", self.backend_kind())
        }
    }
}

#[cfg(multidb_sync)]
#[cfg(feature = "mysql")]
use any::MysqlConnection;
#[cfg(multidb_sync)]
#[cfg(feature = "postgres")]
pub use any::PostgresConnection;
#[cfg(multidb_sync)]
pub use any::{AnyBackend, AnyConnection};

#[cfg(not(any(
    feature = "postgres",
    feature = "sqlite",
    feature = "mysql",
    feature = "async"
)))]
compile_error!(
    "diesel-multidb needs at least one of the features `postgres`, `sqlite`, `mysql` and `async`"
);

/// The pool settings with their defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    pub(crate) max_size: u32,
    pub(crate) min_idle: u32,
    pub(crate) connection_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
}

impl PoolSettings {
    /// The settings of `db`, defaults applied.
    pub(crate) fn of(db: &DatabaseConfig) -> PoolSettings {
        let secs = |v: Option<u64>, d: u64| match v.unwrap_or(d) {
            0 => None,
            s => Some(Duration::from_secs(s)),
        };
        PoolSettings {
            max_size: db.max_size.unwrap_or(10),
            min_idle: db.min_idle.unwrap_or(0),
            connection_timeout: Duration::from_secs(db.connection_timeout_secs.unwrap_or(30)),
            idle_timeout: secs(db.idle_timeout_secs, 600),
            max_lifetime: secs(db.max_lifetime_secs, 1800),
        }
    }
}

/// A callback told of every statement: `(alias, sql)`. See
/// [`DatabasesBuilder::on_statement`](crate::DatabasesBuilder::on_statement).
pub(crate) type StatementObserver = Arc<dyn Fn(&str, &str) + Send + Sync>;

#[cfg(multidb_sync)]
/// r2d2's per-connection hook, with this crate's connection and error types: run `SET`
/// statements or `PRAGMA`s on each new connection of an alias. See
/// [`DatabasesBuilder::connection_customizer`](crate::DatabasesBuilder::connection_customizer).
pub type ConnectionCustomizer = Box<dyn r2d2::CustomizeConnection<AnyConnection, ConnectError>>;

/// Why a connection to an alias could not be opened (or was found unusable).
///
/// Never contains a password: PostgreSQL failures are the typed
/// [`DiscoveryError`](crate::DiscoveryError), which lists hosts and reasons only.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectError {
    /// No PostgreSQL host could be used; [`source`](std::error::Error::source) lists every
    /// host and why.
    NoServer(crate::DiscoveryError),
    /// SQLite could not open the database, or its per-connection `PRAGMA`s failed.
    Sqlite {
        /// SQLite's message (it names no password: SQLite URLs have none).
        message: String,
    },
    /// A [`ConnectionCustomizer`] (or other per-connection setup) failed.
    Setup(Arc<diesel::result::Error>),
    /// A pooled connection no longer answers (checked before it is handed out).
    Broken(Arc<diesel::result::Error>),
}

impl ConnectError {
    /// Whether retrying cannot help: authentication failed on every host, or the
    /// per-connection setup failed (the same statements fail the same way). A checkout then
    /// fails at once instead of waiting for the pool's `connection_timeout`.
    pub fn is_permanent(&self) -> bool {
        match self {
            ConnectError::NoServer(e) => e.is_permanent(),
            ConnectError::Setup(_) => true,
            ConnectError::Sqlite { .. } | ConnectError::Broken(_) => false,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::NoServer(e) if e.is_permanent() => f.write_str("authentication failed"),
            ConnectError::NoServer(_) => f.write_str("no usable server"),
            ConnectError::Sqlite { message } => {
                write!(f, "cannot open the SQLite database ({message})")
            }
            ConnectError::Setup(_) => f.write_str("the per-connection setup failed"),
            ConnectError::Broken(_) => f.write_str("the connection no longer answers"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::NoServer(e) => Some(e),
            ConnectError::Setup(e) | ConnectError::Broken(e) => Some(&**e),
            ConnectError::Sqlite { .. } => None,
        }
    }
}

/// For a [`ConnectionCustomizer`]: a failed statement is a setup failure.
impl From<diesel::result::Error> for ConnectError {
    fn from(e: diesel::result::Error) -> Self {
        ConnectError::Setup(Arc::new(e))
    }
}

/// What the pool's connection attempts of one alias last did, shared by its manager (which
/// records) and its checkouts (which read).
#[derive(Debug, Default)]
pub(crate) struct AttemptLog {
    in_flight: AtomicUsize,
    last_failure: Mutex<Option<ConnectError>>,
}

impl AttemptLog {
    /// How many attempts are under way right now.
    #[cfg_attr(not(multidb_sync), allow(dead_code))]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The last attempt's error, when it failed (cleared by a success).
    pub(crate) fn last_failure(&self) -> Option<ConnectError> {
        self.lock().clone()
    }

    pub(crate) fn record(&self, outcome: Result<(), &ConnectError>) {
        *self.lock() = outcome.err().cloned();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ConnectError>> {
        self.last_failure.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(multidb_sync)]
/// Opens connections of one alias, always with the backend its URL names (Diesel's derived
/// `AnyConnection::establish` would try every backend in turn).
pub(crate) struct AliasManager {
    pub(crate) alias: String,
    pub(crate) target: Target,
    pub(crate) observer: Option<StatementObserver>,
    pub(crate) attempts: Arc<AttemptLog>,
}

#[cfg(multidb_sync)]
impl fmt::Debug for AliasManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AliasManager")
            .field("alias", &self.alias)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

#[cfg(multidb_sync)]
/// SQLite settings applied to every new connection: wait up to 5 s for a lock held by
/// another connection, and enforce foreign keys (as Django does).
#[cfg(feature = "sqlite")]
const SQLITE_SETUP: &str = "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;";

#[cfg(multidb_sync)]
/// Opens one connection to `target` (used by the pools and by `topology`).
pub(crate) fn establish(target: &Target) -> Result<AnyConnection, ConnectError> {
    match &target.connect {
        #[cfg(feature = "postgres")]
        Connect::MultiHost(cs) if cs.backend() == crate::BackendKind::Postgres => {
            PostgresConnection::connect(cs)
                .map(AnyConnection::Postgres)
                .map_err(ConnectError::NoServer)
        }
        #[cfg(feature = "mysql")]
        Connect::MultiHost(cs) if cs.backend() == crate::BackendKind::Mysql => {
            MysqlConnection::connect(cs)
                .map(AnyConnection::Mysql)
                .map_err(ConnectError::NoServer)
        }
        #[cfg(feature = "sqlite")]
        Connect::Sqlite(path) => {
            let sqlite = |e: &dyn fmt::Display| ConnectError::Sqlite {
                message: target.url.scrub(e.to_string().trim()),
            };
            let mut conn = diesel::SqliteConnection::establish(path).map_err(|e| sqlite(&e))?;
            conn.batch_execute(SQLITE_SETUP).map_err(|e| sqlite(&e))?;
            Ok(AnyConnection::Sqlite(conn))
        }
        #[allow(unreachable_patterns)]
        _ => Err(ConnectError::Sqlite {
            message: format!("{} support is not compiled in", target.kind),
        }),
    }
}

/// Reports each statement to the observer.
pub(crate) struct Observe {
    pub(crate) alias: String,
    pub(crate) observer: StatementObserver,
}

impl Instrumentation for Observe {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            (self.observer)(&self.alias, &query.to_string());
        }
    }
}

/// Counts the attempts under way while it lives.
pub(crate) struct InFlight<'a>(&'a AttemptLog);

impl<'a> InFlight<'a> {
    pub(crate) fn new(log: &'a AttemptLog) -> Self {
        log.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(log)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(multidb_sync)]
impl r2d2::ManageConnection for AliasManager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        let _span = tracing::debug_span!("connect", alias = %self.alias).entered();
        let in_flight = InFlight::new(&self.attempts);
        let outcome = establish(&self.target);
        drop(in_flight);
        self.attempts.record(outcome.as_ref().map(drop));
        crate::registry::metrics::connection_attempt(&self.alias, outcome.is_ok());
        let mut conn = outcome?;
        tracing::debug!("opened a connection");
        if let Some(observer) = &self.observer {
            conn.set_instrumentation(Observe {
                alias: self.alias.clone(),
                observer: observer.clone(),
            });
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        conn.ping().map_err(|e| ConnectError::Broken(Arc::new(e)))
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        conn.is_broken()
    }
}

#[cfg(multidb_sync)]
/// Runs the alias's own [`ConnectionCustomizer`], if any, and records a failure as the last
/// attempt's outcome (a failing `SET` fails the same way every time: checkouts fail at once).
#[derive(Debug)]
pub(crate) struct Customize {
    pub(crate) inner: Option<ConnectionCustomizer>,
    pub(crate) attempts: Arc<AttemptLog>,
}

#[cfg(multidb_sync)]
impl r2d2::CustomizeConnection<AnyConnection, ConnectError> for Customize {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let outcome = inner.on_acquire(conn);
        if let Err(e) = &outcome {
            self.attempts.record(Err(e));
        }
        outcome
    }

    fn on_release(&self, conn: AnyConnection) {
        if let Some(inner) = &self.inner {
            inner.on_release(conn);
        }
    }
}

#[cfg(multidb_sync)]
/// Logs failed connection attempts with `tracing` (a [`ConnectError`] never holds a
/// password), then hands them to the alias's own error handler, if any.
#[derive(Debug)]
pub(crate) struct LogErrors {
    pub(crate) alias: String,
    pub(crate) inner: Option<Box<dyn r2d2::HandleError<ConnectError>>>,
}

#[cfg(multidb_sync)]
impl r2d2::HandleError<ConnectError> for LogErrors {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(
            alias = %self.alias,
            error = %error,
            cause = error.source_text().as_deref().unwrap_or(""),
            permanent = error.is_permanent(),
            "connection attempt failed"
        );
        if let Some(inner) = &self.inner {
            inner.handle_error(error);
        }
    }
}

impl ConnectError {
    /// The chain of sources, `a: b`, for logs.
    pub(crate) fn source_text(&self) -> Option<String> {
        let mut source = std::error::Error::source(self)?;
        let mut text = source.to_string();
        while let Some(next) = source.source() {
            text.push_str(": ");
            text.push_str(&next.to_string());
            source = next;
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = PoolSettings::of(&DatabaseConfig::new("sqlite://x"));
        assert_eq!(
            s,
            PoolSettings {
                max_size: 10,
                min_idle: 0,
                connection_timeout: Duration::from_secs(30),
                idle_timeout: Some(Duration::from_secs(600)),
                max_lifetime: Some(Duration::from_secs(1800)),
            }
        );
    }
}
