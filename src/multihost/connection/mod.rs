//! `MultiHostConnection`: one Diesel connection over a primary and its standbys.
//!
//! What both shells share is here: the wrapper's state, the methods that need no I/O, and
//! the bookkeeping around each statement (installing sessions opened in the background,
//! reporting outcomes to the routing core). [`plan`] decides the I/O a statement needs;
//! `sync_shell.rs` does it blocking (Diesel's traits in `sync_impls.rs`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use diesel::connection::{CacheSize, Instrumentation, InstrumentationEvent};
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};

use crate::multihost::backend::HostConnection;
use crate::multihost::classify::cache::ClassCache;
use crate::multihost::classify::Classification;
use crate::multihost::core::{Next, Outcome, Route, Session, Statement};
use crate::multihost::metrics;
use crate::multihost::position::CausalToken;
use crate::multihost::topology::shared::Monitor;
use crate::multihost::topology::HostStatus;
use crate::multihost::url::{ConnectionString, Host};

#[cfg(feature = "async")]
mod async_impls;
#[cfg(feature = "async")]
mod async_shell;
mod error;
mod lifecycle;
mod plan;
mod sync_impls;
mod sync_shell;

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

/// Forwards the inner connections' events to the instrumentation set on the wrapper.
#[derive(Clone, Default)]
pub(crate) struct Forward(Option<Arc<Mutex<Box<dyn Instrumentation>>>>);

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
pub(crate) struct InnerSettings {
    instrumentation: Forward,
    cache_size: Option<CacheSize>,
}

impl InnerSettings {
    /// Applies the settings to a sync Diesel connection.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) fn apply_sync<C: diesel::Connection>(&self, conn: &mut C) {
        if self.instrumentation.0.is_some() {
            conn.set_instrumentation(self.instrumentation.clone());
        }
        if let Some(size) = self.cache_size {
            conn.set_prepared_statement_cache_size(size);
        }
    }
}

#[cfg(feature = "async")]
impl InnerSettings {
    /// Applies the settings to a diesel-async connection.
    pub(crate) fn apply_async<C: diesel_async::AsyncConnection>(&self, conn: &mut C) {
        if self.instrumentation.0.is_some() {
            conn.set_instrumentation(self.instrumentation.clone());
        }
        if let Some(size) = self.cache_size {
            conn.set_prepared_statement_cache_size(size);
        }
    }
}

/// Everything but the inner connections, so that a function can use it while a cursor
/// borrows one of them.
pub(crate) struct Ctx<C: HostConnection> {
    shared: Arc<C::Monitor>,
    session: Session,
    cache: ClassCache,
    settings: InnerSettings,
    instrumentation: Forward,
    /// A standby session being opened in the background.
    pending_standby: Option<(usize, <C::Monitor as Monitor<C>>::Reply)>,
    /// The standby session failed: dropped before the next statement.
    standby_broken: bool,
    /// A primary session for a re-run was opened into `spare` while `primary` was borrowed.
    spare_is_primary: bool,
    /// The statement running now (async shell): still set when the next call comes, it
    /// was given up mid-flight (its future dropped).
    in_flight: Option<InFlight>,
}

/// Which of the wrapper's session fields a statement ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "async"), allow(dead_code))]
enum Slot {
    Primary,
    Standby,
    Spare,
}

/// A statement sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    st: Statement,
    route: Route,
    slot: Slot,
}

/// A ready place to run a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ready {
    Standby(usize),
    Primary(usize),
    Absorbed,
}

