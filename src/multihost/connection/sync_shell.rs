//! The sync shell: runs each statement's [`Plan`] blocking, on the caller's thread.

use std::rc::Rc;
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};

use super::{
    after_primary, diesel_tx, error, missing_session, AfterPrimary, Ctx, MultiHostConnection, Ready,
};
use crate::multihost::backend::SyncHostConnection;
use crate::multihost::classify::Classification;
use crate::multihost::core::{DieselTx, Route, Statement, Via};
use crate::multihost::position::CausalToken;
use crate::multihost::topology::shared::run_now;
use crate::multihost::topology::threads::Shared;
use crate::multihost::topology::{DiscoveryError, HostStatus};
use crate::multihost::url::ConnectionString;

/// A query shared between two attempts (a standby and then the primary).
pub(super) struct Shared2<T>(pub(super) Rc<T>);

impl<T> Clone for Shared2<T> {
    fn clone(&self) -> Self {
        Shared2(Rc::clone(&self.0))
    }
}

impl<T: Query> Query for Shared2<T> {
    type SqlType = T::SqlType;
}

impl<T: QueryId> QueryId for Shared2<T> {
    type QueryId = T::QueryId;
    const HAS_STATIC_QUERY_ID: bool = T::HAS_STATIC_QUERY_ID;
}

impl<DB: diesel::backend::Backend, T: QueryFragment<DB>> QueryFragment<DB> for Shared2<T> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }
}

impl<C: SyncHostConnection> MultiHostConnection<C> {
    /// Connects to a parsed connection string.
    ///
    /// Finds the primary (probing every host at once; the first matching answer wins) and
    /// opens a session to it; a session to a standby is opened in the background for the
    /// first read. While a failover is in progress (the process knew a primary less than
    /// `failover_timeout` ago) and a standby may serve reads, it returns at once without a
    /// primary session: reads work, and the first write waits for the new primary.
    ///
    /// # Errors
    ///
    /// A [`DiscoveryError`] that lists every host and why it was not used when no host
    /// matches `target_session_attrs` (or two hosts are writable);
    /// [`DiscoveryError::is_permanent`] tells whether retrying can help.
    pub fn connect(cs: &ConnectionString) -> Result<Self, DiscoveryError> {
        let mut conn = Self::unconnected(Shared::<C>::attach(cs));
        run_now(conn.connect_first())?;
        Ok(conn)
    }

    /// Probes every host of `cs` once (all at once, through the process's shared topology
    /// monitor) and returns what the monitor knows: role, timeline, position, lag, why a
    /// host serves no reads. Waits until every host has answered or failed, at most
    /// `timeout` (a host that never answers shows as still being probed). Needs no primary:
    /// this is what the CLI's `topology` command shows.
    pub fn probe(cs: &ConnectionString, timeout: Duration) -> Vec<HostStatus> {
        let shared = Shared::<C>::attach(cs);
        shared.wait_round(timeout);
        // One more round when a primary was just found: standbys are then judged against
        // a primary position taken after them (lag, whether they follow it).
        if shared.lock().topo.primary().is_ok() {
            shared.wait_round(timeout);
        }
        let status = shared.status();
        shared.detach();
        status
    }

