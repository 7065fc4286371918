//! `MultiHostConnection`: one Diesel connection over a primary and its standbys.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use diesel::connection::{
    AnsiTransactionManager, CacheSize, Connection, ConnectionSealed, Instrumentation,
    InstrumentationEvent, LoadConnection, SimpleConnection, TransactionManager,
};
use diesel::migration::MigrationConnection;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::r2d2::R2D2Connection;
use diesel::result::{ConnectionError, ConnectionResult, DatabaseErrorKind, Error, QueryResult};

use crate::classify::{classify, Classification, TxEffect};
use crate::connection_string::{ConnectionString, Host};
use crate::discovery::{Connected, DiscoveryError, HostFailure, HostStatus, Topology};
use crate::host_connection::HostConnection;

/// Where a statement ran.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementRoute {
    /// On the primary.
    Primary(Host),
    /// On a standby.
    Replica(Host),
}

impl StatementRoute {
    /// The host the statement ran on.
    pub fn host(&self) -> &Host {
        match self {
            StatementRoute::Primary(host) | StatementRoute::Replica(host) => host,
        }
    }
    /// Whether it ran on a standby.
    pub fn is_replica(&self) -> bool {
        matches!(self, StatementRoute::Replica(_))
    }
}

impl fmt::Display for StatementRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatementRoute::Primary(host) => write!(f, "primary {host}"),
            StatementRoute::Replica(host) => write!(f, "replica {host}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastRoute {
    Primary(usize),
    Replica(usize),
}

/// Hashes a `TypeId` by taking its bits as they are: it already is a hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64);
    }
}

type ClassCache = HashMap<std::any::TypeId, Classification, BuildHasherDefault<IdHasher>>;

/// A query shared between two attempts (a replica and then the primary).
struct Shared<T>(Rc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Rc::clone(&self.0))
    }
}

impl<T: Query> Query for Shared<T> {
    type SqlType = T::SqlType;
}

impl<T: QueryId> QueryId for Shared<T> {
    type QueryId = T::QueryId;
    const HAS_STATIC_QUERY_ID: bool = T::HAS_STATIC_QUERY_ID;
}

impl<DB: diesel::backend::Backend, T: QueryFragment<DB>> QueryFragment<DB> for Shared<T> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }
}

/// Forwards the inner connections' events to the instrumentation set on the wrapper.
#[derive(Clone, Default)]
struct Forward(Option<Arc<Mutex<Box<dyn Instrumentation>>>>);

impl Instrumentation for Forward {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let Some(target) = &self.0 {
            target
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .on_connection_event(event);
        }
    }
}

/// Settings applied to every inner connection when it is opened.
#[derive(Clone, Default)]
struct InnerSettings {
    instrumentation: Forward,
    cache_size: Option<CacheSize>,
}

impl InnerSettings {
    fn apply<C: HostConnection>(&self, conn: &mut C) {
        if self.instrumentation.0.is_some() {
            conn.set_instrumentation(self.instrumentation.clone());
        }
        if let Some(size) = self.cache_size {
            conn.set_prepared_statement_cache_size(size);
        }
    }
}

struct PrimarySlot<C> {
    conn: Option<C>,
    host: usize,
    epoch: u64,
    /// The connection failed: drop it (outside a transaction) before the next statement.
    lost: bool,
    /// Handed out by `transaction_state` while no primary connection is open.
    spare: AnsiTransactionManager,
}

struct ReplicaSlot<C> {
    conn: Option<(usize, C)>,
    /// The connection failed: drop it before the next statement.
    broken: bool,
}

#[derive(Default)]
struct Routing {
    /// Pinned by `pin_to_primary` (or by migrations).
    pinned: bool,
    /// Pinned because a statement set session state.
    session_pinned: bool,
    /// A `BEGIN` was sent and no `COMMIT`/`ROLLBACK` since.
    manual_tx: bool,
    last: Option<LastRoute>,
    cache: ClassCache,
}

