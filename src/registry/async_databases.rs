//! The async registry: the aliases, routers and apps of a [`Config`](crate::Config), each
//! alias served by a pool (deadpool, or bb8) of diesel-async connections.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError as DieselPoolError, PoolableConnection,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, TransactionManager};
use futures_util::future::{BoxFuture, FutureExt};

use crate::registry::alias::{Alias, PoolError};
use crate::registry::alias_url::Connect;
use crate::registry::apps::{App, Model, ModelInfo};
use crate::registry::builder::{BuildError, DatabasesBuilder, Prepared};
use crate::registry::catalog::{catalog_accessors, Catalog};
use crate::registry::config::Config;
use crate::registry::metrics;
use crate::registry::migrate::records::{records_connection, RecordsConnection};
use crate::registry::migrate::{
    run_alias, status_of, AliasMigrationStatus, AliasMigrations, Goal, MigrateError, MigrateEvent,
    MigrateTo, MigrationBackend,
};
use crate::registry::pool::{AttemptLog, ConnectError, InFlight, Observe, StatementObserver};
use crate::registry::router::{Hints, Route, RouterChain};
use crate::{BackendKind, ConnectionString, DiscoveryError, MultiHostConnection};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The supertraits of [`AsyncRegistryConnection`]'s pool manager: bb8's when the `bb8`
/// feature is on.
mod bounds {
    #![allow(unreachable_pub)]
    #[cfg(feature = "bb8")]
    use diesel_async::pooled_connection::PoolError;

    /// bb8's manager trait (feature `bb8`).
    #[cfg(feature = "bb8")]
    pub trait Bb8Manager<C>: bb8::ManageConnection<Connection = C, Error = PoolError> {}
    #[cfg(feature = "bb8")]
    impl<C, M: bb8::ManageConnection<Connection = C, Error = PoolError>> Bb8Manager<C> for M {}
    /// Nothing: no bb8.
    #[cfg(not(feature = "bb8"))]
    pub trait Bb8Manager<C> {}
    #[cfg(not(feature = "bb8"))]
    impl<C, M> Bb8Manager<C> for M {}

    /// Seals [`AsyncRegistryConnection`](super::AsyncRegistryConnection).
    pub trait Sealed {}
}

/// A connection type the async registry pools: [`MultiHostConnection`]`<AsyncPgConnection>`
/// for PostgreSQL aliases (the default of [`AsyncDatabases`]), and with the `async-mysql`
/// feature `MultiHostConnection<AsyncMysqlConnection>` for MySQL / MariaDB aliases. Sealed:
/// its items are the registry's business.
///
/// A registry pools one connection type: every alias must name its backend (checked at
/// build).
pub trait AsyncRegistryConnection:
    PoolableConnection + Send + Sized + 'static + bounds::Sealed
{
    /// The backend every alias must name.
    const BACKEND: BackendKind;
    #[doc(hidden)]
    type Manager: deadpool::managed::Manager<Type = Self, Error = DieselPoolError>
        + bounds::Bb8Manager<Self>
        + Send
        + Sync
        + 'static;
    #[doc(hidden)]
    type Db: MigrationBackend;
    #[doc(hidden)]
    type Records: RecordsConnection<Backend = Self::Db>;
    #[doc(hidden)]
    fn manager(manager: AsyncDieselConnectionManager<Self>) -> Self::Manager;
    #[doc(hidden)]
    fn connect(cs: &ConnectionString) -> BoxFuture<'_, Result<Self, DiscoveryError>>;
    #[doc(hidden)]
    fn records(conn: AsyncPooledConnection<Self>) -> Self::Records;
}

/// A connection of an alias for the sync migrations code, as the async registry checks one
/// out for it.
type Records<C> = Box<<C as AsyncRegistryConnection>::Records>;

