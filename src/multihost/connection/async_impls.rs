//! diesel-async's connection traits for `MultiHostConnection`, and the async connection's
//! own API.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{CacheSize, Instrumentation};
use diesel::query_builder::{AsQuery, QueryFragment, QueryId};
use diesel::result::{ConnectionError, ConnectionResult, QueryResult};
use diesel_async::pooled_connection::{PoolableConnection, RecyclingMethod};
use diesel_async::{
    AnsiTransactionManager, AsyncConnection, AsyncConnectionCore, AsyncPgConnection,
    SimpleAsyncConnection,
};
use futures_util::future::BoxFuture;

use super::async_shell::{execute_fn, load_fn, PrimaryOp, PrimaryOut};
use super::lifecycle::PingStep;
use super::{missing_session, MultiHostConnection};
use crate::multihost::backend::AsyncHostConnection;
use crate::multihost::classify::Classification;
use crate::multihost::position::CausalToken;
use crate::multihost::topology::{DiscoveryError, HostStatus};
use crate::multihost::url::ConnectionString;

impl<C: AsyncHostConnection> MultiHostConnection<C> {
    /// The synchronous start of every statement: cleans up after a statement given up
    /// mid-flight, installs sessions opened meanwhile, classifies the query and renders it
    /// once (the query cannot be kept across awaits: it need not be `Send`). The SQL is
    /// rendered once for both, and not at all for a query with a static id seen before
    /// when it is safe to cache.
    fn begin_async<T>(&mut self, source: &T) -> QueryResult<(Classification, C::Rendered)>
    where
        T: QueryFragment<C::Db> + QueryId,
    {
        self.settle();
        let id = T::query_id();
        let known_sql = id.and_then(|id| self.ctx.cache.sql_by_id(id));
        let known_class = id.and_then(|id| self.ctx.cache.by_id(id));
        let sql: Arc<str> = match &known_sql {
            Some(sql) => Arc::clone(sql),
            None => C::render_sql(source)?.into(),
        };
        let class = match known_class {
            Some(class) => class,
            None => self.classify_rendered(id, &sql),
        };
        // A remembered SQL is that of a query safe to cache.
        let mut safe_to_cache = known_sql.is_some().then_some(true);
        if let (Some(id), None) = (id, &known_sql) {
            // Diesel's rule for keying a prepared statement by type: the SQL of a query
            // with a static id that is safe to cache is the same every time.
            let safe = source.is_safe_to_cache_prepared(&C::Db::default())?;
            if safe {
                self.ctx.cache.remember_sql(id, Arc::clone(&sql));
            }
            safe_to_cache = Some(safe);
        }
        let rendered = C::render(source, sql, safe_to_cache, &mut self.extra)?;
        Ok((class, rendered))
    }
}

impl<C: AsyncHostConnection> SimpleAsyncConnection for MultiHostConnection<C> {
    fn batch_execute(&mut self, query: &str) -> impl Future<Output = QueryResult<()>> + Send {
        self.settle();
        let class = self.classify_batch(query);
        async move {
            self.run_on_primary_async(class, PrimaryOp::Batch(query), Some(PrimaryOut::Unit))
                .await
                .map(|_| ())
        }
    }
}

impl<C: AsyncHostConnection> AsyncConnectionCore for MultiHostConnection<C> {
    type ExecuteFuture<'conn, 'query> = BoxFuture<'conn, QueryResult<usize>>;
    type LoadFuture<'conn, 'query> = BoxFuture<'conn, QueryResult<Self::Stream<'conn, 'query>>>;
    type Stream<'conn, 'query> = <C as AsyncConnectionCore>::Stream<'conn, 'query>;
    type Row<'conn, 'query> = <C as AsyncConnectionCore>::Row<'conn, 'query>;
    type Backend = C::Db;