/// A Diesel connection to a primary and its standbys (PostgreSQL) or a source and its
/// replicas (MySQL, MariaDB), given one multi-host URL.
///
/// Swap `PgConnection` for `MultiHostConnection<PgConnection>` and nothing else changes:
/// it implements [`Connection`](diesel::Connection),
/// [`LoadConnection`](diesel::connection::LoadConnection) (both loading modes),
/// [`SimpleConnection`](diesel::connection::SimpleConnection),
/// [`R2D2Connection`](diesel::r2d2::R2D2Connection),
/// [`MigrationConnection`](diesel::migration::MigrationConnection), `UpdateAndFetchResults`
/// (`save_changes`), `build_transaction()` and `COPY FROM`. The same for `MysqlConnection`
/// (feature `mysql`); and for diesel-async's `AsyncPgConnection` (feature `async`) and
/// `AsyncMysqlConnection` (feature `async-mysql`), for which it implements
/// `AsyncConnection`, `AsyncConnectionCore`, `SimpleAsyncConnection` and
/// `PoolableConnection` (deadpool, bb8), with the same rules (see the README's async
/// section for what differs: errors without proof, cancellation).
///
/// # Routing rules
///
/// 1. Inside a transaction — begun by Diesel, or by a manual `BEGIN` / `START TRANSACTION`
///    until its `COMMIT` / `ROLLBACK` / `END` — every statement runs on the primary.
/// 2. `execute` and `batch_execute` run on the primary. Statements that set session state
///    (`SET`, `LISTEN`, `PREPARE`, temporary tables, `LOCK`, advisory locks, `set_config`)
///    also pin every later statement of this connection to the primary.
/// 3. `load` runs on a standby only when the SQL is provably a read (see the classifier rules
///    in the README) and the standby may serve reads: it is up, not lagging more than
///    `max_replica_lag`, following the current primary, and (read-your-writes) has replayed
///    every write this connection committed. Otherwise it runs on the primary at once: a
///    read never waits for a standby.
/// 4. A statement is re-sent only when the server provably applied nothing: a read that
///    failed on a standby runs again on the primary; a statement the client could not send
///    runs again; after a demoted primary answered 25006, one statement that cannot have
///    committed anything (no batch, no `CALL`, no `DO`) runs again on the new primary; a
///    read whose primary connection failed runs again on the new primary. Never inside a
///    transaction, never without the session's state.
/// 5. [`MigrationConnection::setup`](diesel::migration::MigrationConnection::setup) pins the
///    connection to the primary.
/// 6. [`pin_to_primary`](Self::pin_to_primary) / [`unpin`](Self::unpin) pin explicitly;
///    [`last_route`](Self::last_route) tells where the last statement ran.
///
/// # Failover
///
/// A transaction whose primary session fails is lost: every later statement of it fails
/// (`ClosedConnection`) until it is rolled back, as with a plain connection whose server is
/// gone; only then does the connection move to the new primary. A session that held state
/// (`SET`, temporary tables, ...) on a lost primary makes the next statement fail once,
/// saying so. Otherwise the next statement goes to the new primary, waiting up to
/// `failover_timeout` for one; reads go on on the standbys meanwhile.
///
/// # Pools
///
/// With r2d2, a checkout costs no round trip when the connection ran a statement in the
/// last 500 ms; otherwise it pings the session its next read would use (a standby when it
/// has one), never requiring the primary. A returned connection forgets explicit pins and
/// causal tokens; one whose server session holds state, or with a transaction open, or
/// whose primary the process knows is gone, is dropped instead of reused.
pub struct MultiHostConnection<C: HostConnection> {
    ctx: Ctx<C>,
    /// The transaction manager of this connection (the inner sessions' own managers are
    /// not used).
    tm: C::TxState,
    primary: Option<C>,
    standby: Option<C>,
    /// A primary session opened for a re-run (see [`Ctx::spare_is_primary`]).
    spare: Option<C>,
    /// What the backend keeps besides the sessions (PostgreSQL: type metadata).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) extra: C::Extra,
}

impl<C: HostConnection> fmt::Debug for MultiHostConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cs = self.ctx.shared.cs();
        let host = |i: usize| cs.hosts()[i].to_string();
        f.debug_struct("MultiHostConnection")
            .field("url", &cs.to_string())
            .field(
                "primary",
                &self.ctx.session.primary_session().map(|(h, _)| host(h)),
            )
            .field("standby", &self.ctx.session.standby_session().map(host))
            .field("pinned", &self.ctx.session.is_pinned())
            .field("last_route", &self.last_route())
            .finish_non_exhaustive()
    }
}

impl<C: HostConnection> Drop for MultiHostConnection<C> {
    fn drop(&mut self) {
        let session = &mut self.ctx.session;
        self.ctx
            .shared
            .with_state(|topo| session.sessions_dropped(topo));
        self.ctx.shared.detach();
    }
}