/// A progress callback of the async migrations, moved to the blocking thread they run on.
type Progress = Box<dyn FnMut(MigrateEvent<'_>) + Send>;

/// Implements [`AsyncRegistryConnection`] for `MultiHostConnection<$inner>`.
macro_rules! registry_connection {
    ($inner:ty, $kind:expr, $db:ty) => {
        impl bounds::Sealed for MultiHostConnection<$inner> {}

        impl AsyncRegistryConnection for MultiHostConnection<$inner> {
            const BACKEND: BackendKind = $kind;
            type Manager = AsyncDieselConnectionManager<Self>;
            type Db = $db;
            type Records = AsyncConnectionWrapper<AsyncPooledConnection<Self>>;
            fn manager(manager: AsyncDieselConnectionManager<Self>) -> Self::Manager {
                manager
            }
            fn connect(cs: &ConnectionString) -> BoxFuture<'_, Result<Self, DiscoveryError>> {
                MultiHostConnection::<$inner>::connect(cs).boxed()
            }
            fn records(conn: AsyncPooledConnection<Self>) -> Self::Records {
                AsyncConnectionWrapper::from(conn)
            }
        }

        records_connection!(
            AsyncConnectionWrapper<AsyncPooledConnection<MultiHostConnection<$inner>>>,
            |_: &AsyncConnectionWrapper<AsyncPooledConnection<MultiHostConnection<$inner>>>| $kind,
            |c: &mut AsyncConnectionWrapper<AsyncPooledConnection<MultiHostConnection<$inner>>>| {
                (***c).pin_to_primary()
            }
        );
    };
}

registry_connection!(AsyncPgConnection, BackendKind::Postgres, diesel::pg::Pg);
#[cfg(feature = "async-mysql")]
registry_connection!(
    diesel_async::AsyncMysqlConnection,
    BackendKind::Mysql,
    diesel::mysql::Mysql
);

/// The pool of one alias.
enum Pool<C: AsyncRegistryConnection> {
    Deadpool(deadpool::managed::Pool<C::Manager>),
    #[cfg(feature = "bb8")]
    Bb8(bb8::Pool<C::Manager>),
}

impl<C: AsyncRegistryConnection> Clone for Pool<C> {
    fn clone(&self) -> Self {
        match self {
            Pool::Deadpool(p) => Pool::Deadpool(p.clone()),
            #[cfg(feature = "bb8")]
            Pool::Bb8(p) => Pool::Bb8(p.clone()),
        }
    }
}

/// A connection held from a pool.
enum Held<C: AsyncRegistryConnection> {
    Deadpool(deadpool::managed::Object<C::Manager>),
    #[cfg(feature = "bb8")]
    Bb8(bb8::PooledConnection<'static, C::Manager>),
}

/// A connection checked out of an alias's async pool; it goes back to the pool when dropped.
///
/// Dereferences to the connection `C`; it is itself a diesel-async connection (diesel-async
/// implements `AsyncConnection` for what dereferences to one), so queries take `&mut conn`.
/// A connection dropped inside a transaction is not reused: the pool closes it and the
/// server rolls the transaction back.
pub struct AsyncPooledConnection<
    C: AsyncRegistryConnection = MultiHostConnection<AsyncPgConnection>,
> {
    alias: String,
    conn: Held<C>,
}

impl<C: AsyncRegistryConnection> AsyncPooledConnection<C> {
    /// The alias this connection was asked for.
    pub fn alias(&self) -> &str {
        &self.alias
    }
}

impl<C: AsyncRegistryConnection> fmt::Debug for AsyncPooledConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncPooledConnection")
            .field("alias", &self.alias)
            .field("backend", &C::BACKEND)
            .finish()
    }
}

impl<C: AsyncRegistryConnection> Deref for AsyncPooledConnection<C> {
    type Target = C;
    fn deref(&self) -> &C {
        match &self.conn {
            Held::Deadpool(c) => c,
            #[cfg(feature = "bb8")]
            Held::Bb8(c) => c,
        }
    }
}

impl<C: AsyncRegistryConnection> DerefMut for AsyncPooledConnection<C> {
    fn deref_mut(&mut self) -> &mut C {
        match &mut self.conn {
            Held::Deadpool(c) => c,
            #[cfg(feature = "bb8")]
            Held::Bb8(c) => c,
        }
    }
}

