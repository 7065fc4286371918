//! The async shell: runs each statement's [`Plan`] on a Tokio runtime, awaiting where the
//! sync shell blocks. Diesel's async traits are in `async_impls.rs`.
//!
//! # Cancellation
//!
//! A future of this connection may be dropped at any await (a request timeout). Waiting
//! and connecting are safe to drop: nothing was sent. A statement in flight is not: it is
//! marked before it is given to a session and unmarked when the session answers; a mark
//! still there when the connection is used again means its future was dropped mid-flight.
//! That session is then closed (the server rolls back what it had open), the core learns
//! that the statement's outcome is unknown (its transaction is lost, its session state
//! gone), and nothing is sent again on its behalf.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use diesel::query_builder::QueryId;
use diesel::result::{DatabaseErrorKind, Error, QueryResult};
use diesel_async::{AsyncConnectionCore, SimpleAsyncConnection, TransactionManager};

use super::plan::{load_attempts, outcome_of, prepare, LoadAttempt};
use super::{
    after_primary, diesel_tx, error, missing_session, AfterPrimary, InFlight, MultiHostConnection,
    Ready, Slot,
};
use crate::multihost::backend::position_of;
use crate::multihost::backend::rendered::Keyed;
use crate::multihost::backend::AsyncHostConnection;
use crate::multihost::classify::Classification;
use crate::multihost::core::{DieselTx, Outcome, Route, Statement, Via};
use crate::multihost::position::{CausalToken, Position};
use crate::multihost::topology::tasks::Shared;
use crate::multihost::topology::{DiscoveryError, HostStatus};
use crate::multihost::url::ConnectionString;

/// Gives a rendering to a session's `load`: under the static query id of the query it was
/// rendered from when that query has one (see [`Keyed`]), else with none. (The third
/// argument only names the `'query` lifetime of the rows: a future of this connection
/// that holds the function must not depend on it.)
pub(super) type LoadFn<C> =
    for<'c, 'query> fn(
        &'c mut C,
        <C as crate::multihost::backend::sealed::AsyncWrapped>::Rendered,
        PhantomData<&'query ()>,
    ) -> <C as AsyncConnectionCore>::LoadFuture<'c, 'query>;

/// [`LoadFn`] for `execute_returning_count`.
pub(super) type ExecuteFn<C> = for<'c> fn(
    &'c mut C,
    <C as crate::multihost::backend::sealed::AsyncWrapped>::Rendered,
)
    -> <C as AsyncConnectionCore>::ExecuteFuture<'c, 'static>;

/// The [`LoadFn`] of a query of type `Q`.
pub(super) fn load_fn<C: AsyncHostConnection, Q: QueryId>() -> LoadFn<C> {
    if Q::HAS_STATIC_QUERY_ID {
        load_keyed::<C, Q::QueryId>
    } else {
        load_plain::<C>
    }
}

/// The [`ExecuteFn`] of a query of type `Q`.
pub(super) fn execute_fn<C: AsyncHostConnection, Q: QueryId>() -> ExecuteFn<C> {
    if Q::HAS_STATIC_QUERY_ID {
        execute_keyed::<C, Q::QueryId>
    } else {
        AsyncConnectionCore::execute_returning_count::<C::Rendered>
    }
}

/// `load` of a rendering under the static query id `I`.
fn load_keyed<'c, 'query, C: AsyncHostConnection, I: 'static>(
    conn: &'c mut C,
    rendered: C::Rendered,
    _: PhantomData<&'query ()>,
) -> C::LoadFuture<'c, 'query> {
    AsyncConnectionCore::load(conn, Keyed::<_, I>::new(rendered))
}

/// `load` of a rendering without a static query id.
fn load_plain<'c, 'query, C: AsyncHostConnection>(
    conn: &'c mut C,
    rendered: C::Rendered,
    _: PhantomData<&'query ()>,
) -> C::LoadFuture<'c, 'query> {
    AsyncConnectionCore::load(conn, rendered)
}

/// `execute_returning_count` of a rendering under the static query id `I`.
fn execute_keyed<'c, C: AsyncHostConnection, I: 'static>(
    conn: &'c mut C,
    rendered: C::Rendered,
) -> C::ExecuteFuture<'c, 'static> {
    AsyncConnectionCore::execute_returning_count(conn, Keyed::<_, I>::new(rendered))
}