/// A Diesel connection to a PostgreSQL primary and its standbys, given one multi-host URL.
///
/// Swap `PgConnection` for `MultiHostConnection<PgConnection>` and nothing else changes:
/// it implements [`Connection`], [`LoadConnection`] (both loading modes), [`SimpleConnection`],
/// [`R2D2Connection`], [`MigrationConnection`], `UpdateAndFetchResults` (`save_changes`),
/// `build_transaction()` and `COPY FROM`.
///
/// # Routing rules
///
/// 1. Inside a transaction — begun by Diesel, or by a manual `BEGIN` / `START TRANSACTION`
///    until its `COMMIT` / `ROLLBACK` / `END` — every statement runs on the primary.
/// 2. `execute` and `batch_execute` run on the primary. Statements that set session state
///    (`SET`, `LISTEN`, `PREPARE`, temporary tables, `LOCK`, advisory locks, `set_config`)
///    also pin every later statement of this connection to the primary.
/// 3. `load` runs on a standby only when the SQL is provably a read (see the classifier rules
///    in the README): `SELECT` / `WITH` / `VALUES` / `TABLE` / `SHOW` without a locking clause,
///    a data-modifying CTE or a writing function (`nextval`, advisory locks, ... and the
///    `writing_functions` of the URL). Anything else, `RETURNING` included, runs on the
///    primary. The decision is cached per static query id.
/// 4. A standby that answers SQLSTATE 25006 (read-only transaction) applied nothing: the read
///    is re-run once on the primary. A standby whose connection fails is left alone for
///    `replica_retry_interval` and the read is served by the primary. Writes are never re-sent
///    after they may have reached a server.
/// 5. [`MigrationConnection::setup`] pins the connection to the primary.
/// 6. [`pin_to_primary`](Self::pin_to_primary) / [`unpin`](Self::unpin) pin explicitly;
///    [`last_route`](Self::last_route) tells where the last statement ran.
///
/// # Failover
///
/// When the primary's connection fails outside a transaction, the statement returns its
/// error (a read is re-run, as it is safe to), the shared topology is marked stale, and the
/// next statement rediscovers the primary, waiting up to `failover_timeout` for a standby to
/// be promoted. A primary that answers 25006 has been demoted: the statement (which applied
/// nothing) is re-run on the new primary, unless the session had session state of its own.
/// r2d2 drops a connection whose primary is gone ([`R2D2Connection::is_broken`]).
pub struct MultiHostConnection<C: HostConnection> {
    topology: Arc<Topology>,
    primary: PrimarySlot<C>,
    /// A new primary connection, installed before the next statement (a re-run used it while
    /// the old one was still borrowed).
    pending: Option<Connected<C>>,
    replica: ReplicaSlot<C>,
    routing: Routing,
    settings: InnerSettings,
    instrumentation: Forward,
    #[cfg(feature = "postgres")]
    pub(crate) pg_metadata: diesel::pg::PgMetadataCache,
}

impl<C: HostConnection> fmt::Debug for MultiHostConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiHostConnection")
            .field("url", &self.topology.cs.to_string())
            .field(
                "primary",
                &self
                    .primary
                    .conn
                    .as_ref()
                    .map(|_| self.topology.host(self.primary.host)),
            )
            .field(
                "replica",
                &self
                    .replica
                    .conn
                    .as_ref()
                    .map(|(i, _)| self.topology.host(*i)),
            )
            .field("pinned", &self.routing.pinned)
            .field("session_pinned", &self.routing.session_pinned)
            .field("last_route", &self.last_route())
            .finish_non_exhaustive()
    }
}

fn discovery_error(error: DiscoveryError) -> Error {
    Error::DatabaseError(
        DatabaseErrorKind::ClosedConnection,
        Box::new(error.to_string()),
    )
}

/// Opens a new primary connection through the shared topology.
fn connect_primary<C: HostConnection>(
    topology: &Arc<Topology>,
    wait: bool,
    settings: &InnerSettings,
) -> Result<Connected<C>, DiscoveryError> {
    let mut connected = topology.connect_primary::<C>(wait)?;
    settings.apply(&mut connected.conn);
    Ok(connected)
}

impl<C: HostConnection> MultiHostConnection<C> {
    /// Connects to the primary of a parsed connection string.
    ///
    /// # Errors
    ///
    /// A [`ConnectionError::BadConnection`] that lists every host and why it was not used
    /// when no host matches `target_session_attrs`.
    pub fn connect(cs: &ConnectionString) -> ConnectionResult<Self> {
        let topology = Topology::shared::<C>(cs);
        let wait = topology.in_failover();
        let connected = topology
            .connect_primary::<C>(wait)
            .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
        Ok(MultiHostConnection {
            topology,
            primary: PrimarySlot {
                conn: Some(connected.conn),
                host: connected.host,
                epoch: connected.epoch,
                lost: false,
                spare: AnsiTransactionManager::default(),
            },
            pending: None,
            replica: ReplicaSlot {
                conn: None,
                broken: false,
            },
            routing: Routing::default(),
            settings: InnerSettings::default(),
            instrumentation: Forward::default(),
            #[cfg(feature = "postgres")]
            pg_metadata: diesel::pg::PgMetadataCache::new(),
        })
    }