/// The async registry: named pools of diesel-async connections, the router chain and the
/// apps, built from the same [`Config`](crate::Config) and routers as `Databases`
/// (`crate::Databases`, the sync registry) by [`DatabasesBuilder::build_async`].
///
/// `C` is the connection type every alias is pooled as:
/// [`MultiHostConnection`]`<AsyncPgConnection>` by default (PostgreSQL aliases, one host or
/// several), `MultiHostConnection<AsyncMysqlConnection>` with the `async-mysql` feature.
/// SQLite aliases cannot be served (diesel-async has no SQLite connection).
///
/// Routing, hints, mirrors, validation and the migration planner are the sync registry's;
/// only the pools differ. It is `Send + Sync`: share it (`Arc`).
pub struct AsyncDatabases<C: AsyncRegistryConnection = MultiHostConnection<AsyncPgConnection>> {
    catalog: Arc<Catalog>,
    /// One per alias, in the catalog's order (a mirror in test mode holds its primary's).
    pools: Vec<Pool<C>>,
    bb8: bool,
}

impl<C: AsyncRegistryConnection> fmt::Debug for AsyncDatabases<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncDatabases")
            .field("aliases", &self.catalog.aliases)
            .field("router", &self.catalog.router)
            .field("apps", &self.catalog.apps)
            .field("pool", &if self.bb8 { "bb8" } else { "deadpool" })
            .finish()
    }
}

impl Config {
    /// Validates the configuration and builds the async registry (see
    /// [`DatabasesBuilder::build_async`]).
    ///
    /// # Errors
    ///
    /// See [`DatabasesBuilder::build_async`].
    pub async fn build_async<C: AsyncRegistryConnection>(
        self,
    ) -> Result<AsyncDatabases<C>, BuildError> {
        self.builder().build_async().await
    }
}

impl DatabasesBuilder {
    /// Pools of the async registry: bb8 when `on`, deadpool otherwise. Defaults to deadpool.
    #[cfg(feature = "bb8")]
    pub fn bb8_pools(mut self, on: bool) -> Self {
        self.bb8 = on;
        self
    }

    /// Validates everything, as [`build`](Self::build) does, and builds the async registry:
    /// one pool of `C` per alias (a mirror under [`test_mirrors`](Self::test_mirrors) shares
    /// its primary's). Pools are created without connecting; it is `async` only so that
    /// pools start on the current Tokio runtime.
    ///
    /// Pool settings: deadpool honours `max_size`, the checkout timeout
    /// ([`Alias::checkout_timeout`]), and `max_lifetime_secs` and `idle_timeout_secs` at
    /// checkout: a connection older than its lifetime, or not checked out for the idle
    /// timeout, is closed when it would be handed out (deadpool has no reaper; the
    /// connection then stays open until that checkout). bb8 ([`bb8_pools`](Self::bb8_pools))
    /// honours all of these and `min_idle` as r2d2 does.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_multidb::{AsyncDatabases, Config, DatabaseConfig};
    ///
    /// let databases: AsyncDatabases = Config::new()
    ///     .database("default", DatabaseConfig::new("postgres://app@db1:5432,db2:5432/app"))
    ///     .builder()
    ///     .build_async()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// The errors of [`build`](Self::build), and [`BuildError::NotAsync`] naming an alias
    /// the registry cannot serve: a SQLite alias, an alias of another backend than `C`'s, an
    /// alias given an r2d2 hook.
    pub async fn build_async<C: AsyncRegistryConnection>(
        self,
    ) -> Result<AsyncDatabases<C>, BuildError> {
        #[cfg(feature = "bb8")]
        let bb8 = self.bb8;
        #[cfg(not(feature = "bb8"))]
        let bb8 = false;
        if let Some(alias) = self.hooked_aliases().into_iter().next() {
            return Err(BuildError::NotAsync {
                alias,
                reason: "r2d2 hooks (connection_customizer, event_handler, error_handler) apply to the sync registry only".into(),
            });
        }
        let Prepared { catalog, observer } = self.prepare(|name, target| {
            let not_async = |reason: String| BuildError::NotAsync {
                alias: name.to_owned(),
                reason,
            };
            match target.kind {
                BackendKind::Sqlite => Err(not_async(
                    "diesel-async has no SQLite connection (use the sync registry)".into(),
                )),
                kind if kind != C::BACKEND => Err(not_async(format!(
                    "it is a {kind} database and this registry pools {} connections{}",
                    C::BACKEND,
                    if kind == BackendKind::Mysql && !cfg!(feature = "async-mysql") {
                        " (MySQL needs the `async-mysql` feature)"
                    } else {
                        ""
                    }
                ))),
                _ => Ok(()),
            }
        })?;
        let mut own = Vec::with_capacity(catalog.aliases.len());
        for alias in &catalog.aliases {
            own.push(pool_of::<C>(alias, observer.clone(), bb8));
        }
        let mut pools = Vec::with_capacity(own.len());
        let mut catalog = catalog;
        let served: Vec<usize> = catalog.aliases.iter().map(|a| catalog.serving(a)).collect();
        for (alias, i) in catalog.aliases.iter_mut().zip(served) {
            pools.push(own[i].0.clone());
            alias.attempts = own[i].1.clone();
        }
        Ok(AsyncDatabases {
            catalog: Arc::new(catalog),
            pools,
            bb8,
        })
    }
}

