//! The registry of named pools (Django's `connections`) and typed access per model.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use diesel::Connection;

use crate::registry::alias::{Alias, PoolError};
use crate::registry::apps::{App, Model, ModelInfo};
use crate::registry::catalog::{catalog_accessors, Catalog};
use crate::registry::metrics;
use crate::registry::pool::{AliasManager, AnyConnection, ConnectError};
use crate::registry::router::{Hints, Route, RouterChain};

impl Alias {
    pub(crate) fn pool(&self) -> &r2d2::Pool<AliasManager> {
        self.pool
            .as_ref()
            .expect("pools are set when the registry is built")
    }

    /// Checks a connection out of the pool: at once if one is idle, else waiting for one.
    fn checkout(&self) -> Result<r2d2::PooledConnection<AliasManager>, PoolError> {
        let span = tracing::debug_span!(
            "checkout",
            alias = %self.name,
            waited_ms = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let _entered = span.enter();
        let pool = self.pool();
        let started = Instant::now();
        let done = |outcome: &'static str, waited: bool| {
            span.record("waited_ms", started.elapsed().as_millis() as u64);
            span.record("outcome", outcome);
            metrics::checkout(&self.name, outcome, waited);
        };
        if let Some(conn) = pool.try_get() {
            done("ok", false);
            return Ok(conn);
        }
        let fail = |source: Option<ConnectError>| PoolError::Checkout {
            alias: self.name.clone(),
            waited: started.elapsed(),
            source,
        };
        // The last attempt failed for good (a wrong password): say so now.
        if let Some(e) = self
            .attempts
            .last_failure()
            .filter(ConnectError::is_permanent)
        {
            done("failed", false);
            return Err(fail(Some(e)));
        }
        let limit = self.settings.connection_timeout;
        let failover_limit = self.checkout_timeout();
        // r2d2's wait, cut into slices to notice a permanent failure within one slice.
        let mut slice = Duration::from_millis(25);
        loop {
            let elapsed = started.elapsed();
            let remaining = if elapsed < limit {
                limit - elapsed
            } else if self.attempts.in_flight() > 0 && elapsed < failover_limit {
                // An attempt is under way (a multi-host connection waiting for a standby to
                // be promoted): wait for it, up to the URL's failover_timeout.
                failover_limit - elapsed
            } else {
                done("timeout", true);
                return Err(fail(self.attempts.last_failure()));
            };
            if let Ok(conn) = pool.get_timeout(slice.min(remaining)) {
                done("ok", true);
                return Ok(conn);
            }
            if let Some(e) = self
                .attempts
                .last_failure()
                .filter(ConnectError::is_permanent)
            {
                done("failed", true);
                return Err(fail(Some(e)));
            }
            slice = (slice * 2).min(Duration::from_secs(1));
        }
    }
}

/// A connection checked out of an alias's pool; it goes back to the pool when dropped.
///
/// Dereferences to [`AnyConnection`], so Diesel queries take `&mut conn` (or `&mut *conn`).
pub struct PooledConnection {
    alias: String,
    conn: r2d2::PooledConnection<AliasManager>,
}

impl PooledConnection {
    /// The alias this connection was asked for.
    pub fn alias(&self) -> &str {
        &self.alias
    }
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("alias", &self.alias)
            .field("backend", &self.conn.backend_kind())
            .finish()
    }
}

impl Deref for PooledConnection {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for PooledConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// The registry: named pools (Django's `connections`), the router chain and the apps.
///
/// Build it from a [`Config`](crate::Config) with [`Config::build`](crate::Config::build) or
/// [`Config::builder`](crate::Config::builder). It is `Send + Sync`: share it (`Arc`, a
/// `static`) across threads.
///
/// `cargo run --example quickstart` shows the whole cycle on two embedded SQLite databases
/// (no server needed): two apps routed by routers, migrations per alias, writes and reads,
/// and a printed account of which alias served each statement (through
/// [`DatabasesBuilder::on_statement`](crate::DatabasesBuilder::on_statement)).
///
/// ```
/// use diesel::prelude::*;
/// use diesel_multidb::{Config, DatabaseConfig, Model};
///
/// struct Note;
/// impl Model for Note {
///     const APP_LABEL: &'static str = "notes";
///     const MODEL_NAME: &'static str = "note";
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("doc-registry-{}.sqlite3", std::process::id()));
/// let databases = Config::new()
///     .database("default", DatabaseConfig::new(format!("sqlite://{}", path.display())))
///     .build()?;
/// let mut conn = databases.for_write::<Note>()?;
/// assert_eq!(conn.alias(), "default");
/// diesel::sql_query("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY)").execute(&mut *conn)?;
/// # drop(conn); std::fs::remove_file(path)?;
/// # Ok(())
/// # }
/// ```
pub struct Databases {
    pub(crate) catalog: Catalog,
}