impl<C: HostConnection> MultiHostConnection<C> {
    /// A connection over the topology `shared`, with no session yet.
    fn unconnected(shared: Arc<C::Monitor>) -> Self {
        let cs = shared.cs();
        let writable_target = matches!(
            cs.target_session_attrs(),
            crate::TargetSessionAttrs::ReadWrite | crate::TargetSessionAttrs::Primary
        );
        let session = Session::new(cs.replica_reads(), cs.read_your_writes(), writable_target);
        MultiHostConnection {
            ctx: Ctx {
                shared,
                session,
                cache: ClassCache::default(),
                settings: InnerSettings::default(),
                instrumentation: Forward::default(),
                pending_standby: None,
                standby_broken: false,
                spare_is_primary: false,
                in_flight: None,
            },
            tm: C::TxState::default(),
            primary: None,
            standby: None,
            spare: None,
            extra: C::Extra::default(),
        }
    }

    /// The connection string this connection was built from.
    pub fn connection_string(&self) -> &ConnectionString {
        self.ctx.shared.cs()
    }

    /// Sends every later statement to the primary, until [`unpin`](Self::unpin) or until
    /// the connection goes back to its pool.
    pub fn pin_to_primary(&mut self) {
        self.ctx.session.pin();
    }

    /// Lets provably read-only statements go to standbys again (outside transactions).
    ///
    /// Session state set by an earlier statement (`SET`, temporary tables, ...) still keeps
    /// the connection on the primary: it lives only there.
    pub fn unpin(&mut self) {
        self.ctx.session.unpin();
    }

    /// Whether statements are pinned to the primary (explicitly, by migrations, or because a
    /// statement set session state).
    pub fn is_pinned(&self) -> bool {
        self.ctx.session.is_pinned()
    }

    /// Where the last statement ran, if the last statement succeeded: the host and what it
    /// is (a primary or a standby), as the topology knew it then.
    pub fn last_route(&self) -> Option<StatementRoute> {
        use crate::multihost::core::LastRoute;
        let host = |i: usize| self.ctx.shared.cs().hosts()[i].clone();
        self.ctx.session.last().map(|last| match last {
            LastRoute::Primary(i) => StatementRoute::Primary(host(i)),
            LastRoute::Standby(i) => StatementRoute::Replica(host(i)),
        })
    }

    /// The host writes go to, as the process knows it now (the shared topology, which a
    /// failover noticed by any connection updates): `None` while no primary is known (a
    /// failover in progress) or two hosts are writable.
    pub fn primary_host(&self) -> Option<&Host> {
        let index = self
            .ctx
            .shared
            .with_state(|topo| topo.primary().ok().map(|(h, _)| h));
        index.map(|i| &self.ctx.shared.cs().hosts()[i])
    }

    /// What this process knows of every host of the connection string: role, timeline,
    /// position, lag, when last seen, why a host serves no reads.
    pub fn topology(&self) -> Vec<HostStatus> {
        self.ctx.shared.status()
    }

    /// Later reads on this connection see at least what `token` covers: they run on a
    /// standby that has replayed it, else on the primary. Forgotten when the connection
    /// goes back to its pool.
    ///
    /// A token taken before a failover (on an older timeline than the current primary's)
    /// holds reads to the new primary's position when this connection first looks at it:
    /// every write that survived the failover is there.
    pub fn read_after(&mut self, token: &CausalToken) {
        self.ctx.session.read_after(*token);
    }

    /// Sends the wrapper's instrumentation events, and those of every inner session, to
    /// `instrumentation`.
    fn instrument(&mut self, instrumentation: Box<dyn Instrumentation>) {
        let forward = Forward(Some(Arc::new(Mutex::new(instrumentation))));
        self.ctx.instrumentation = forward.clone();
        self.ctx.settings.instrumentation = forward;
        self.apply_settings_to_sessions();
    }

    /// Applies the settings to every open session (new ones get them when opened).
    fn apply_settings_to_sessions(&mut self) {
        for conn in [&mut self.primary, &mut self.standby, &mut self.spare]
            .into_iter()
            .flatten()
        {
            conn.apply_settings(&self.ctx.settings);
        }
    }

