//! What a backend connection must offer to be wrapped by a `MultiHostConnection`: the seam
//! between the backend-neutral routing core and one database's client library. One file
//! per backend.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, Connection, LoadConnection};
use diesel::migration::MigrationConnection;
use diesel::query_builder::QueryFragment;
use diesel::r2d2::R2D2Connection;
use diesel::result::{ConnectionError, ConnectionResult, DatabaseErrorKind, Error, QueryResult};

use crate::multihost::connection::InnerSettings;
use crate::multihost::core::Outcome;
use crate::multihost::position::Position;
use crate::multihost::topology::shared::Monitor;
use crate::multihost::topology::state::Observation;
use crate::multihost::topology::threads;
use crate::multihost::topology::HostFailure;
use crate::multihost::url::{ConnectionString, Host};

#[cfg(any(feature = "mysql", feature = "async-mysql"))]
pub(crate) mod mysql;
#[cfg(any(feature = "postgres", feature = "async"))]
mod pg;
#[cfg(feature = "async")]
pub(crate) mod rendered;

// The sealed traits' methods use crate-private types: they cannot be implemented or called
// outside the crate.
#[allow(private_interfaces, private_bounds)]
pub(crate) mod sealed {
    use super::*;

    /// What every wrapped connection type offers the routing shells, sync or async. In a
    /// private module, so that [`HostConnection`](super::HostConnection) is sealed.
    pub trait Common: Sized + Send + 'static {
        /// Whose SQL and URLs these are.
        const BACKEND: crate::BackendKind;

        /// The Diesel backend of the SQL this type runs.
        type Db: diesel::backend::Backend + Default;

        /// The shell of the topology monitor: threads (sync) or tasks (async).
        type Monitor: Monitor<Self>;

        /// The state of the wrapper's own transaction manager.
        type TxState: Default + Send;

        /// What the wrapper keeps for this backend besides its sessions (type metadata).
        type Extra: Default + Send;

        /// Renders a query's SQL text, for classification.
        fn render_sql<T: QueryFragment<Self::Db>>(source: &T) -> QueryResult<String>;

        /// Applies the wrapper's instrumentation and statement-cache settings to a session.
        fn apply_settings(&mut self, settings: &InnerSettings);

        /// What an error returned by a statement says about the statement and the session.
        fn outcome_of(error: &Error) -> Outcome {
            match error {
                Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => {
                    Outcome::ReadOnly
                }
                Error::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _) => Outcome::NotSent,
                Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                    Outcome::ConnectionLost
                }
                Error::DatabaseError(..) => Outcome::Database,
                _ => Outcome::Client,
            }
        }
    }

    /// A sync Diesel connection: what the sync shell ([`threads`](crate::multihost::topology::threads))
    /// calls.
    pub trait SyncWrapped:
        Common<Monitor = threads::Shared<Self>, TxState = AnsiTransactionManager>
        + Connection<Backend = <Self as Common>::Db, TransactionManager = AnsiTransactionManager>
        + LoadConnection
        + R2D2Connection
        + MigrationConnection
    {
        /// Opens a connection to one host of `cs`.
        fn connect_host(cs: &ConnectionString, host: &Host) -> ConnectionResult<Self>;

        /// Asks the server its role and position (one small query).
        fn observe(&mut self) -> QueryResult<Observation>;

        /// The primary's current position (for a causal token).
        fn current_position(&mut self) -> QueryResult<Position> {
            position_of(self.observe()?)
        }

        /// Why a connection attempt failed, as a [`HostFailure`].
        fn connect_failure(
            cs: &ConnectionString,
            host: &Host,
            error: &ConnectionError,
            elapsed: Duration,
        ) -> HostFailure;
    }

    /// A diesel-async connection: what the async shell
    /// ([`tasks`](crate::multihost::topology::tasks)) calls.
    #[cfg(feature = "async")]
    pub trait AsyncWrapped:
        Common<
            Monitor = crate::multihost::topology::tasks::Shared<Self>,
            TxState = diesel_async::AnsiTransactionManager,
        > + diesel_async::AsyncConnection<
            Backend = <Self as Common>::Db,
            TransactionManager = diesel_async::AnsiTransactionManager,
        >
    {
        /// A query rendered once (SQL and bind values), to be sent to more than one
        /// session: diesel-async's queries are consumed by the session they run on, and a
        /// read that fails on a standby runs again on the primary.
        type Rendered: diesel::query_builder::Query
            + QueryFragment<Self::Db>
            + diesel::query_builder::QueryId
            + Clone
            + Send
            + 'static;

        /// Opens a session to one host of `cs` (within `connect_timeout`).
        fn connect_host(
            cs: &ConnectionString,
            host: &Host,
        ) -> impl std::future::Future<Output = Result<Self, HostFailure>> + Send;

        /// Asks the server its role and position (one small query).
        fn observe(&mut self)
            -> impl std::future::Future<Output = QueryResult<Observation>> + Send;

        /// Whether this backend can connect to `host` of `cs` as given: an error naming
        /// what it cannot honour.
        fn check_host(cs: &ConnectionString, host: &Host) -> Result<(), String>;

        /// Whether the session can no longer send anything (its connection is closed):
        /// a statement given to it now would certainly not reach the server.
        fn is_closed(&mut self) -> bool;

        /// Renders `source` once (its SQL is `sql`: the wrapper renders it, or remembers
        /// it for a query with a static id), with what the wrapper knows of the backend's
        /// types. `safe_to_cache`: whether `source` may be kept as a prepared statement,
        /// when the wrapper knows it.
        fn render<T: QueryFragment<Self::Db> + diesel::query_builder::QueryId>(
            source: &T,
            sql: std::sync::Arc<str>,
            safe_to_cache: Option<bool>,
            extra: &mut Self::Extra,
        ) -> QueryResult<Self::Rendered>;

        /// Takes back a rendering whose statement is over, to use its memory again.
        fn recycle(rendered: Self::Rendered, extra: &mut Self::Extra);

        /// Reads `rows` to their end, and gives them back: only then has the server
        /// finished the statement (committed it, outside a transaction). diesel-async's
        /// `get_result` takes the first row and drops the rest; a server that dies while
        /// its commit waits (for a synchronous standby, say) may still have sent that row,
        /// which would then acknowledge a write that was never committed where it counts.
        /// Fails with the first error, the connection's end included.
        fn drain<'conn, 'query>(
            rows: <Self as diesel_async::AsyncConnectionCore>::Stream<'conn, 'query>,
        ) -> impl std::future::Future<
            Output = QueryResult<
                <Self as diesel_async::AsyncConnectionCore>::Stream<'conn, 'query>,
            >,
        > + Send;

        /// Whether [`resolve`](Self::resolve) must run on the session before `rendered`
        /// is sent (types the wrapper did not know when rendering).
        fn needs_resolving(rendered: &Self::Rendered) -> bool;

        /// Completes `rendered` with what this session tells about its types.
        fn resolve<'a>(
            &'a mut self,
            rendered: &'a mut Self::Rendered,
            extra: &'a mut Self::Extra,
        ) -> impl std::future::Future<Output = QueryResult<()>> + Send + 'a;
    }
}

