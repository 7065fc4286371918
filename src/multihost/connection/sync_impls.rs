//! Diesel's connection traits for `MultiHostConnection`.

use std::marker::PhantomData;
use std::rc::Rc;

use diesel::connection::{
    AnsiTransactionManager, CacheSize, Connection, ConnectionSealed, Instrumentation,
    LoadConnection, SimpleConnection,
};
use diesel::migration::MigrationConnection;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::r2d2::R2D2Connection;
use diesel::result::{ConnectionError, ConnectionResult, QueryResult};

use super::lifecycle::PingStep;
use super::plan::{load_attempts, outcome_of, LoadAttempt};
use super::sync_shell::Shared2;
use super::{missing_session, Ctx, MultiHostConnection, Slot};
use crate::multihost::backend::SyncHostConnection;
use crate::multihost::classify::Classification;
use crate::multihost::core::Outcome;
use crate::multihost::core::{Route, Statement, Via};
use crate::multihost::topology::shared::run_now;

impl<C: SyncHostConnection> ConnectionSealed for MultiHostConnection<C> {}

impl<C: SyncHostConnection> SimpleConnection for MultiHostConnection<C> {
    fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        let class = self.classify_batch(query);
        self.run_on_primary_or(class, &mut |conn| conn.batch_execute(query), || Some(()))
    }
}

impl<C: SyncHostConnection> Connection for MultiHostConnection<C> {
    type Backend = C::Db;
    type TransactionManager = AnsiTransactionManager;

    /// Parses `database_url` (see [`ConnectionString`](crate::ConnectionString)) and
    /// connects (see [`MultiHostConnection::connect`]).
    fn establish(database_url: &str) -> ConnectionResult<Self> {
        let cs: crate::ConnectionString =
            database_url
                .parse()
                .map_err(|e: crate::ConnectionStringError| {
                    ConnectionError::InvalidConnectionUrl(e.to_string())
                })?;
        Self::connect(&cs).map_err(|e| ConnectionError::BadConnection(e.to_string()))
    }

    fn execute_returning_count<T>(&mut self, source: &T) -> QueryResult<usize>
    where
        T: QueryFragment<Self::Backend> + QueryId,
    {
        let class = self.classify_query(source)?;
        self.run_on_primary_or(
            class,
            &mut |conn| conn.execute_returning_count(source),
            || Some(0),
        )
    }

    fn transaction_state(&mut self) -> &mut AnsiTransactionManager {
        &mut self.tm
    }

    fn instrumentation(&mut self) -> &mut dyn Instrumentation {
        &mut self.ctx.instrumentation
    }

    fn set_instrumentation(&mut self, instrumentation: impl Instrumentation) {
        self.instrument(Box::new(instrumentation));
    }

    fn set_prepared_statement_cache_size(&mut self, size: CacheSize) {
        self.ctx.settings.cache_size = Some(size);
        self.apply_settings_to_sessions();
    }
}

impl<C, B> LoadConnection<B> for MultiHostConnection<C>
where
    C: SyncHostConnection + LoadConnection<B>,
{
    type Cursor<'conn, 'query>
        = <C as LoadConnection<B>>::Cursor<'conn, 'query>
    where
        Self: 'conn;
    type Row<'conn, 'query>
        = <C as LoadConnection<B>>::Row<'conn, 'query>
    where
        Self: 'conn;

    /// Each attempt uses a different session field (standby, primary, a spare primary for
    /// a re-run), so that a cursor borrowing one can be returned from any of them.
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
        let st = Statement {
            class,
            via: Via::Load,
            diesel_tx: self.sync_tx(),
        };
        let source = Shared2(Rc::new(source));

        let MultiHostConnection {
            ctx,
            primary,
            standby,
            spare,
            extra,
            ..
        } = self;
        let mut attempt: SyncLoad<'_, _, B> = SyncLoad {
            source,
            _backend: PhantomData,
        };
        run_now(load_attempts(
            ctx,
            primary,
            standby,
            spare,
            extra,
            st,
            &mut attempt,
        ))
    }
}

/// A read on the sync shell: the query, shared by the attempts.
struct SyncLoad<'query, T, B> {
    source: Shared2<T>,
    _backend: PhantomData<(&'query (), B)>,
}

impl<'query, C, B, T> LoadAttempt<C> for SyncLoad<'query, T, B>
where
    C: SyncHostConnection + LoadConnection<B>,
    T: Query + QueryFragment<C::Backend> + QueryId + 'query,
    C::Backend: diesel::expression::QueryMetadata<T::SqlType>,
{
    type Rows<'conn>
        = <C as LoadConnection<B>>::Cursor<'conn, 'query>
    where
        C: 'conn;

    async fn attempt<'conn>(
        &mut self,
        _ctx: &mut Ctx<C>,
        conn: &'conn mut C,
        _extra: &mut C::Extra,
        _st: Statement,
        _route: Route,
        _slot: Slot,
    ) -> (QueryResult<Self::Rows<'conn>>, Outcome) {
        let result = <C as LoadConnection<B>>::load(conn, self.source.clone());
        let outcome = outcome_of::<C, _>(&result);
        (result, outcome)
    }
}

impl<C: SyncHostConnection> R2D2Connection for MultiHostConnection<C> {
    /// Costs nothing when a statement succeeded in the last 500 ms; otherwise pings the
    /// session the next read would use (the standby session when there is one), never
    /// requiring the primary. Sessions the process knows are stale are dropped first (the
    /// next statement opens new ones). Fails only when the connection carries something
    /// lost: a transaction or session state whose primary is gone.
    fn ping(&mut self) -> QueryResult<()> {
        let diesel_tx = self.sync_tx();
        let mut step = self.ping_start(diesel_tx);
        if let PingStep::Standby(host) = step {
            let Some(conn) = self.standby.as_mut() else {
                return Err(missing_session());
            };
            match conn.ping() {
                Ok(()) => return Ok(()),
                Err(error) => step = self.ping_standby_failed(host, &error),
            }
        }
        match step {
            PingStep::Done(result) => result,
            PingStep::Standby(_) | PingStep::Primary => {
                let result = match self.primary.as_mut() {
                    Some(conn) => conn.ping(),
                    None => Ok(()),
                };
                self.ping_primary_done(result, diesel_tx)
            }
        }
    }

    /// Called by r2d2 when the connection goes back to its pool: forgets explicit pins and
    /// causal tokens, and says the connection must be dropped when its server session holds
    /// state, a transaction is open or lost, or the process knows its primary is gone.
    fn is_broken(&mut self) -> bool {
        let diesel_tx = self.sync_tx();
        self.recycle(diesel_tx)
    }
}

impl<C: SyncHostConnection> MigrationConnection for MultiHostConnection<C> {
    /// Pins the connection to the primary, then creates the migrations table there.
    fn setup(&mut self) -> QueryResult<usize> {
        self.pin_to_primary();
        self.run_on_primary(Classification::WRITE, |conn| conn.setup())
    }
}