/// The pool of one alias and the log of its connection attempts.
fn pool_of<C: AsyncRegistryConnection>(
    alias: &Alias,
    observer: Option<StatementObserver>,
    bb8: bool,
) -> (Pool<C>, Arc<AttemptLog>) {
    let attempts = Arc::new(AttemptLog::default());
    let Connect::MultiHost(cs) = &alias.target.connect else {
        unreachable!("SQLite aliases are refused before pools are made")
    };
    let cs: Arc<ConnectionString> = Arc::new((**cs).clone());
    let name = alias.name.clone();
    let log = attempts.clone();
    let setup = setup_callback::<C, _>(move |_: &str| {
        let (cs, log, name, observer) = (cs.clone(), log.clone(), name.clone(), observer.clone());
        async move {
            let in_flight = InFlight::new(&log);
            let outcome = C::connect(&cs).await.map_err(ConnectError::NoServer);
            drop(in_flight);
            log.record(outcome.as_ref().map(drop));
            metrics::connection_attempt(&name, outcome.is_ok());
            match outcome {
                Ok(mut conn) => {
                    tracing::debug!(alias = %name, "opened a connection");
                    if let Some(observer) = observer {
                        conn.set_instrumentation(Observe {
                            alias: name.clone(),
                            observer,
                        });
                    }
                    Ok(conn)
                }
                Err(e) => {
                    tracing::warn!(
                        alias = %name,
                        error = %e,
                        cause = e.source_text().as_deref().unwrap_or(""),
                        permanent = e.is_permanent(),
                        "connection attempt failed"
                    );
                    Err(diesel::ConnectionError::BadConnection(e.to_string()))
                }
            }
        }
        .boxed()
    });
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(setup);
    // The URL is not used (the setup connects to the parsed connection string).
    let manager = C::manager(AsyncDieselConnectionManager::new_with_config(
        alias.name.clone(),
        config,
    ));
    let s = alias.settings;
    #[cfg(feature = "bb8")]
    if bb8 {
        let pool = bb8::Pool::builder()
            .max_size(s.max_size)
            .min_idle(Some(s.min_idle).filter(|&n| n > 0))
            .connection_timeout(alias.checkout_timeout())
            .idle_timeout(s.idle_timeout)
            .max_lifetime(s.max_lifetime)
            .retry_connection(false)
            .build_unchecked(manager);
        return (Pool::Bb8(pool), attempts);
    }
    let _ = bb8;
    let (idle_timeout, max_lifetime) = (s.idle_timeout, s.max_lifetime);
    let pool = deadpool::managed::Pool::builder(manager)
        .max_size(s.max_size as usize)
        // deadpool has no idle timeout or lifetime of its own: a connection past either is
        // dropped when it is next taken for a checkout (the checkout opens another).
        .pre_recycle(deadpool::managed::Hook::sync_fn(move |_, metrics| {
            let expired = max_lifetime.is_some_and(|limit| metrics.age() >= limit)
                || idle_timeout.is_some_and(|limit| metrics.last_used() >= limit);
            if expired {
                Err(deadpool::managed::HookError::Message(
                    "past the pool's idle timeout or lifetime".into(),
                ))
            } else {
                Ok(())
            }
        }))
        .build()
        .expect("a deadpool pool without timeouts needs no runtime");
    (Pool::Deadpool(pool), attempts)
}

/// Gives a connection-setup closure the higher-ranked signature diesel-async wants.
fn setup_callback<C, F>(f: F) -> F
where
    F: for<'a> Fn(&'a str) -> BoxFuture<'a, diesel::ConnectionResult<C>>,
{
    f
}