/// [`AsyncWrapped::drain`](sealed::AsyncWrapped::drain) for diesel-async's boxed row
/// streams: every row read, then handed out again from memory.
#[cfg(feature = "async")]
pub(crate) async fn drain_boxed<'a, R: Send + 'a>(
    rows: futures_util::stream::BoxStream<'a, QueryResult<R>>,
) -> QueryResult<futures_util::stream::BoxStream<'a, QueryResult<R>>> {
    use futures_util::stream::{StreamExt, TryStreamExt};
    let rows: Vec<R> = rows.try_collect().await?;
    Ok(futures_util::stream::iter(rows.into_iter().map(Ok)).boxed())
}

/// The position an observation reports, or an error when it reports none.
pub(crate) fn position_of(obs: Observation) -> QueryResult<Position> {
    match (obs.timeline, obs.lsn) {
        (Some(timeline), Some(lsn)) => Ok(Position { timeline, lsn }),
        _ => Err(Error::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("the server did not report its position".to_string()),
        )),
    }
}

/// A connection type that [`MultiHostConnection`](crate::MultiHostConnection) can wrap.
///
/// Implemented for [`diesel::PgConnection`] (feature `postgres`) and
/// [`diesel::MysqlConnection`] (feature `mysql`). The trait is sealed: the crate's contract
/// with each backend is internal.
pub trait HostConnection: sealed::Common {}

/// A blocking connection type [`MultiHostConnection`](crate::MultiHostConnection) wraps
/// (Diesel's `Connection`): [`diesel::PgConnection`], [`diesel::MysqlConnection`]. For
/// code generic over them: `fn f<C: SyncHostConnection>(conn: &mut MultiHostConnection<C>)`.
pub trait SyncHostConnection: HostConnection + sealed::SyncWrapped {}

impl<C: HostConnection + sealed::SyncWrapped> SyncHostConnection for C {}

/// An async connection type [`MultiHostConnection`](crate::MultiHostConnection) wraps
/// (diesel-async's `AsyncConnection`): `AsyncPgConnection` (feature `async`),
/// `AsyncMysqlConnection` (feature `async-mysql`).
#[cfg(feature = "async")]
pub trait AsyncHostConnection: HostConnection + sealed::AsyncWrapped {}

#[cfg(feature = "async")]
impl<C: HostConnection + sealed::AsyncWrapped> AsyncHostConnection for C {}

/// Why a TCP connection to `host` fails, by the operating system's error kind, when the
/// client library's message does not tell in a language-independent way: refused, timed
/// out (nothing answers), unreachable, or the name does not resolve. `None` when a TCP
/// connection succeeds (the failure is above TCP) or the host is a Unix socket.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn tcp_failure(host: &Host, timeout: Duration) -> Option<HostFailure> {
    if host.is_unix_socket() {
        return None;
    }
    let name = host.hostaddr().unwrap_or(host.host());
    let name = if name.is_empty() { "localhost" } else { name };
    let addrs = match (name, host.port()).to_socket_addrs() {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(_) => return Some(HostFailure::Other(format!("could not resolve {name}"))),
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => return None,
            Err(error) => last = Some(error.kind()),
        }
    }
    Some(match last {
        Some(std::io::ErrorKind::ConnectionRefused) => HostFailure::Refused,
        Some(std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
            HostFailure::TimedOut
        }
        Some(kind) => HostFailure::Other(format!("cannot connect: {kind}")),
        None => HostFailure::Other(format!("{name} resolves to no address")),
    })
}

/// A connection failure the driver's message does not classify further: its first
/// non-empty line.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn other_failure(message: &str) -> HostFailure {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("connection failed");
    HostFailure::Other(line.to_string())
}

/// Runs an async connection attempt for at most `limit` (`TimedOut` after it).
#[cfg(feature = "async")]
pub(crate) async fn within<C>(
    limit: Duration,
    attempt: impl std::future::Future<Output = Result<C, HostFailure>>,
) -> Result<C, HostFailure> {
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(HostFailure::TimedOut),
    }
}