    /// The connection string this connection was built from.
    pub fn connection_string(&self) -> &ConnectionString {
        &self.topology.cs
    }

    /// Sends every later statement to the primary, until [`unpin`](Self::unpin).
    pub fn pin_to_primary(&mut self) {
        self.routing.pinned = true;
    }

    /// Lets provably read-only statements go to standbys again (outside transactions).
    ///
    /// Session state set by an earlier statement (`SET`, temporary tables, ...) lives on the
    /// primary only: unpinning then lets reads miss it. Prefer a fresh connection.
    pub fn unpin(&mut self) {
        self.routing.pinned = false;
        self.routing.session_pinned = false;
    }

    /// Whether statements are pinned to the primary (explicitly, by migrations, or because a
    /// statement set session state).
    pub fn is_pinned(&self) -> bool {
        self.routing.pinned || self.routing.session_pinned
    }

    /// Where the last statement ran, if any ran.
    pub fn last_route(&self) -> Option<StatementRoute> {
        self.routing.last.map(|last| match last {
            LastRoute::Primary(i) => StatementRoute::Primary(self.topology.host(i).clone()),
            LastRoute::Replica(i) => StatementRoute::Replica(self.topology.host(i).clone()),
        })
    }

    /// The host currently used as primary.
    pub fn primary_host(&self) -> &Host {
        let index = self
            .pending
            .as_ref()
            .map_or(self.primary.host, |pending| pending.host);
        self.topology.host(index)
    }

    /// What this process knows of every host of the connection string.
    pub fn topology(&self) -> Vec<HostStatus> {
        self.topology.status()
    }

    /// The primary's inner connection: the escape hatch for backend-specific APIs.
    ///
    /// Statements run through it bypass the routing rules (and the manual-transaction
    /// tracking); the connection stays pinned to this primary only by what you do with it.
    ///
    /// # Errors
    ///
    /// When the primary was lost and no new one can be found.
    pub fn primary_connection(&mut self) -> QueryResult<&mut C> {
        self.settle();
        self.primary_conn()
    }