/// Checks a connection out of `pool` for `alias`: at once if one is idle, else waiting for
/// one up to [`Alias::checkout_timeout`]. A failed connection attempt is retried until then,
/// unless it failed for good (authentication): then the checkout fails at once.
async fn checkout<C: AsyncRegistryConnection>(
    alias: &Alias,
    pool: &Pool<C>,
) -> Result<Held<C>, PoolError> {
    let started = Instant::now();
    let limit = alias.checkout_timeout();
    let fail = |source: Option<ConnectError>| PoolError::Checkout {
        alias: alias.name.clone(),
        waited: started.elapsed(),
        source,
    };
    let mut pause = Duration::from_millis(25);
    let mut waited = false;
    loop {
        let remaining = limit.saturating_sub(started.elapsed());
        let attempt = async {
            match pool {
                Pool::Deadpool(p) => p.get().await.map(Held::Deadpool).map_err(drop),
                #[cfg(feature = "bb8")]
                Pool::Bb8(p) => p.get_owned().await.map(Held::Bb8).map_err(drop),
            }
        };
        match tokio::time::timeout(remaining, attempt).await {
            Ok(Ok(conn)) => {
                metrics::checkout(&alias.name, "ok", waited);
                return Ok(conn);
            }
            Ok(Err(())) => {
                let last = alias.attempts.last_failure();
                if last.as_ref().is_some_and(ConnectError::is_permanent) {
                    metrics::checkout(&alias.name, "failed", waited);
                    return Err(fail(last));
                }
                if started.elapsed() + pause >= limit {
                    metrics::checkout(&alias.name, "timeout", true);
                    return Err(fail(last));
                }
                waited = true;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(_) => {
                metrics::checkout(&alias.name, "timeout", true);
                return Err(fail(alias.attempts.last_failure()));
            }
        }
    }
}

impl<C: AsyncRegistryConnection> AsyncDatabases<C> {
    catalog_accessors!();

    /// Whether the pools are bb8's (else deadpool's).
    pub fn uses_bb8(&self) -> bool {
        self.bb8
    }

    /// The alias and pool of `alias`.
    fn entry(&self, alias: &str) -> Result<(&Alias, &Pool<C>), PoolError> {
        let i = self
            .catalog
            .position(alias)
            .ok_or_else(|| PoolError::UnknownAlias {
                alias: alias.to_owned(),
            })?;
        Ok((&self.catalog.aliases[i], &self.pools[i]))
    }

    /// A connection to an explicit alias (Django's `using`): an idle one at once, else one
    /// waited for up to [`Alias::checkout_timeout`]; a failed connection attempt is retried
    /// until then, unless authentication failed (then it fails at once).
    ///
    /// # Errors
    ///
    /// [`PoolError::UnknownAlias`], or [`PoolError::Checkout`] with the last connection
    /// error.
    pub async fn using(&self, alias: &str) -> Result<AsyncPooledConnection<C>, PoolError> {
        let (entry, pool) = self.entry(alias)?;
        let conn = checkout(entry, pool).await?;
        Ok(AsyncPooledConnection {
            alias: alias.to_owned(),
            conn,
        })
    }

    /// A connection for reading the model `M` (the router chain's `db_for_read`).
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using); [`PoolError::RoutedToUnknownAlias`] when a router
    /// routes `M` to an undeclared alias.
    pub async fn for_read<M: Model + ?Sized>(&self) -> Result<AsyncPooledConnection<C>, PoolError> {
        self.for_read_hinted::<M>(&Hints::new()).await
    }

    /// A connection for writing the model `M` (the router chain's `db_for_write`).
    ///
    /// # Errors
    ///
    /// As for [`for_read`](Self::for_read).
    pub async fn for_write<M: Model + ?Sized>(
        &self,
    ) -> Result<AsyncPooledConnection<C>, PoolError> {
        self.for_write_hinted::<M>(&Hints::new()).await
    }

    /// [`for_read`](Self::for_read) with hints.
    ///
    /// # Errors
    ///
    /// As for [`for_read`](Self::for_read).
    pub async fn for_read_hinted<M: Model + ?Sized>(
        &self,
        hints: &Hints,
    ) -> Result<AsyncPooledConnection<C>, PoolError> {
        let alias = self.catalog.routed(M::info(), "read", hints)?;
        self.using(&alias).await
    }

    /// [`for_write`](Self::for_write) with hints.
    ///
    /// # Errors
    ///
    /// As for [`for_read`](Self::for_read).
    pub async fn for_write_hinted<M: Model + ?Sized>(
        &self,
        hints: &Hints,
    ) -> Result<AsyncPooledConnection<C>, PoolError> {
        let alias = self.catalog.routed(M::info(), "write", hints)?;
        self.using(&alias).await
    }

    /// Runs `f` in a transaction on the alias that writes `M`: committed when `f` returns
    /// `Ok`, rolled back when it returns `Err` (and when the future is dropped: the pool
    /// then closes the connection, and the server rolls back).
    ///
    /// # Errors
    ///
    /// `f`'s error, or a [`PoolError`] or Diesel error (BEGIN/COMMIT) converted into `E`.
    pub async fn transaction<M, T, E, F>(&self, f: F) -> Result<T, E>
    where
        M: Model + ?Sized,
        F: for<'r> AsyncFnOnce(&'r mut C) -> Result<T, E>,
        E: From<diesel::result::Error> + From<PoolError>,
    {
        let mut conn = self.for_write::<M>().await?;
        in_transaction(&mut *conn, f).await
    }

    /// Runs `f` in a transaction on an explicit alias.
    ///
    /// # Errors
    ///
    /// As for [`transaction`](Self::transaction).
    pub async fn transaction_on<T, E, F>(&self, alias: &str, f: F) -> Result<T, E>
    where
        F: for<'r> AsyncFnOnce(&'r mut C) -> Result<T, E>,
        E: From<diesel::result::Error> + From<PoolError>,
    {
        let mut conn = self.using(alias).await?;
        in_transaction(&mut *conn, f).await
    }

    /// Opens (or reuses) a connection to `alias` and checks it answers.
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using), or the Diesel error of the check.
    pub async fn ping(&self, alias: &str) -> Result<(), BoxError> {
        let mut conn = self.using(alias).await?;
        diesel_async::SimpleAsyncConnection::batch_execute(&mut *conn, "SELECT 1").await?;
        Ok(())
    }

    /// What [`migrate`](Self::migrate) would run on `alias` (a dry run: nothing is written).
    ///
    /// # Errors
    ///
    /// As for the sync registry's `plan`.
    pub async fn plan(&self, alias: &str) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, None, false, Box::new(|_| {})).await.0
    }

    /// Runs, on `alias`, the pending migrations of every app the routers allow there, as the
    /// sync registry's `migrate` does (the same planner, the same records table, each
    /// migration with its record in one transaction). A mirror alias is skipped.
    ///
    /// Diesel's migrations are synchronous: they run on a Tokio blocking thread
    /// (`spawn_blocking`), through diesel-async's `AsyncConnectionWrapper` around a pooled
    /// connection of the alias.
    ///
    /// # Errors
    ///
    /// As for the sync registry's `migrate`.
    pub async fn migrate(&self, alias: &str) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, None, true, Box::new(|_| {})).await.0
    }

    /// [`migrate`](Self::migrate), reporting progress to `progress` (called on the blocking
    /// thread the migrations run on, as each happens).
    ///
    /// # Errors
    ///
    /// As for [`migrate`](Self::migrate).
    pub async fn migrate_with(
        &self,
        alias: &str,
        progress: impl FnMut(MigrateEvent<'_>) + Send + 'static,
    ) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, None, true, Box::new(progress)).await.0
    }

    /// [`migrate_all`](Self::migrate_all), reporting progress to `progress` (see
    /// [`migrate_with`](Self::migrate_with)).
    ///
    /// # Errors
    ///
    /// As for [`migrate`](Self::migrate), for the first alias that fails.
    pub async fn migrate_all_with(
        &self,
        progress: impl FnMut(MigrateEvent<'_>) + Send + 'static,
    ) -> Result<Vec<AliasMigrations>, MigrateError> {
        let mut progress: Progress = Box::new(progress);
        let mut out = Vec::new();
        for alias in self.catalog.aliases.iter() {
            let (result, back) = self.run(&alias.name, None, true, progress).await;
            out.push(result?);
            progress = back;
        }
        Ok(out)
    }

    /// [`plan`](Self::plan) for every alias, in order.
    ///
    /// # Errors
    ///
    /// As for [`plan`](Self::plan), for the first alias that fails.
    pub async fn plan_all(&self) -> Result<Vec<AliasMigrations>, MigrateError> {
        let mut out = Vec::new();
        for alias in self.catalog.aliases.iter() {
            out.push(self.plan(&alias.name).await?);
        }
        Ok(out)
    }

    /// [`migrate`](Self::migrate) on every alias in order, stopping at the first failure.
    ///
    /// # Errors
    ///
    /// As for [`migrate`](Self::migrate).
    pub async fn migrate_all(&self) -> Result<Vec<AliasMigrations>, MigrateError> {
        self.migrate_all_with(|_| {}).await
    }

    /// What [`migrate_app_to`](Self::migrate_app_to) would run (a dry run).
    ///
    /// # Errors
    ///
    /// As for [`migrate_app_to`](Self::migrate_app_to).
    pub async fn plan_app_to(
        &self,
        alias: &str,
        app: &str,
        to: &MigrateTo,
    ) -> Result<AliasMigrations, MigrateError> {
        self.run(
            alias,
            Some((app.to_owned(), to.clone())),
            false,
            Box::new(|_| {}),
        )
        .await
        .0
    }

    /// Takes the migrations of `app` on `alias` to `to`, as the sync registry's
    /// `migrate_app_to` does.
    ///
    /// # Errors
    ///
    /// As for the sync registry's `migrate_app_to`.
    pub async fn migrate_app_to(
        &self,
        alias: &str,
        app: &str,
        to: &MigrateTo,
    ) -> Result<AliasMigrations, MigrateError> {
        self.run(
            alias,
            Some((app.to_owned(), to.clone())),
            true,
            Box::new(|_| {}),
        )
        .await
        .0
    }

    /// Applied and pending migrations of every allowed app on `alias`, as the sync
    /// registry's `show_migrations` does (reads only), on a Tokio blocking thread.
    ///
    /// # Errors
    ///
    /// As for [`plan`](Self::plan).
    pub async fn show_migrations(&self, alias: &str) -> Result<AliasMigrationStatus, MigrateError> {
        self.blocking(alias, |catalog, alias, connect| {
            status_of::<C::Db, _, _>(catalog, alias, connect)
        })
        .await
    }

    /// [`show_migrations`](Self::show_migrations) for every alias, in order.
    ///
    /// # Errors
    ///
    /// As for [`plan`](Self::plan), for the first alias that fails.
    pub async fn show_all_migrations(&self) -> Result<Vec<AliasMigrationStatus>, MigrateError> {
        let mut out = Vec::new();
        for alias in self.catalog.aliases.iter() {
            out.push(self.show_migrations(&alias.name).await?);
        }
        Ok(out)
    }

    /// Plans or runs on a blocking thread, with the sync planner and runner; gives
    /// `progress` back with the result.
    async fn run(
        &self,
        alias: &str,
        app_to: Option<(String, MigrateTo)>,
        apply: bool,
        progress: Progress,
    ) -> (Result<AliasMigrations, MigrateError>, Progress) {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let back = Arc::clone(&slot);
        let result = self
            .blocking(alias, move |catalog, alias, connect| {
                let mut progress = progress;
                let goal = match &app_to {
                    None => Goal::Latest,
                    Some((app, to)) => Goal::App(app, to),
                };
                let result =
                    run_alias::<C::Db, _, _>(catalog, alias, &goal, apply, &mut progress, connect);
                *back.lock().unwrap_or_else(|e| e.into_inner()) = Some(progress);
                result
            })
            .await;
        let progress = slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Box::new(|_| {}));
        (result, progress)
    }

    /// Runs `f` (the sync migrations code) on a Tokio blocking thread, with the catalog,
    /// the alias and a way to check a connection of the alias out (blocking on the pool).
    async fn blocking<T, F>(&self, alias: &str, f: F) -> Result<T, MigrateError>
    where
        T: Send + 'static,
        F: FnOnce(
                &Catalog,
                &str,
                Box<dyn FnOnce() -> Result<Records<C>, MigrateError> + '_>,
            ) -> Result<T, MigrateError>
            + Send
            + 'static,
    {
        let i = self.catalog.position(alias);
        let pool = i.map(|i| self.pools[i].clone());
        let catalog = self.catalog.clone();
        let alias = alias.to_owned();
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let connect = Box::new(|| {
                let (Some(i), Some(pool)) = (i, pool) else {
                    return Err(PoolError::UnknownAlias {
                        alias: alias.clone(),
                    }
                    .into());
                };
                let entry = &catalog.aliases[i];
                let conn = runtime.block_on(checkout(entry, &pool))?;
                Ok(Box::new(C::records(AsyncPooledConnection {
                    alias: entry.name.clone(),
                    conn,
                })))
            });
            f(&catalog, &alias, connect)
        });
        task.await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }
}