    fn load<'conn, 'query, T>(&'conn mut self, source: T) -> Self::LoadFuture<'conn, 'query>
    where
        T: AsQuery + 'query,
        T::Query: QueryFragment<Self::Backend> + QueryId + 'query,
    {
        let query = source.as_query();
        let begun = self.begin_async(&query);
        drop(query);
        let send = load_fn::<C, T::Query>();
        Box::pin(async move {
            let (class, rendered) = begun?;
            self.load_async(class, rendered, send).await
        })
    }

    fn execute_returning_count<'conn, 'query, T>(
        &'conn mut self,
        source: T,
    ) -> Self::ExecuteFuture<'conn, 'query>
    where
        T: QueryFragment<Self::Backend> + QueryId + 'query,
    {
        let begun = self.begin_async(&source);
        drop(source);
        let execute = execute_fn::<C, T>();
        Box::pin(async move {
            let (class, mut rendered) = begun?;
            let out = self
                .run_on_primary_async(
                    class,
                    PrimaryOp::Execute(&mut rendered, execute),
                    Some(PrimaryOut::Count(0)),
                )
                .await;
            C::recycle(rendered, &mut self.extra);
            match out? {
                PrimaryOut::Count(count) => Ok(count),
                _ => Err(missing_session()),
            }
        })
    }
}

impl<C: AsyncHostConnection> AsyncConnection for MultiHostConnection<C> {
    type TransactionManager = AnsiTransactionManager;

    /// Parses `database_url` (see [`ConnectionString`]) and connects (see
    /// [`MultiHostConnection::<AsyncPgConnection>::connect`](MultiHostConnection::connect)).
    fn establish(database_url: &str) -> impl Future<Output = ConnectionResult<Self>> + Send {
        let parsed = database_url.parse::<ConnectionString>();
        async move {
            let cs = parsed.map_err(|e| ConnectionError::InvalidConnectionUrl(e.to_string()))?;
            check_async_url::<C>(&cs)?;
            Self::connect_async(&cs)
                .await
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))
        }
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

/// Rejects, before connecting, what the async connection cannot honour (naming it).
fn check_async_url<C: AsyncHostConnection>(cs: &ConnectionString) -> ConnectionResult<()> {
    if cs.backend() != C::BACKEND {
        return Err(ConnectionError::InvalidConnectionUrl(format!(
            "this connection connects to {}; the URL is a {} URL",
            C::BACKEND,
            cs.backend()
        )));
    }
    for host in cs.hosts() {
        C::check_host(cs, host).map_err(ConnectionError::InvalidConnectionUrl)?;
    }
    Ok(())
}

impl<C: AsyncHostConnection> PoolableConnection for MultiHostConnection<C> {
    /// [`RecyclingMethod::Verified`] costs nothing when a statement succeeded in the last
    /// 500 ms; otherwise it pings the session the next read would use (the standby session
    /// when there is one), never requiring the primary. [`RecyclingMethod::Fast`] checks
    /// nothing; a custom query runs as any statement does.
    #[allow(clippy::manual_async_fn)] // the trait's where clauses must be repeated
    fn ping(
        &mut self,
        config: &RecyclingMethod<Self>,
    ) -> impl Future<Output = QueryResult<()>> + Send
    where
        for<'a> Self: 'a,
        for<'a> diesel::dsl::select<diesel::dsl::AsExprOf<i32, diesel::sql_types::Integer>>:
            diesel_async::methods::LoadQuery<'a, Self, i32>,
        diesel::query_builder::SqlQuery: diesel_async::methods::ExecuteDsl<Self>,
    {
        async move {
            match config {
                RecyclingMethod::Fast => Ok(()),
                RecyclingMethod::Verified => self.verify().await,
                RecyclingMethod::CustomQuery(query) => {
                    diesel_async::RunQueryDsl::execute(diesel::sql_query(query.as_ref()), self)
                        .await
                        .map(|_| ())
                }
                RecyclingMethod::CustomFunction(check) => check(self).await,
            }
        }
    }