/// What a statement on the primary does.
pub(super) enum PrimaryOp<'a, C: AsyncHostConnection> {
    /// `execute_returning_count` of a rendered query.
    Execute(&'a mut C::Rendered, ExecuteFn<C>),
    /// `batch_execute`.
    Batch(&'a str),
    /// Asks the primary its position (for a causal token).
    Position,
    /// Nothing: only makes the primary session ready.
    Touch,
}

/// What a [`PrimaryOp`] gave.
#[derive(Debug, Clone, Copy)]
pub(super) enum PrimaryOut {
    Count(usize),
    Unit,
    Position(Position),
}

/// The error of a statement not given to a session whose connection is closed.
fn closed_session() -> Error {
    Error::DatabaseError(
        DatabaseErrorKind::UnableToSendCommand,
        Box::new("the session's connection is closed; the statement was not sent".to_string()),
    )
}

/// Runs `op` on `conn` (a primary session).
async fn run_op<C: AsyncHostConnection>(
    conn: &mut C,
    extra: &mut C::Extra,
    op: &mut PrimaryOp<'_, C>,
) -> QueryResult<PrimaryOut> {
    match op {
        PrimaryOp::Execute(query, execute) => {
            if C::needs_resolving(query) {
                // Boxed: the lookups' state is large, and rarely needed.
                Box::pin(conn.resolve(query, extra)).await?;
            }
            let query = (**query).clone();
            execute(conn, query).await.map(PrimaryOut::Count)
        }
        // Boxed: its state would otherwise be part of every `execute_returning_count`'s.
        PrimaryOp::Batch(sql) => Box::pin(SimpleAsyncConnection::batch_execute(conn, sql))
            .await
            .map(|()| PrimaryOut::Unit),
        // Boxed, as rarely needed: the state of every statement would carry it.
        PrimaryOp::Position => {
            position_of(Box::pin(conn.observe()).await?).map(PrimaryOut::Position)
        }
        PrimaryOp::Touch => Ok(PrimaryOut::Unit),
    }
}

impl<C: AsyncHostConnection> MultiHostConnection<C> {
    /// See `MultiHostConnection::<AsyncPgConnection>::connect`.
    pub(super) async fn connect_async(cs: &ConnectionString) -> Result<Self, DiscoveryError> {
        let mut conn = Self::unconnected(Shared::<C>::attach(cs)?);
        conn.connect_first().await?;
        Ok(conn)
    }

    /// See `MultiHostConnection::<AsyncPgConnection>::probe`.
    pub(super) async fn probe_async(
        cs: &ConnectionString,
        timeout: Duration,
    ) -> Result<Vec<HostStatus>, DiscoveryError> {
        let shared = Shared::<C>::attach(cs)?;
        shared.wait_round(timeout).await;
        if shared.lock().topo.primary().is_ok() {
            shared.wait_round(timeout).await;
        }
        let status = shared.lock().status(&shared.cs);
        shared.detach();
        Ok(status)
    }

    /// See `MultiHostConnection::<AsyncPgConnection>::wait_for_standby`.
    pub(super) async fn wait_for_standby_async(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.standby_poll() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// See `MultiHostConnection::<AsyncPgConnection>::causal_token`.
    pub(super) async fn causal_token_async(&mut self) -> QueryResult<CausalToken> {
        self.settle();
        if let Some(position) = self.known_token_position() {
            return Ok(CausalToken { position });
        }
        let asked = Instant::now();
        let out = self
            .run_on_primary_async(Classification::READ_ON_PRIMARY, PrimaryOp::Position, None)
            .await?;
        let PrimaryOut::Position(position) = out else {
            return Err(missing_session());
        };
        self.ctx.session.position_read(asked, position);
        Ok(CausalToken { position })
    }

    /// See `MultiHostConnection::<AsyncPgConnection>::primary_connection`.
    pub(super) async fn primary_connection_async(&mut self) -> QueryResult<&mut C> {
        self.settle();
        self.run_on_primary_async(Classification::WRITE, PrimaryOp::Touch, None)
            .await?;
        self.ctx.session.pin();
        let host = self.ctx.session.primary_session().map_or(0, |(h, _)| h);
        self.ctx.session.wrote_outside(host, false, Instant::now());
        self.primary.as_mut().ok_or_else(missing_session)
    }

    /// The state of the wrapper's transaction manager.
    pub(super) fn async_tx(&mut self) -> DieselTx {
        diesel_tx(
            <diesel_async::AnsiTransactionManager as TransactionManager<Self>>::transaction_manager_status_mut(
                self,
            ),
        )
    }

    /// Runs a statement that goes to the primary session (never to a standby), with the
    /// core's re-run rules. `absorbed`: the answer of a statement the core absorbs (a
    /// `ROLLBACK` of a transaction whose primary is gone).
    pub(super) async fn run_on_primary_async(
        &mut self,
        class: Classification,
        mut op: PrimaryOp<'_, C>,
        absorbed: Option<PrimaryOut>,
    ) -> QueryResult<PrimaryOut> {
        self.settle();
        let st = Statement {
            class,
            via: Via::Primary,
            diesel_tx: self.async_tx(),
        };
        let mut retry = false;
        loop {
            let ready = prepare(&mut self.ctx, &mut self.primary, None, &st, false).await?;
            let host = match ready {
                Ready::Absorbed => {
                    return absorbed.ok_or_else(|| {
                        Error::QueryBuilderError("a ROLLBACK was expected here".into())
                    })
                }
                Ready::Primary(host) => host,
                Ready::Standby(_) => return Err(missing_session()),
            };
            let route = Route::Primary {
                host,
                connect: false,
            };
            let Some(conn) = self.primary.as_mut() else {
                return Err(missing_session());
            };
            let (result, outcome) = if conn.is_closed() {
                (Err(closed_session()), Outcome::NotSent)
            } else {
                self.ctx.in_flight = Some(InFlight {
                    st,
                    route,
                    slot: Slot::Primary,
                });
                let result = run_op(conn, &mut self.extra, &mut op).await;
                self.ctx.in_flight = None;
                let outcome = outcome_of::<C, _>(&result);
                (result, outcome)
            };
            let next = self.ctx.report_outcome(&st, route, outcome, retry);
            if self.ctx.session.primary_session().is_none() {
                self.primary = None;
            }
            match after_primary(next, &mut retry) {
                AfterPrimary::Return => return result,
                AfterPrimary::Fail(refusal) => {
                    return Err(error::refusal(&self.ctx.shared.cs, refusal))
                }
                AfterPrimary::Succeed => return absorbed.map_or(result, Ok),
                AfterPrimary::Again => {
                    tracing::info!(target: "diesel_multidb::routing", failed_on = %self.ctx.shared.cs.hosts()[host], "re-running the statement on the primary (a new one if it changed)");
                }
            }
        }
    }

    /// Runs a read: on a standby when the core says so, else (or when it fails there) on
    /// the primary, and once more on a new primary when the primary's connection failed.
    /// Each attempt uses a different session field, so that the stream, which may borrow
    /// its session, can be returned from any of them.
    pub(super) async fn load_async<'conn, 'query>(
        &'conn mut self,
        class: Classification,
        mut query: C::Rendered,
        send: LoadFn<C>,
    ) -> QueryResult<C::Stream<'conn, 'query>> {
        let st = Statement {
            class,
            via: Via::Load,
            diesel_tx: self.async_tx(),
        };
        let MultiHostConnection {
            ctx,
            primary,
            standby,
            spare,
            extra,
            ..
        } = self;

        let mut attempt = AsyncLoad {
            query: &mut query,
            send,
            _rows: PhantomData,
        };
        let rows = load_attempts(ctx, primary, standby, spare, extra, st, &mut attempt).await;
        C::recycle(query, extra);
        rows
    }
}

/// A read on the async shell: not sent when the session is closed; otherwise marked in
/// flight while it runs (a future dropped there leaves the mark for `settle`).
struct AsyncLoad<'a, 'query, C: AsyncHostConnection> {
    query: &'a mut C::Rendered,
    send: LoadFn<C>,
    _rows: PhantomData<&'query ()>,
}

impl<'query, C: AsyncHostConnection> LoadAttempt<C> for AsyncLoad<'_, 'query, C> {
    type Rows<'conn>
        = C::Stream<'conn, 'query>
    where
        C: 'conn;

    async fn attempt<'conn>(
        &mut self,
        ctx: &mut super::Ctx<C>,
        conn: &'conn mut C,
        extra: &mut C::Extra,
        st: Statement,
        route: Route,
        slot: Slot,
    ) -> (QueryResult<C::Stream<'conn, 'query>>, Outcome) {
        attempt_load(ctx, conn, extra, self.query, self.send, st, route, slot).await
    }
}