    /// The primary connection for a statement that bypasses classification (`COPY FROM`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn primary_for_copy(&mut self) -> QueryResult<&mut C> {
        self.settle();
        self.primary_conn()?;
        ran(
            &mut self.routing,
            &self.topology,
            LastRoute::Primary(self.primary.host),
        );
        self.primary
            .conn
            .as_mut()
            .ok_or(Error::BrokenTransactionManager)
    }

    /// Drops a failed replica, installs a pending primary, drops a lost primary outside a
    /// transaction.
    fn settle(&mut self) {
        if self.replica.broken {
            self.replica.conn = None;
            self.replica.broken = false;
        }
        if let Some(pending) = self.pending.take() {
            self.install_primary(pending);
        }
        if self.primary.lost {
            let in_tx = match self.primary.conn.as_mut() {
                Some(conn) => matches!(
                    AnsiTransactionManager::transaction_manager_status_mut(conn)
                        .transaction_depth(),
                    Ok(Some(_))
                ),
                None => false,
            };
            if !in_tx {
                self.primary.conn = None;
                self.primary.lost = false;
                self.routing.manual_tx = false;
            }
        }
    }

    fn install_primary(&mut self, connected: Connected<C>) {
        self.primary.conn = Some(connected.conn);
        self.primary.host = connected.host;
        self.primary.epoch = connected.epoch;
        self.primary.lost = false;
        self.routing.manual_tx = false;
        // Session state lived on the old primary's session.
        self.routing.session_pinned = false;
        // A standby may have become the primary.
        if let Some((index, _)) = self.replica.conn {
            if index == connected.host {
                self.replica.conn = None;
            }
        }
    }

    /// The primary connection, reconnecting (and waiting for a failover) when it was lost.
    fn primary_conn(&mut self) -> QueryResult<&mut C> {
        if self.primary.conn.is_none() {
            let connected = connect_primary::<C>(&self.topology, true, &self.settings)
                .map_err(discovery_error)?;
            self.install_primary(connected);
        }
        match self.primary.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(Error::BrokenTransactionManager),
        }
    }

    fn in_transaction(&mut self) -> bool {
        if self.routing.manual_tx {
            return true;
        }
        match self.primary.conn.as_mut() {
            Some(conn) => !matches!(
                AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth(),
                Ok(None)
            ),
            None => false,
        }
    }

    fn classify_sql(&self, sql: &str) -> Classification {
        classify(sql, self.topology.cs.writing_functions())
    }

    fn classify_query<T>(&mut self, source: &T) -> QueryResult<Classification>
    where
        T: QueryFragment<C::Backend> + QueryId,
    {
        let id = T::query_id();
        if let Some(id) = id {
            if let Some(found) = self.routing.cache.get(&id) {
                return Ok(*found);
            }
        }
        let sql = C::render_sql(source)?;
        let class = self.classify_sql(&sql);
        if let Some(id) = id {
            self.routing.cache.insert(id, class);
        }
        Ok(class)
    }

    /// Notes what a statement that ran did to the session.
    fn note(&mut self, class: Classification) {
        if class.pins_session {
            self.routing.session_pinned = true;
        }
        match class.tx {
            TxEffect::Begin => self.routing.manual_tx = true,
            TxEffect::End => self.routing.manual_tx = false,
            TxEffect::None => {}
        }
    }

    /// Runs a statement on the primary, re-running it on a new primary when the old one
    /// provably did not apply it (25006 after a demotion), or when it is a read.
    fn on_primary<R>(
        &mut self,
        class: Classification,
        mut op: impl FnMut(&mut C) -> QueryResult<R>,
    ) -> QueryResult<R> {
        self.settle();
        let in_tx = self.in_transaction();
        let host = self.primary.host;
        let epoch = self.primary.epoch;
        let conn = self.primary_conn()?;
        let error = match op(conn) {
            Ok(value) => {
                ran(
                    &mut self.routing,
                    &self.topology,
                    LastRoute::Primary(self.primary.host),
                );
                self.note(class);
                return Ok(value);
            }
            Err(error) => error,
        };
        if class.tx == TxEffect::End {
            // COMMIT / ROLLBACK end the transaction even when they fail.
            self.routing.manual_tx = false;
        }
        let attempt = Attempt {
            host,
            epoch,
            in_tx,
            class,
        };
        if !primary_failed::<C>(
            &self.topology,
            &mut self.primary.lost,
            self.routing.session_pinned,
            &error,
            attempt,
        ) {
            return Err(error);
        }
        let connected =
            connect_primary::<C>(&self.topology, true, &self.settings).map_err(|_| error)?;
        self.install_primary(connected);
        let conn = self.primary_conn()?;
        let value = op(conn)?;
        ran(
            &mut self.routing,
            &self.topology,
            LastRoute::Primary(self.primary.host),
        );
        self.note(class);
        Ok(value)
    }
}

/// Records (and traces) where a statement ran. A free function over the two fields it
/// needs, so that `load` can call it while a connection is still borrowed.
fn ran(routing: &mut Routing, topology: &Topology, last: LastRoute) {
    routing.last = Some(last);
    match last {
        LastRoute::Primary(i) => {
            tracing::trace!(target: "diesel_multidb::routing", host = %topology.host(i), "ran on the primary")
        }
        LastRoute::Replica(i) => {
            tracing::trace!(target: "diesel_multidb::routing", host = %topology.host(i), "ran on a replica")
        }
    }
}

/// One statement's attempt on the primary.
#[derive(Clone, Copy)]
struct Attempt {
    host: usize,
    epoch: u64,
    in_tx: bool,
    class: Classification,
}

/// Records a failure of the primary; returns whether the statement may be re-run on a new
/// primary. A free function over the fields it needs, so that `load` can call it while the
/// primary connection is still borrowed.
fn primary_failed<C: HostConnection>(
    topology: &Topology,
    lost: &mut bool,
    session_pinned: bool,
    error: &Error,
    attempt: Attempt,
) -> bool {
    let Attempt {
        host,
        epoch,
        in_tx,
        class,
    } = attempt;
    if C::is_connection_error(error) {
        tracing::warn!(
            target: "diesel_multidb::routing",
            host = %topology.host(host),
            %error,
            "primary connection failed"
        );
        *lost = true;
        topology.mark_primary_lost(epoch);
        // A read may be re-run; a write's outcome is unknown.
        return !in_tx && class.read_only;
    }
    if C::is_read_only_error(error) && !in_tx && !session_pinned {
        tracing::warn!(
            target: "diesel_multidb::routing",
            host = %topology.host(host),
            "primary answered read-only (25006): demoted, rediscovering"
        );
        *lost = true;
        topology.mark_primary_lost(epoch);
        return true;
    }
    false
}