    /// The position a causal token covers when it is known without a round trip: this
    /// connection's writes, else the primary's latest known position.
    fn known_token_position(&mut self) -> Option<crate::multihost::position::Position> {
        let now = Instant::now();
        let session = &mut self.ctx.session;
        self.ctx
            .shared
            .with_state(|topo| match session.token_floor(topo, now) {
                Ok(Some(position)) => Some(position),
                Ok(None) => topo.latest_position(),
                Err(_) => None,
            })
    }

    /// Before each statement: drops failed sessions, installs sessions opened meanwhile.
    fn settle(&mut self) {
        self.abandoned();
        if std::mem::take(&mut self.ctx.standby_broken) {
            self.standby = None;
            let session = &mut self.ctx.session;
            self.ctx
                .shared
                .with_state(|topo| session.standby_changed(None, topo));
        }
        if std::mem::take(&mut self.ctx.spare_is_primary) {
            self.primary = self.spare.take();
        }
        if self.primary.is_some() && self.ctx.session.primary_session().is_none() {
            // The core forgot it (its server failed).
            self.primary = None;
        }
        if let Some((host, reply)) = &mut self.ctx.pending_standby {
            let host = *host;
            match <C::Monitor as Monitor<C>>::try_take(reply) {
                Some(Ok(mut conn)) => {
                    self.ctx.pending_standby = None;
                    conn.apply_settings(&self.ctx.settings);
                    self.standby = Some(conn);
                    let session = &mut self.ctx.session;
                    self.ctx
                        .shared
                        .with_state(|topo| session.standby_changed(Some(host), topo));
                    tracing::debug!(target: "diesel_multidb::routing", host = %self.ctx.shared.cs().hosts()[host], "standby session ready");
                }
                Some(Err(_)) => {
                    self.ctx.pending_standby = None;
                    let session = &mut self.ctx.session;
                    self.ctx
                        .shared
                        .with_state(|topo| session.forget_wanted_standby(topo));
                }
                None => {}
            }
        }
    }

    /// Asks the core for a standby session in the background, before the first read
    /// needs one.
    fn want_standby(&mut self) {
        let session = &mut self.ctx.session;
        self.ctx
            .shared
            .with_state(|topo| session.want_standby(topo, Instant::now()));
        self.ctx.request_wanted_standby();
    }

    /// Classifies the text given to `batch_execute`. Creating Diesel's migrations table
    /// pins the connection to the primary (as `MigrationConnection::setup` does): the
    /// migration harness then reads which migrations ran where they ran.
    fn classify_batch(&mut self, query: &str) -> Classification {
        match query {
            // What the transaction manager sends, without tokenizing.
            "BEGIN" => Classification::BEGIN,
            "COMMIT" => Classification::COMMIT,
            "ROLLBACK" => Classification::ROLLBACK,
            diesel::migration::CREATE_MIGRATIONS_TABLE => {
                self.ctx.session.pin();
                self.classify_text(query)
            }
            _ => self.classify_text(query),
        }
    }

    fn classify_text(&mut self, sql: &str) -> Classification {
        let extra = self.ctx.shared.cs().writing_functions();
        self.ctx.cache.classify_text(C::BACKEND, sql, extra)
    }

    fn classify_query<T>(&mut self, source: &T) -> QueryResult<Classification>
    where
        T: QueryFragment<C::Db> + QueryId,
    {
        let id = T::query_id();
        if let Some(id) = id {
            if let Some(found) = self.ctx.cache.by_id(id) {
                return Ok(found);
            }
        }
        let sql = C::render_sql(source)?;
        Ok(self.classify_rendered(id, &sql))
    }

    /// Classifies a query's rendered SQL: remembered by its static id when it has one,
    /// else by its text.
    fn classify_rendered(&mut self, id: Option<std::any::TypeId>, sql: &str) -> Classification {
        match id {
            Some(id) => {
                let class = crate::multihost::classify::classify_for(
                    C::BACKEND,
                    sql,
                    self.ctx.shared.cs().writing_functions(),
                );
                self.ctx.cache.remember_id(id, class);
                class
            }
            None => self.classify_text(sql),
        }
    }
}