    /// Waits up to `timeout` until a read on this connection would run on a standby: it has
    /// a session to a standby that may serve reads and that has replayed this
    /// connection's writes. Returns whether it got there.
    ///
    /// Reads never wait for a standby by themselves (they run on the primary meanwhile);
    /// this is for warming a connection up, and for tests that check routing.
    pub fn wait_for_standby(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.standby_poll() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A token covering every write this connection has committed, to pass to
    /// [`read_after`](Self::read_after) on another connection (maybe in another process)
    /// that must see those writes.
    ///
    /// Costs at most one round trip to the primary (none when the position is already
    /// known from the topology monitor). A connection that has not written gets a token
    /// of the primary's latest known position.
    ///
    /// # Errors
    ///
    /// When the primary cannot be reached.
    pub fn causal_token(&mut self) -> QueryResult<CausalToken> {
        self.settle();
        if let Some(position) = self.known_token_position() {
            return Ok(CausalToken { position });
        }
        let asked = Instant::now();
        let position =
            self.run_on_primary(Classification::READ_ON_PRIMARY, |c| c.current_position())?;
        self.ctx.session.position_read(asked, position);
        Ok(CausalToken { position })
    }

    /// The primary's inner connection: the escape hatch for backend-specific APIs.
    ///
    /// Statements run through it bypass the routing rules and are not seen by the
    /// transaction tracking; the connection is pinned to the primary from then on (until
    /// [`unpin`](Self::unpin)), and its reads wait for standbys to replay what it may have
    /// written.
    ///
    /// # Errors
    ///
    /// When the primary was lost and no new one can be found.
    pub fn primary_connection(&mut self) -> QueryResult<&mut C> {
        self.settle();
        self.run_on_primary(Classification::WRITE, |_| Ok(()))?;
        self.ctx.session.pin();
        let host = self.ctx.session.primary_session().map_or(0, |(h, _)| h);
        self.ctx.session.wrote_outside(host, false, Instant::now());
        self.primary.as_mut().ok_or_else(missing_session)
    }

    /// Runs `op` on the primary session for a statement that bypasses classification
    /// (`COPY FROM`), and records the write.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn on_primary_raw<R, E: From<Error>>(
        &mut self,
        op: impl FnOnce(&mut C) -> Result<R, E>,
    ) -> Result<R, E> {
        self.settle();
        self.run_on_primary(Classification::WRITE, |_| Ok(()))?;
        let in_tx = self.sync_tx() != DieselTx::None;
        let Some(conn) = self.primary.as_mut() else {
            return Err(missing_session().into());
        };
        let result = op(conn);
        let host = self.ctx.session.primary_session().map_or(0, |(h, _)| h);
        if result.is_ok() {
            self.ctx.session.wrote_outside(host, in_tx, Instant::now());
        }
        result
    }

    pub(super) fn sync_tx(&mut self) -> DieselTx {
        diesel_tx(
            <AnsiTransactionManager as TransactionManager<Self>>::transaction_manager_status_mut(
                self,
            ),
        )
    }

    /// Runs a statement that goes to the primary session (never to a standby), with the
    /// core's re-run rules.
    pub(super) fn run_on_primary<R>(
        &mut self,
        class: Classification,
        mut op: impl FnMut(&mut C) -> QueryResult<R>,
    ) -> QueryResult<R> {
        self.run_on_primary_or(class, &mut op, || None)
    }

    pub(super) fn run_on_primary_or<R>(
        &mut self,
        class: Classification,
        op: &mut dyn FnMut(&mut C) -> QueryResult<R>,
        absorbed: impl Fn() -> Option<R>,
    ) -> QueryResult<R> {
        self.settle();
        let st = Statement {
            class,
            via: Via::Primary,
            diesel_tx: self.sync_tx(),
        };
        let mut retry = false;
        loop {
            let host = match prepare(&mut self.ctx, &mut self.primary, None, &st, false)? {
                Ready::Absorbed => {
                    return absorbed().ok_or_else(|| {
                        Error::QueryBuilderError("a ROLLBACK was expected here".into())
                    })
                }
                Ready::Primary(host) => host,
                Ready::Standby(_) => return Err(missing_session()),
            };
            let Some(conn) = self.primary.as_mut() else {
                return Err(missing_session());
            };
            let result = op(conn);
            let route = Route::Primary {
                host,
                connect: false,
            };
            let next = self.ctx.report(&st, route, &result, retry);
            if self.ctx.session.primary_session().is_none() {
                self.primary = None;
            }
            match after_primary(next, &mut retry) {
                AfterPrimary::Return => return result,
                AfterPrimary::Fail(refusal) => {
                    return Err(error::refusal(&self.ctx.shared.cs, refusal))
                }
                AfterPrimary::Succeed => return absorbed().map_or(result, Ok),
                AfterPrimary::Again => {
                    tracing::info!(target: "diesel_multidb::routing", failed_on = %self.ctx.shared.cs.hosts()[host], "re-running the statement on the primary (a new one if it changed)");
                }
            }
        }
    }
}

/// [`plan::prepare`](super::plan::prepare), blocking.
pub(super) fn prepare<C: SyncHostConnection>(
    ctx: &mut Ctx<C>,
    primary: &mut Option<C>,
    standby: Option<&mut Option<C>>,
    st: &Statement,
    standby_ok: bool,
) -> QueryResult<Ready> {
    run_now(super::plan::prepare(ctx, primary, standby, st, standby_ok))
}