impl<C: HostConnection> MultiHostConnection<C> {
    /// Opens (or keeps) a replica connection; returns its host index.
    fn ensure_replica(&mut self) -> Option<usize> {
        if let Some((index, _)) = self.replica.conn {
            return Some(index);
        }
        for index in self.topology.replica_candidates(self.primary.host) {
            match crate::discovery::probe::<C>(&self.topology.cs, index) {
                Ok((mut conn, role)) => {
                    self.topology.record_role(index, role);
                    if role.is_standby() {
                        self.settings.apply(&mut conn);
                        tracing::debug!(
                            target: "diesel_multidb::routing",
                            host = %self.topology.host(index),
                            "replica connection opened"
                        );
                        self.replica.conn = Some((index, conn));
                        return Some(index);
                    }
                }
                Err(failure) => self.topology.mark_down(index, failure),
            }
        }
        None
    }

    fn wants_replica(&self, class: Classification, in_tx: bool) -> bool {
        class.read_only
            && !in_tx
            && !self.routing.pinned
            && !self.routing.session_pinned
            && self.topology.cs.replica_reads()
    }
}

impl<C: HostConnection> ConnectionSealed for MultiHostConnection<C> {}

impl<C: HostConnection> SimpleConnection for MultiHostConnection<C> {
    fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        let class = match query {
            // What the transaction manager sends, without tokenizing.
            "BEGIN" => Classification {
                read_only: false,
                pins_session: false,
                tx: TxEffect::Begin,
            },
            "COMMIT" | "ROLLBACK" => Classification {
                read_only: false,
                pins_session: false,
                tx: TxEffect::End,
            },
            _ => self.classify_sql(query),
        };
        // A batch is never re-run as a read: it may hold several statements.
        let class = Classification {
            read_only: false,
            ..class
        };
        self.on_primary(class, |conn| conn.batch_execute(query))
    }
}

impl<C: HostConnection> Connection for MultiHostConnection<C> {
    type Backend = C::Backend;
    type TransactionManager = AnsiTransactionManager;

    /// Parses `database_url` (see [`ConnectionString`]) and connects to the primary.
    fn establish(database_url: &str) -> ConnectionResult<Self> {
        let cs: ConnectionString =
            database_url
                .parse()
                .map_err(|e: crate::ConnectionStringError| {
                    ConnectionError::InvalidConnectionUrl(e.to_string())
                })?;
        Self::connect(&cs)
    }

    fn execute_returning_count<T>(&mut self, source: &T) -> QueryResult<usize>
    where
        T: QueryFragment<Self::Backend> + QueryId,
    {
        let class = self.classify_query(source)?;
        self.on_primary(class, |conn| conn.execute_returning_count(source))
    }

    fn transaction_state(&mut self) -> &mut AnsiTransactionManager {
        self.settle();
        match self.primary.conn.as_mut() {
            Some(conn) => conn.transaction_state(),
            None => &mut self.primary.spare,
        }
    }

    fn instrumentation(&mut self) -> &mut dyn Instrumentation {
        &mut self.instrumentation
    }

    fn set_instrumentation(&mut self, instrumentation: impl Instrumentation) {
        let target: Box<dyn Instrumentation> = Box::new(instrumentation);
        let forward = Forward(Some(Arc::new(Mutex::new(target))));
        self.instrumentation = forward.clone();
        self.settings.instrumentation = forward;
        if let Some(conn) = self.primary.conn.as_mut() {
            self.settings.apply(conn);
        }
        if let Some((_, conn)) = self.replica.conn.as_mut() {
            self.settings.apply(conn);
        }
    }

    fn set_prepared_statement_cache_size(&mut self, size: CacheSize) {
        self.settings.cache_size = Some(size);
        if let Some(conn) = self.primary.conn.as_mut() {
            conn.set_prepared_statement_cache_size(size);
        }
        if let Some((_, conn)) = self.replica.conn.as_mut() {
            conn.set_prepared_statement_cache_size(size);
        }
    }
}

