//! The registry of named pools (Django's `connections`) and typed access per model.

use std::fmt;
use std::ops::{Deref, DerefMut};

use diesel::Connection;

use crate::any_connection::AnyConnection;
use crate::app::App;
use crate::backend_url::{BackendKind, Target};
use crate::config::PoolSettings;
use crate::connection_manager::AliasManager;
use crate::model::{Model, ModelInfo};
use crate::redact::redact;
use crate::router::{Hints, Route, RouterChain};
use crate::unit_of_work::UnitOfWork;

/// One alias of the registry: its name, backend, URL (shown redacted) and pool.
pub struct Alias {
    pub(crate) name: String,
    /// The URL with its password: never shown.
    pub(crate) url: String,
    pub(crate) target: Target,
    pub(crate) mirror_of: Option<String>,
    pub(crate) settings: PoolSettings,
    pub(crate) pool: Option<r2d2::Pool<AliasManager>>,
    /// The alias whose pool serves this one (itself, or its primary under `test_mirrors`).
    pub(crate) served_by: String,
}

impl Alias {
    pub(crate) fn new(
        name: String,
        url: String,
        target: Target,
        mirror_of: Option<String>,
        settings: PoolSettings,
    ) -> Self {
        Alias {
            served_by: name.clone(),
            name,
            url,
            target,
            mirror_of,
            settings,
            pool: None,
        }
    }

    /// The alias name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend its URL names.
    pub fn backend(&self) -> BackendKind {
        self.target.kind
    }

    /// The alias this one mirrors (is a replica of), if any. Mirrors are never migrated.
    pub fn mirror_of(&self) -> Option<&str> {
        self.mirror_of.as_deref()
    }

    /// The URL with its password replaced by `********`.
    pub fn display_url(&self) -> String {
        redact(&self.url)
    }

    /// The alias whose pool serves this one: itself, or its primary when
    /// [`test_mirrors`](crate::DatabasesBuilder::test_mirrors) is on.
    pub fn served_by(&self) -> &str {
        &self.served_by
    }

    /// The maximum number of pooled connections.
    pub fn max_size(&self) -> u32 {
        self.settings.max_size
    }

    pub(crate) fn pool(&self) -> &r2d2::Pool<AliasManager> {
        self.pool
            .as_ref()
            .expect("pools are set when the registry is built")
    }
}

impl fmt::Debug for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alias")
            .field("name", &self.name)
            .field("backend", &self.target.kind)
            .field("url", &self.display_url())
            .field("mirror_of", &self.mirror_of)
            .field("served_by", &self.served_by)
            .field("max_size", &self.settings.max_size)
            .finish()
    }
}

/// Why a connection could not be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// No alias of that name is declared.
    UnknownAlias {
        /// The alias asked for.
        alias: String,
    },
    /// The pool gave no connection within its `connection_timeout` (the server is down,
    /// refuses, or every connection is in use).
    Checkout {
        /// The alias.
        alias: String,
        /// The pool's error (it carries the last connection error).
        source: r2d2::Error,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::UnknownAlias { alias } => write!(f, "no database `{alias}` is declared"),
            PoolError::Checkout { alias, source } => write!(
                f,
                "cannot get a connection to database `{alias}`: {}",
                redact(&source.to_string())
            ),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::UnknownAlias { .. } => None,
            PoolError::Checkout { source, .. } => Some(source),
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
    aliases: Vec<Alias>,
    router: RouterChain,
    apps: Vec<App>,
}

impl fmt::Debug for Databases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Databases")
            .field("aliases", &self.aliases)
            .field("router", &self.router)
            .field("apps", &self.apps)
            .finish()
    }
}

impl Databases {
    pub(crate) fn new(aliases: Vec<Alias>, router: RouterChain, apps: Vec<App>) -> Self {
        Databases {
            aliases,
            router,
            apps,
        }
    }

    /// The aliases: `default` first, then by name.
    pub fn aliases(&self) -> impl Iterator<Item = &Alias> {
        self.aliases.iter()
    }

    /// One alias.
    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.iter().find(|a| a.name == name)
    }

    /// The router chain (routers given in code, then the config's app map).
    pub fn router(&self) -> &RouterChain {
        &self.router
    }

    /// The apps (declared in code and found in the config's `migrations_dir`).
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// Every declared model.
    pub fn models(&self) -> impl Iterator<Item = ModelInfo> + '_ {
        self.apps.iter().flat_map(|a| a.models.iter().copied())
    }

    pub(crate) fn require(&self, alias: &str) -> Result<&Alias, PoolError> {
        self.alias(alias).ok_or_else(|| PoolError::UnknownAlias {
            alias: alias.to_owned(),
        })
    }

    /// A connection to an explicit alias (Django's `using`).
    ///
    /// # Errors
    ///
    /// [`PoolError::UnknownAlias`], or [`PoolError::Checkout`] when no connection comes
    /// within the alias's `connection_timeout`.
    pub fn using(&self, alias: &str) -> Result<PooledConnection, PoolError> {
        let entry = self.require(alias)?;
        let conn = entry.pool().get().map_err(|source| PoolError::Checkout {
            alias: alias.to_owned(),
            source,
        })?;
        Ok(PooledConnection {
            alias: alias.to_owned(),
            conn,
        })
    }

    /// Where a read of `M` goes, and which router decided.
    pub fn route_read<M: Model + ?Sized>(&self, hints: &Hints) -> Route {
        self.router.route_read(&M::info(), hints)
    }

    /// Where a write of `M` goes, and which router decided.
    pub fn route_write<M: Model + ?Sized>(&self, hints: &Hints) -> Route {
        self.router.route_write(&M::info(), hints)
    }

    /// A connection for reading the model `M` (the router chain's `db_for_read`).
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using); [`PoolError::UnknownAlias`] when a router routes `M` to
    /// an undeclared alias (only possible for a model not declared in an [`App`], or through
    /// hints).
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
        let route = self.route_read::<M>(hints);
        tracing::trace!(model = %M::info(), alias = %route.alias, by = %route.reason, "read routed");
        self.using(&route.alias)
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
        let route = self.route_write::<M>(hints);
        tracing::trace!(model = %M::info(), alias = %route.alias, by = %route.reason, "write routed");
        self.using(&route.alias)
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

    /// Starts a unit of work across aliases; see [`UnitOfWork`] (and its caveats: it is not
    /// two-phase commit).
    pub fn unit_of_work(&self) -> UnitOfWork<'_> {
        UnitOfWork::new(self)
    }

    /// Runs `f` in a [`UnitOfWork`]: committed on every alias it touched when `f` returns
    /// `Ok`, rolled back on all of them when it returns `Err`.
    ///
    /// # Errors
    ///
    /// `f`'s error, or the [`UnitOfWorkError`](crate::UnitOfWorkError) of the commit
    /// converted into `E`.
    pub fn in_unit_of_work<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut UnitOfWork<'_>) -> Result<T, E>,
        E: From<crate::UnitOfWorkError>,
    {
        let mut uow = self.unit_of_work();
        match f(&mut uow) {
            Ok(v) => {
                uow.commit()?;
                Ok(v)
            }
            Err(e) => {
                if let Err(rb) = uow.rollback() {
                    tracing::warn!(error = %rb, "rollback of a failed unit of work failed");
                }
                Err(e)
            }
        }
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