impl fmt::Debug for Databases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Databases")
            .field("aliases", &self.catalog.aliases)
            .field("router", &self.catalog.router)
            .field("apps", &self.catalog.apps)
            .finish()
    }
}

impl Databases {
    catalog_accessors!();

    /// `text` with the secrets of every alias URL masked.
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.catalog.scrub(text)
    }

    pub(crate) fn require(&self, alias: &str) -> Result<&Alias, PoolError> {
        self.catalog.require(alias)
    }

    /// A connection to an explicit alias (Django's `using`).
    ///
    /// An idle connection is handed out at once. Otherwise the checkout waits for one, up to
    /// the pool's `connection_timeout`; for a PostgreSQL alias, while a connection attempt is
    /// still under way when that runs out (a multi-host connection waiting for a standby to
    /// be promoted), it goes on waiting up to the URL's `failover_timeout`, counted from the
    /// start of the checkout ([`Alias::checkout_timeout`]). When the last connection attempt
    /// failed for good (authentication failed on every host, a failing
    /// [`connection_customizer`](crate::DatabasesBuilder::connection_customizer)), it fails
    /// at once.
    ///
    /// # Errors
    ///
    /// [`PoolError::UnknownAlias`], or [`PoolError::Checkout`] with the last connection
    /// error.
    pub fn using(&self, alias: &str) -> Result<PooledConnection, PoolError> {
        let conn = self.require(alias)?.checkout()?;
        Ok(PooledConnection {
            alias: alias.to_owned(),
            conn,
        })
    }

    /// A connection to the alias the router chain chooses for `action` on `model`.
    fn routed(
        &self,
        model: ModelInfo,
        action: &'static str,
        hints: &Hints,
    ) -> Result<PooledConnection, PoolError> {
        self.using(&self.catalog.routed(model, action, hints)?)
    }

    /// A connection for reading the model `M` (the router chain's `db_for_read`).
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using); [`PoolError::RoutedToUnknownAlias`], naming the router
    /// and the model, when a router routes `M` to an undeclared alias (only possible for a
    /// model not declared in an [`App`], or through hints).
    pub fn for_read<M: Model + ?Sized>(&self) -> Result<PooledConnection, PoolError> {
        self.for_read_hinted::<M>(&Hints::new())
    }

    /// A connection for writing the model `M` (the router chain's `db_for_write`).
    ///
    /// # Errors
    ///
    /// As for [`for_read`](Self::for_read).
    pub fn for_write<M: Model + ?Sized>(&self) -> Result<PooledConnection, PoolError> {
        self.for_write_hinted::<M>(&Hints::new())
    }

    /// [`for_read`](Self::for_read) with hints.
    ///
    /// # Errors
    ///
    /// As for [`for_read`](Self::for_read).
    pub fn for_read_hinted<M: Model + ?Sized>(
        &self,
        hints: &Hints,
    ) -> Result<PooledConnection, PoolError> {
        self.routed(M::info(), "read", hints)
    }

    /// [`for_write`](Self::for_write) with hints.
    ///
    /// # Errors
    ///
    /// As for [`for_read`](Self::for_read).
    pub fn for_write_hinted<M: Model + ?Sized>(
        &self,
        hints: &Hints,
    ) -> Result<PooledConnection, PoolError> {
        self.routed(M::info(), "write", hints)
    }

    /// Runs `f` in a transaction on the alias that writes `M`: committed when `f` returns
    /// `Ok`, rolled back when it returns `Err` (or panics).
    ///
    /// # Errors
    ///
    /// `f`'s error, or a [`PoolError`] or Diesel error (BEGIN/COMMIT) converted into `E`.
    pub fn transaction<M, T, E, F>(&self, f: F) -> Result<T, E>
    where
        M: Model + ?Sized,
        F: FnOnce(&mut AnyConnection) -> Result<T, E>,
        E: From<diesel::result::Error> + From<PoolError>,
    {
        let mut conn = self.for_write::<M>()?;
        conn.transaction(f)
    }

    /// Runs `f` in a transaction on an explicit alias.
    ///
    /// # Errors
    ///
    /// As for [`transaction`](Self::transaction).
    pub fn transaction_on<T, E, F>(&self, alias: &str, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E>,
        E: From<diesel::result::Error> + From<PoolError>,
    {
        let mut conn = self.using(alias)?;
        conn.transaction(f)
    }

    /// Opens (or reuses) a connection to `alias` and checks it answers.
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using), or the Diesel error of the check.
    pub fn ping(&self, alias: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use diesel::r2d2::R2D2Connection;
        let mut conn = self.using(alias)?;
        conn.ping()?;
        Ok(())
    }
}