/// Runs `f` in a transaction on `conn` (diesel-async's `transaction`, without its `Send`
/// bound on `f`'s future).
async fn in_transaction<C, T, E, F>(conn: &mut C, f: F) -> Result<T, E>
where
    C: AsyncConnection,
    F: for<'r> AsyncFnOnce(&'r mut C) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Tm<C> = <C as AsyncConnection>::TransactionManager;
    Tm::<C>::begin_transaction(conn).await?;
    match f(conn).await {
        Ok(value) => {
            Tm::<C>::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(e) => match Tm::<C>::rollback_transaction(conn).await {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

impl<C: AsyncRegistryConnection> AsyncDatabases<C> {
    /// Starts a unit of work across aliases; see [`AsyncUnitOfWork`](crate::AsyncUnitOfWork)
    /// (not two-phase commit).
    pub fn unit_of_work(&self) -> crate::AsyncUnitOfWork<'_, C> {
        crate::AsyncUnitOfWork::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatabaseConfig;

    type Pg = MultiHostConnection<AsyncPgConnection>;

    fn build(config: Config) -> Result<AsyncDatabases<Pg>, BuildError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(config.build_async())
    }

    #[test]
    fn aliases_the_registry_cannot_serve_are_named() {
        let pg = "postgres://app:s3cretpw@127.0.0.1:1/app";
        let e = build(
            Config::new()
                .database("default", DatabaseConfig::new(pg))
                .database("cache", DatabaseConfig::new("sqlite://:memory:")),
        )
        .unwrap_err();
        assert!(matches!(&e, BuildError::NotAsync { alias, .. } if alias == "cache"));
        assert_eq!(
            e.to_string(),
            "database `cache` cannot be served by the async registry: diesel-async has no SQLite connection (use the sync registry)"
        );
        let e = build(
            Config::new()
                .database("default", DatabaseConfig::new(pg))
                .database(
                    "shop",
                    DatabaseConfig::new("mysql://u:s3cretpw@127.0.0.1:1/shop"),
                ),
        )
        .unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(text.contains("database `shop`"), "{text}");
        assert!(
            text.contains("it is a mysql database and this registry pools postgres connections"),
            "{text}"
        );
        assert!(!text.contains("s3cretpw"), "{text}");
    }

    #[test]
    fn validation_is_the_sync_registrys() {
        let e = build(Config::new().database("other", DatabaseConfig::new("postgres://h/d")))
            .unwrap_err();
        assert!(matches!(e, BuildError::MissingDefault), "{e:?}");
        let e = build(
            Config::new()
                .database("default", DatabaseConfig::new("postgres://h/d"))
                .app("blog", "nowhere"),
        )
        .unwrap_err();
        assert!(matches!(e, BuildError::AppMapUnknownAlias { .. }), "{e:?}");
    }

    #[test]
    fn mirrors_in_test_mode_share_their_primarys_pool() {
        let dbs: AsyncDatabases<Pg> = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(
                Config::new()
                    .database("default", DatabaseConfig::new("postgres://h/d"))
                    .database("replica", DatabaseConfig::mirror("default"))
                    .builder()
                    .test_mirrors(true)
                    .build_async(),
            )
            .unwrap();
        assert_eq!(dbs.alias("replica").unwrap().served_by(), "default");
        assert!(Arc::ptr_eq(
            &dbs.alias("replica").unwrap().attempts,
            &dbs.alias("default").unwrap().attempts
        ));
        assert!(!dbs.uses_bb8());
    }
}