impl<C, B> LoadConnection<B> for MultiHostConnection<C>
where
    C: HostConnection + LoadConnection<B>,
{
    type Cursor<'conn, 'query>
        = <C as LoadConnection<B>>::Cursor<'conn, 'query>
    where
        Self: 'conn;
    type Row<'conn, 'query>
        = <C as LoadConnection<B>>::Row<'conn, 'query>
    where
        Self: 'conn;

    fn load<'conn, 'query, T>(
        &'conn mut self,
        source: T,
    ) -> QueryResult<Self::Cursor<'conn, 'query>>
    where
        T: Query + QueryFragment<Self::Backend> + QueryId + 'query,
        Self::Backend: diesel::expression::QueryMetadata<T::SqlType>,
    {
        self.settle();
        let class = self.classify_query(&source)?;
        let in_tx = self.in_transaction();
        let to_replica = self.wants_replica(class, in_tx);
        if class.pins_session {
            self.routing.session_pinned = true;
        }
        let source = Shared(Rc::new(source));

        // Each attempt borrows a different field (replica, primary, pending primary), so that
        // a cursor that borrows the connection can be returned from any of them.
        if to_replica {
            if let Some(index) = self.ensure_replica() {
                if let Some((_, conn)) = self.replica.conn.as_mut() {
                    match <C as LoadConnection<B>>::load(conn, source.clone()) {
                        Ok(cursor) => {
                            ran(&mut self.routing, &self.topology, LastRoute::Replica(index));
                            return Ok(cursor);
                        }
                        Err(error) if C::is_read_only_error(&error) => {
                            tracing::debug!(
                                target: "diesel_multidb::routing",
                                host = %self.topology.host(index),
                                "replica answered 25006; re-running the read on the primary"
                            );
                        }
                        Err(error) if C::is_connection_error(&error) => {
                            self.topology
                                .mark_down(index, HostFailure::Other(error.to_string()));
                            self.replica.broken = true;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
        }

        if self.primary.conn.is_none() {
            let connected = connect_primary::<C>(&self.topology, true, &self.settings)
                .map_err(discovery_error)?;
            self.pending = Some(connected);
        }
        let error = if let Some(conn) = self.primary.conn.as_mut() {
            match <C as LoadConnection<B>>::load(conn, source.clone()) {
                Ok(cursor) => {
                    ran(
                        &mut self.routing,
                        &self.topology,
                        LastRoute::Primary(self.primary.host),
                    );
                    return Ok(cursor);
                }
                Err(error) => {
                    let attempt = Attempt {
                        host: self.primary.host,
                        epoch: self.primary.epoch,
                        in_tx,
                        class,
                    };
                    let rerun = primary_failed::<C>(
                        &self.topology,
                        &mut self.primary.lost,
                        self.routing.session_pinned,
                        &error,
                        attempt,
                    );
                    if !rerun {
                        return Err(error);
                    }
                    Some(error)
                }
            }
        } else {
            None
        };
        if error.is_some() || self.pending.is_none() {
            let connected = connect_primary::<C>(&self.topology, true, &self.settings);
            match (connected, error) {
                (Ok(connected), _) => self.pending = Some(connected),
                (Err(_), Some(error)) => return Err(error),
                (Err(e), None) => return Err(discovery_error(e)),
            }
        }
        match self.pending.as_mut() {
            Some(pending) => {
                let cursor = <C as LoadConnection<B>>::load(&mut pending.conn, source)?;
                ran(
                    &mut self.routing,
                    &self.topology,
                    LastRoute::Primary(pending.host),
                );
                Ok(cursor)
            }
            None => Err(Error::BrokenTransactionManager),
        }
    }
}

impl<C: HostConnection> R2D2Connection for MultiHostConnection<C> {
    fn ping(&mut self) -> QueryResult<()> {
        self.settle();
        match self.primary.conn.as_mut() {
            Some(conn) => conn.ping().inspect_err(|error| {
                if C::is_connection_error(error) {
                    self.primary.lost = true;
                    self.topology.mark_primary_lost(self.primary.epoch);
                }
            }),
            None => Err(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection,
                Box::new(format!(
                    "the primary {} was lost",
                    self.topology.host(self.primary.host)
                )),
            )),
        }
    }

    fn is_broken(&mut self) -> bool {
        if self.primary.lost || self.pending.is_some() {
            return true;
        }
        match self.primary.conn.as_mut() {
            Some(conn) => conn.is_broken(),
            None => true,
        }
    }
}

impl<C: HostConnection> MigrationConnection for MultiHostConnection<C> {
    /// Pins the connection to the primary, then creates the migrations table there.
    fn setup(&mut self) -> QueryResult<usize> {
        self.pin_to_primary();
        let class = Classification {
            read_only: false,
            pins_session: false,
            tx: TxEffect::None,
        };
        self.on_primary(class, |conn| conn.setup())
    }
}