impl<C: HostConnection> Ctx<C> {
    /// Asks for a session to the standby the core wants, when none is being opened.
    fn request_wanted_standby(&mut self) {
        let Some(wanted) = self.session.wanted_standby() else {
            return;
        };
        if self
            .pending_standby
            .as_ref()
            .is_some_and(|(host, _)| *host == wanted)
        {
            return;
        }
        if self.session.standby_session() == Some(wanted) {
            let session = &mut self.session;
            self.shared
                .with_state(|topo| session.forget_wanted_standby(topo));
            return;
        }
        self.pending_standby = Some((wanted, self.shared.request_session(wanted)));
    }

    /// Tells the core what happened to a statement; returns what to do next.
    fn report<R>(
        &mut self,
        st: &Statement,
        route: Route,
        result: &QueryResult<R>,
        retry: bool,
    ) -> Next {
        let outcome = match result {
            Ok(_) => Outcome::Ok,
            Err(error) => C::outcome_of(error),
        };
        if let (Err(error), Route::Standby(host)) = (result, route) {
            tracing::debug!(target: "diesel_multidb::routing", host = %self.shared.cs().hosts()[host], %error, "a read failed on a standby");
        }
        self.report_outcome(st, route, outcome, retry)
    }

    /// [`report`](Self::report) with the outcome already known.
    fn report_outcome(
        &mut self,
        st: &Statement,
        route: Route,
        outcome: Outcome,
        retry: bool,
    ) -> Next {
        let loss_before = self.session.loss();
        let session = &mut self.session;
        let next = self
            .shared
            .with_state(|topo| session.outcome(st, route, outcome, retry, topo, Instant::now()));
        let host = match route {
            Route::Standby(host) | Route::Primary { host, .. } => Some(host),
            _ => None,
        };
        if let Some(host) = host {
            let label = &self.shared.labels()[host];
            match (outcome, next) {
                (Outcome::Ok, _) => metrics::statement(label, matches!(route, Route::Standby(_))),
                (_, Next::RetryOnPrimary | Next::RetryOnNewPrimary) => {
                    let reason = match (route, outcome) {
                        (Route::Standby(_), _) => "standby_error",
                        (_, Outcome::NotSent) => "not_sent",
                        (_, Outcome::ReadOnly) => "demoted",
                        _ => "connection_lost",
                    };
                    metrics::rerun(label, reason);
                }
                _ => {}
            }
        }
        if loss_before.is_none() {
            if let Some(what) = self.session.loss() {
                metrics::lost(what);
            }
        }
        if outcome != Outcome::Ok {
            self.shared.wake();
        }
        if let Route::Standby(_) = route {
            if matches!(outcome, Outcome::ConnectionLost | Outcome::NotSent) {
                self.standby_broken = true;
            }
        }
        next
    }
}

/// What a shell does after an attempt on the primary, by the core's [`Next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterPrimary {
    /// Return the attempt's result.
    Return,
    /// Return the value of an absorbed statement (or the result, when there is none).
    Succeed,
    /// Fail with the core's refusal.
    Fail(crate::multihost::core::Refusal),
    /// Run the statement again (once).
    Again,
}

/// The core's [`Next`] after an attempt on the primary; `retry`: this attempt was already
/// the re-run (then it is not run again), set when a re-run is asked.
fn after_primary(next: Next, retry: &mut bool) -> AfterPrimary {
    match next {
        Next::Done => AfterPrimary::Return,
        Next::Fail(refusal) => AfterPrimary::Fail(refusal),
        Next::Succeed => AfterPrimary::Succeed,
        Next::RetryOnPrimary | Next::RetryOnNewPrimary if *retry => AfterPrimary::Return,
        Next::RetryOnPrimary | Next::RetryOnNewPrimary => {
            *retry = true;
            AfterPrimary::Again
        }
    }
}

/// The transaction state of a Diesel transaction manager, as the core needs it.
fn diesel_tx(
    status: &mut diesel::connection::TransactionManagerStatus,
) -> crate::multihost::core::DieselTx {
    use crate::multihost::core::DieselTx;
    match status.transaction_depth() {
        Ok(None) => DieselTx::None,
        Ok(Some(_)) => DieselTx::Open,
        Err(_) => DieselTx::Broken,
    }
}

/// An error for a place the shell should have had ready (a bug, reported as Diesel's
/// broken-manager error rather than a panic).
fn missing_session() -> Error {
    Error::BrokenTransactionManager
}