/// One attempt of a read on `conn`: not sent when the session is closed; otherwise marked
/// in flight while it runs. Returns the result and its outcome.
#[allow(clippy::too_many_arguments)]
async fn attempt_load<'conn, 'query, C: AsyncHostConnection>(
    ctx: &mut super::Ctx<C>,
    conn: &'conn mut C,
    extra: &mut C::Extra,
    query: &mut C::Rendered,
    send: LoadFn<C>,
    st: Statement,
    route: Route,
    slot: Slot,
) -> (QueryResult<C::Stream<'conn, 'query>>, Outcome) {
    if conn.is_closed() {
        return (Err(closed_session()), Outcome::NotSent);
    }
    ctx.in_flight = Some(InFlight { st, route, slot });
    let mut result = load_on(conn, extra, query, send).await;
    if !st.class.read_only {
        // A statement that may write is acknowledged once the server has finished it (its
        // commit included), not at its first row.
        if let Ok(rows) = result {
            result = C::drain(rows).await;
        }
    }
    ctx.in_flight = None;
    let outcome = outcome_of::<C, _>(&result);
    (result, outcome)
}

/// Runs a rendered read on one session (resolving its types there first when needed).
async fn load_on<'conn, 'query, C: AsyncHostConnection>(
    conn: &'conn mut C,
    extra: &mut C::Extra,
    query: &mut C::Rendered,
    send: LoadFn<C>,
) -> QueryResult<C::Stream<'conn, 'query>> {
    if C::needs_resolving(query) {
        // Boxed: the lookups' state is large, and rarely needed.
        Box::pin(conn.resolve(query, extra)).await?;
    }
    send(conn, query.clone(), PhantomData).await
}