    /// Forgets explicit pins and causal tokens (the next checkout is another request), and
    /// says the connection must be dropped when its server session holds state, a
    /// transaction is open or lost, or the process knows its primary is gone.
    fn is_broken(&mut self) -> bool {
        let diesel_tx = self.async_tx();
        self.recycle(diesel_tx)
    }
}

impl<C: AsyncHostConnection> MultiHostConnection<C> {
    /// The validity check of [`RecyclingMethod::Verified`].
    async fn verify(&mut self) -> QueryResult<()> {
        let diesel_tx = self.async_tx();
        let mut step = self.ping_start(diesel_tx);
        if let PingStep::Standby(host) = step {
            let Some(conn) = self.standby.as_mut() else {
                return Err(missing_session());
            };
            match conn.batch_execute("SELECT 1").await {
                Ok(()) => return Ok(()),
                Err(error) => step = self.ping_standby_failed(host, &error),
            }
        }
        match step {
            PingStep::Done(result) => result,
            PingStep::Standby(_) | PingStep::Primary => {
                let result = match self.primary.as_mut() {
                    Some(conn) => conn.batch_execute("SELECT 1").await,
                    None => Ok(()),
                };
                self.ping_primary_done(result, diesel_tx)
            }
        }
    }
}

// ---- The async connections' own API ------------------------------------------------------

/// The public API of `MultiHostConnection<$inner>` for an async inner connection type
/// (inherent methods cannot be generic over both shells: the sync ones have the same names).
macro_rules! async_api {
    ($inner:ty, $sync:literal) => {
        impl MultiHostConnection<$inner> {
            #[doc = concat!("Connects to a parsed connection string (see the sync [`MultiHostConnection::<", $sync, ">::connect`](MultiHostConnection::connect): the same discovery, on the current Tokio runtime).")]
            ///
            /// The topology monitor runs as Tokio tasks on the runtime of the first
            /// connection of a connection string; they stop with the last connection, or
            /// with that runtime (the next connection starts them again).
            ///
            /// # Errors
            ///
            /// A [`DiscoveryError`] that lists every host and why it was not used; also when
            /// called outside a Tokio runtime, or when the string asks for something the
            /// async connection cannot do (TLS: the host's failure names it).
            pub async fn connect(cs: &ConnectionString) -> Result<Self, DiscoveryError> {
                Self::connect_async(cs).await
            }

            /// Probes every host of `cs` once and returns what the monitor knows (see the
            /// sync `probe`).
            ///
            /// # Errors
            ///
            /// When called outside a Tokio runtime.
            pub async fn probe(
                cs: &ConnectionString,
                timeout: Duration,
            ) -> Result<Vec<HostStatus>, DiscoveryError> {
                Self::probe_async(cs, timeout).await
            }

            /// Waits up to `timeout` until a read on this connection would run on a standby
            /// (see the sync `wait_for_standby`). Returns whether it got there.
            pub async fn wait_for_standby(&mut self, timeout: Duration) -> bool {
                self.wait_for_standby_async(timeout).await
            }

            /// A token covering every write this connection has committed (see the sync
            /// `causal_token`).
            ///
            /// # Errors
            ///
            /// When the primary cannot be reached.
            pub async fn causal_token(&mut self) -> QueryResult<CausalToken> {
                self.causal_token_async().await
            }

            /// The primary's inner connection: the escape hatch for backend-specific APIs
            /// (see the sync `primary_connection`).
            ///
            /// # Errors
            ///
            /// When the primary was lost and no new one can be found.
            pub async fn primary_connection(&mut self) -> QueryResult<&mut $inner> {
                self.primary_connection_async().await
            }
        }
    };
}

async_api!(AsyncPgConnection, "PgConnection");
#[cfg(feature = "async-mysql")]
async_api!(diesel_async::AsyncMysqlConnection, "MysqlConnection");
