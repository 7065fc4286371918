//! Validating a configuration and building the registry: [`DatabasesBuilder`].

#[cfg(multidb_sync)]
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::registry::alias::Alias;
use crate::registry::alias_url::{self, Target};
use crate::registry::apps::{App, MigrationsSpec};
use crate::registry::catalog::Catalog;
use crate::registry::config::{Config, DatabaseConfig, DEFAULT_ALIAS};
#[cfg(multidb_sync)]
use crate::registry::databases::Databases;
#[cfg(multidb_sync)]
use crate::registry::pool::{
    AliasManager, AnyConnection, AttemptLog, ConnectError, ConnectionCustomizer, Customize,
    LogErrors,
};
use crate::registry::pool::{PoolSettings, StatementObserver};
use crate::registry::router::{AppLabelRouter, DatabaseRouter, Hints, RouterChain};
use crate::ConnectionStringError;

/// Why a registry could not be built. Every variant names the alias, key, app or router at
/// fault; no variant ever shows a password.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// No `default` alias is declared.
    MissingDefault,
    /// An alias has no URL (only a mirror may omit it).
    MissingUrl {
        /// The alias.
        alias: String,
    },
    /// An alias's URL is not usable. The URL is never quoted: text that is not a URL is only
    /// described (`not a database URL (no scheme)`).
    BadUrl {
        /// The alias.
        alias: String,
        /// What is wrong, e.g. `not a database URL (no scheme; ...)` or
        /// `invalid PostgreSQL URL`.
        reason: String,
        /// The connection-string grammar's error, for a PostgreSQL URL it rejects (also the
        /// error's [`source`](std::error::Error::source)).
        source: Option<Box<ConnectionStringError>>,
    },
    /// A `DATABASE_URL_<ALIAS>` environment variable names no declared alias (a typo would
    /// otherwise be ignored silently).
    UnknownEnvOverride {
        /// The variable.
        var: String,
        /// The variable of a declared alias it is closest to, if any is close.
        did_you_mean: Option<String>,
    },
    /// A hook given in code ([`DatabasesBuilder::connection_customizer`], ...) names an alias
    /// that is not declared.
    HookForUnknownAlias {
        /// The alias.
        alias: String,
        /// The builder method, e.g. `connection_customizer`.
        hook: &'static str,
    },
    /// `mirror_of` names an alias that is not declared, the alias itself, or another mirror.
    BadMirror {
        /// The mirror alias.
        alias: String,
        /// The alias it names.
        mirror_of: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A pool setting is out of range.
    BadPoolSetting {
        /// The alias.
        alias: String,
        /// The key, e.g. `max_size`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The config's `[apps]` map names an alias that is not declared.
    AppMapUnknownAlias {
        /// The app label (the key `apps.<app>`).
        app: String,
        /// The alias it names.
        alias: String,
    },
    /// A router declares (through [`DatabaseRouter::aliases`]) an alias that is not declared.
    RouterUnknownAlias {
        /// The router's name.
        router: String,
        /// The alias.
        alias: String,
    },
    /// Routing a declared model gives an alias that is not declared.
    RouteToUnknownAlias {
        /// The model, `app_label.model_name`.
        model: String,
        /// `"read"` or `"write"`.
        action: &'static str,
        /// The alias.
        alias: String,
        /// Which router (or fallback) chose it.
        decided_by: String,
    },
    /// Two apps have the same label.
    DuplicateApp {
        /// The label.
        app: String,
    },
    /// A model is declared in an app whose label differs from the model's own.
    ModelInWrongApp {
        /// The app it was declared in.
        app: String,
        /// The model, `app_label.model_name`.
        model: String,
    },
    /// The async registry cannot serve an alias: a SQLite alias (diesel-async has no SQLite
    /// connection), an alias of a backend other than the registry's connection type, or an
    /// alias given an r2d2 hook ([`DatabasesBuilder::connection_customizer`], ...).
    NotAsync {
        /// The alias.
        alias: String,
        /// Why, e.g. `sqlite has no async connection`.
        reason: String,
    },
    /// An app's migrations directory could not be read.
    Migrations {
        /// The app label (or `*` for the config's `migrations_dir` itself).
        app: String,
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MissingDefault => f.write_str(
                "no `default` database is declared (add [databases.default] or set DATABASE_URL)",
            ),
            BuildError::MissingUrl { alias } => write!(
                f,
                "database `{alias}` has no url (set databases.{alias}.url or {})",
                Config::env_var_for(alias)
            ),
            BuildError::BadUrl { alias, reason, .. } => {
                write!(f, "database `{alias}` has a bad url: {reason}")
            }
            BuildError::UnknownEnvOverride { var, did_you_mean } => {
                write!(f, "{var} is set but no database it would override is declared")?;
                if let Some(v) = did_you_mean {
                    write!(f, " (did you mean {v}?)")?;
                }
                Ok(())
            }
            BuildError::HookForUnknownAlias { alias, hook } => {
                write!(f, "{hook} is given for database `{alias}`, which is not declared")
            }
            BuildError::BadMirror {
                alias,
                mirror_of,
                reason,
            } => write!(f, "database `{alias}` is a mirror of `{mirror_of}`, {reason}"),
            BuildError::BadPoolSetting { alias, key, reason } => {
                write!(f, "databases.{alias}.{key}: {reason}")
            }
            BuildError::AppMapUnknownAlias { app, alias } => write!(
                f,
                "apps.{app} routes app `{app}` to database `{alias}`, which is not declared"
            ),
            BuildError::RouterUnknownAlias { router, alias } => {
                write!(f, "router {router} names database `{alias}`, which is not declared")
            }
            BuildError::RouteToUnknownAlias {
                model,
                action,
                alias,
                decided_by,
            } => write!(
                f,
                "{decided_by} routes {action}s of model {model} to database `{alias}`, which is not declared"
            ),
            BuildError::DuplicateApp { app } => write!(f, "app `{app}` is declared twice"),
            BuildError::ModelInWrongApp { app, model } => {
                write!(f, "model {model} is declared in app `{app}`")
            }
            BuildError::NotAsync { alias, reason } => write!(
                f,
                "database `{alias}` cannot be served by the async registry: {reason}"
            ),
            BuildError::Migrations { app, dir, .. } => {
                write!(f, "cannot read the migrations of app `{app}` in {}", dir.display())
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Migrations { source, .. } => Some(&**source),
            BuildError::BadUrl {
                source: Some(source),
                ..
            } => Some(&**source),
            _ => None,
        }
    }
}

impl Config {
    /// A registry builder from this configuration, to add routers and apps in code.
    pub fn builder(self) -> DatabasesBuilder {
        DatabasesBuilder::new(self)
    }

    /// Validates the configuration and builds the registry, with no router besides the app
    /// map and no app besides those of [`migrations_dir`](Config::migrations_dir).
    ///
    /// # Errors
    ///
    /// See [`DatabasesBuilder::build`].
    #[cfg(multidb_sync)]
    pub fn build(self) -> Result<Databases, BuildError> {
        self.builder().build()
    }
}

/// Builds a [`Databases`] registry: the configuration plus the routers and apps declared in
/// code. Everything is validated by [`build`](Self::build), before any query runs.
///
/// ```
/// use diesel_multidb::{App, AppLabelRouter, Config, DatabaseConfig, Databases};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir();
/// let config = Config::new()
///     .database("default", DatabaseConfig::new(format!("sqlite://{}/doc-default.sqlite3", dir.display())))
///     .database("analytics", DatabaseConfig::new(format!("sqlite://{}/doc-analytics.sqlite3", dir.display())));
/// let databases: Databases = config
///     .builder()
///     .router(AppLabelRouter::new().route("analytics", "analytics"))
///     .app(App::new("analytics"))
///     .build()?;
/// assert_eq!(databases.aliases().map(|a| a.name()).collect::<Vec<_>>(), ["default", "analytics"]);
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct DatabasesBuilder {
    config: Config,
    routers: RouterChain,
    apps: Vec<App>,
    test_mirrors: bool,
    observer: Option<StatementObserver>,
    #[cfg(multidb_sync)]
    hooks: BTreeMap<String, Hooks>,
    /// bb8 pools for the async registry instead of deadpool.
    #[cfg(feature = "bb8")]
    pub(crate) bb8: bool,
}

/// r2d2's hooks for one alias.
#[cfg(multidb_sync)]
#[derive(Debug, Default)]
struct Hooks {
    customizer: Option<ConnectionCustomizer>,
    event_handler: Option<Box<dyn r2d2::HandleEvent>>,
    error_handler: Option<Box<dyn r2d2::HandleError<ConnectError>>>,
}

impl fmt::Debug for DatabasesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabasesBuilder")
            .field("config", &self.config)
            .field("routers", &self.routers)
            .field("apps", &self.apps)
            .field("test_mirrors", &self.test_mirrors)
            .field("on_statement", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl DatabasesBuilder {
    /// A builder from a configuration.
    pub fn new(config: Config) -> Self {
        DatabasesBuilder {
            config,
            routers: RouterChain::new(),
            apps: Vec::new(),
            test_mirrors: false,
            observer: None,
            #[cfg(multidb_sync)]
            hooks: BTreeMap::new(),
            #[cfg(feature = "bb8")]
            bb8: false,
        }
    }

    /// The configuration being built.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Appends a router. Routers given in code are consulted in the order given, before the
    /// config file's `[apps]` map.
    pub fn router(mut self, router: impl DatabaseRouter + 'static) -> Self {
        self.routers.push(router);
        self
    }

    /// Appends a shared router.
    pub fn router_arc(mut self, router: Arc<dyn DatabaseRouter>) -> Self {
        self.routers.push_arc(router);
        self
    }

    /// Declares an app. An app of the config's `migrations_dir` with the same label gets its
    /// migrations from there unless this one has its own.
    pub fn app(mut self, app: App) -> Self {
        self.apps.push(app);
        self
    }

    /// Points every mirror alias at its primary's pool, as Django's `TEST: MIRROR` does in
    /// tests: what a test writes through the primary is read back through the mirror at once,
    /// without a real replica. Defaults to false (a mirror with its own URL uses it).
    pub fn test_mirrors(mut self, on: bool) -> Self {
        self.test_mirrors = on;
        self
    }

    /// Calls `observer(alias, sql)` before every statement any pooled connection runs (SQL
    /// with its bind values as Diesel's `debug_query` shows them). For diagnostics and for the
    /// quickstart's account of which alias served each statement. Defaults to none.
    pub fn on_statement(mut self, observer: impl Fn(&str, &str) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Runs `customizer` on every new connection of `alias` before the pool hands it out
    /// (r2d2's `CustomizeConnection`), e.g. to run `SET` statements or `PRAGMA`s. A failure
    /// discards the connection and counts as permanent: checkouts fail at once with it. For a
    /// mirror served by its primary's pool ([`test_mirrors`](Self::test_mirrors)), the
    /// primary's customizer applies. Defaults to none.
    ///
    /// On a multi-host PostgreSQL alias a `SET` pins the connection to the primary (session
    /// state lives there); put session settings in the URL's `options` parameter instead
    /// (`?options=-c%20statement_timeout%3D5000`) to have them on every host.
    ///
    /// ```
    /// use diesel::connection::SimpleConnection;
    /// use diesel_multidb::{AnyConnection, Config, ConnectError, DatabaseConfig};
    ///
    /// #[derive(Debug)]
    /// struct ShortLocks;
    ///
    /// impl r2d2::CustomizeConnection<AnyConnection, ConnectError> for ShortLocks {
    ///     fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
    ///         Ok(conn.batch_execute("PRAGMA busy_timeout = 100")?)
    ///     }
    /// }
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let databases = Config::new()
    ///     .database("default", DatabaseConfig::new("sqlite://:memory:"))
    ///     .builder()
    ///     .connection_customizer("default", ShortLocks)
    ///     .build()?;
    /// databases.ping("default")?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(multidb_sync)]
    pub fn connection_customizer(
        mut self,
        alias: impl Into<String>,
        customizer: impl r2d2::CustomizeConnection<AnyConnection, ConnectError>,
    ) -> Self {
        self.hooks.entry(alias.into()).or_default().customizer = Some(Box::new(customizer));
        self
    }

    /// Hands the pool events of `alias` (acquire, release, checkout, checkin, timeout) to
    /// `handler` (r2d2's `HandleEvent`). Defaults to none.
    #[cfg(multidb_sync)]
    pub fn event_handler(
        mut self,
        alias: impl Into<String>,
        handler: impl r2d2::HandleEvent + 'static,
    ) -> Self {
        self.hooks.entry(alias.into()).or_default().event_handler = Some(Box::new(handler));
        self
    }

    /// Hands every failed connection attempt of `alias` to `handler` (r2d2's `HandleError`),
    /// after it is logged with `tracing` at `WARN`. Defaults to none.
    #[cfg(multidb_sync)]
    pub fn error_handler(
        mut self,
        alias: impl Into<String>,
        handler: impl r2d2::HandleError<ConnectError> + 'static,
    ) -> Self {
        self.hooks.entry(alias.into()).or_default().error_handler = Some(Box::new(handler));
        self
    }

    /// Validates everything and builds the registry.
    ///
    /// Pools are created without connecting (`min_idle` connections are opened in the
    /// background); use [`Databases::ping`] to check the servers.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming what is wrong: no `default` alias; a `DATABASE_URL_<ALIAS>`
    /// variable naming no declared alias; an alias without a URL or with a bad one, or of a
    /// backend not compiled in; a hook given for an undeclared alias; a `mirror_of` naming an undeclared
    /// alias, itself or another mirror; a pool setting out of range; an `[apps]` entry, a
    /// router's declared aliases, or the routing of a declared model naming an undeclared
    /// alias; two apps with one label; a model declared in the wrong app; an unreadable
    /// migrations directory.
    #[cfg(multidb_sync)]
    pub fn build(self) -> Result<Databases, BuildError> {
        let (mut hooks, prepared) = self.take_hooks();
        if let Some((alias, h)) = hooks
            .iter()
            .find(|(a, _)| !prepared.config.databases.contains_key(*a))
        {
            let hook = if h.customizer.is_some() {
                "connection_customizer"
            } else if h.event_handler.is_some() {
                "event_handler"
            } else {
                "error_handler"
            };
            return Err(BuildError::HookForUnknownAlias {
                alias: alias.clone(),
                hook,
            });
        }
        let Prepared {
            mut catalog,
            observer,
            ..
        } = prepared.prepare(|name, target| {
            alias_url::require_compiled(target).map_err(|e| bad_url(name, e))
        })?;

        // Pools: a mirror in test mode shares its primary's pool.
        let mut pools = Vec::with_capacity(catalog.aliases.len());
        for alias in &catalog.aliases {
            let s = alias.settings;
            let Hooks {
                customizer,
                event_handler,
                error_handler,
            } = hooks.remove(&alias.name).unwrap_or_default();
            let attempts = Arc::new(AttemptLog::default());
            let manager = AliasManager {
                alias: alias.name.clone(),
                target: alias.target.clone(),
                observer: observer.clone(),
                attempts: attempts.clone(),
            };
            let mut builder = r2d2::Pool::builder()
                .max_size(s.max_size)
                .min_idle(Some(s.min_idle))
                .connection_timeout(s.connection_timeout)
                .idle_timeout(s.idle_timeout)
                .max_lifetime(s.max_lifetime)
                .error_handler(Box::new(LogErrors {
                    alias: alias.name.clone(),
                    inner: error_handler,
                }))
                .connection_customizer(Box::new(Customize {
                    inner: customizer,
                    attempts: attempts.clone(),
                }));
            if let Some(handler) = event_handler {
                builder = builder.event_handler(handler);
            }
            pools.push((builder.build_unchecked(manager), attempts));
        }
        let served: Vec<usize> = catalog.aliases.iter().map(|a| catalog.serving(a)).collect();
        for (alias, i) in catalog.aliases.iter_mut().zip(served) {
            alias.pool = Some(pools[i].0.clone());
            alias.attempts = pools[i].1.clone();
        }
        Ok(Databases { catalog })
    }

    /// The hooks given in code, apart (they exist only for the sync registry).
    #[cfg(multidb_sync)]
    fn take_hooks(mut self) -> (BTreeMap<String, Hooks>, Self) {
        (std::mem::take(&mut self.hooks), self)
    }

    /// The aliases given r2d2 hooks (which the async registry cannot run).
    #[cfg(feature = "async")]
    pub(crate) fn hooked_aliases(&self) -> Vec<String> {
        #[cfg(multidb_sync)]
        return self.hooks.keys().cloned().collect();
        #[cfg(not(multidb_sync))]
        Vec::new()
    }

    /// Validates everything but the pools: the part of [`build`](Self::build) shared with
    /// the async registry. `check` says whether the registry can serve an alias's target.
    pub(crate) fn prepare(
        self,
        check: impl Fn(&str, &Target) -> Result<(), BuildError>,
    ) -> Result<Prepared, BuildError> {
        let DatabasesBuilder {
            config,
            mut routers,
            apps,
            test_mirrors,
            observer,
            ..
        } = self;
        let dbs = &config.databases;
        if let Some(var) = config.unmatched_env_overrides.first() {
            let did_you_mean = dbs
                .keys()
                .map(|a| Config::env_var_for(a))
                .filter(|v| edit_distance(v, var) <= 2)
                .min_by_key(|v| edit_distance(v, var));
            return Err(BuildError::UnknownEnvOverride {
                var: var.clone(),
                did_you_mean,
            });
        }
        if !dbs.contains_key(DEFAULT_ALIAS) {
            return Err(BuildError::MissingDefault);
        }
        // Aliases: `default` first, then by name.
        let mut names: Vec<&String> = dbs.keys().collect();
        names.sort_by_key(|n| (n.as_str() != DEFAULT_ALIAS, n.as_str()));

        for name in &names {
            let db = &dbs[*name];
            if let Some(primary) = &db.mirror_of {
                let bad = |reason| BuildError::BadMirror {
                    alias: (*name).clone(),
                    mirror_of: primary.clone(),
                    reason,
                };
                match dbs.get(primary) {
                    None => return Err(bad("which is not declared")),
                    Some(_) if primary == *name => return Err(bad("itself")),
                    Some(p) if p.mirror_of.is_some() => {
                        return Err(bad("which is itself a mirror"))
                    }
                    Some(_) => {}
                }
            }
        }

        let mut aliases: Vec<Alias> = Vec::with_capacity(names.len());
        for name in &names {
            let db = &dbs[*name];
            let url = effective_url(name, db, dbs)?;
            let mut target = alias_url::parse(&url).map_err(|e| bad_url(name, e))?;
            check(name, &target)?;
            if db.mirror_of.is_some() {
                target = target.for_mirror();
            }
            let settings = PoolSettings::of(db);
            let bad = |key, reason: String| BuildError::BadPoolSetting {
                alias: (*name).clone(),
                key,
                reason,
            };
            if settings.max_size == 0 {
                return Err(bad("max_size", "must be at least 1".into()));
            }
            if settings.min_idle > settings.max_size {
                return Err(bad(
                    "min_idle",
                    format!(
                        "{} is more than max_size ({})",
                        settings.min_idle, settings.max_size
                    ),
                ));
            }
            if settings.connection_timeout.is_zero() {
                return Err(bad("connection_timeout_secs", "must be at least 1".into()));
            }
            aliases.push(Alias::new(
                (*name).clone(),
                target,
                db.mirror_of.clone(),
                settings,
            ));
        }

        // The app map from the config, after the routers given in code.
        for (app, alias) in &config.apps {
            if !dbs.contains_key(alias) {
                return Err(BuildError::AppMapUnknownAlias {
                    app: app.clone(),
                    alias: alias.clone(),
                });
            }
        }
        if !config.apps.is_empty() {
            routers.push(AppLabelRouter::from_map(config.apps.clone()));
        }

        let apps = resolve_apps(apps, config.resolved_migrations_dir())?;
        validate_routes(&routers, &apps, |a| dbs.contains_key(a))?;

        // A mirror in test mode is served by its primary's pool.
        if test_mirrors {
            for alias in &mut aliases {
                if let Some(primary) = &alias.mirror_of {
                    alias.served_by = primary.clone();
                }
            }
        }
        tracing::debug!(
            aliases = ?aliases.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            routers = ?routers,
            "database registry built"
        );
        let app_map = config.apps.clone();
        Ok(Prepared {
            catalog: Catalog {
                aliases,
                router: routers,
                apps,
                app_map,
            },
            observer,
        })
    }
}

/// A validated configuration, without pools.
pub(crate) struct Prepared {
    pub(crate) catalog: Catalog,
    pub(crate) observer: Option<StatementObserver>,
}

impl Catalog {
    /// The position of the alias whose pool serves `alias`.
    pub(crate) fn serving(&self, alias: &Alias) -> usize {
        self.position(&alias.served_by)
            .expect("an alias is served by a declared alias")
    }
}

/// The error of an alias's unusable URL.
pub(crate) fn bad_url(alias: &str, e: alias_url::UrlError) -> BuildError {
    BuildError::BadUrl {
        alias: alias.to_owned(),
        reason: e.reason,
        source: e.source.map(Box::new),
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The URL an alias connects to: its own, else (for a mirror) its primary's.
fn effective_url(
    name: &str,
    db: &DatabaseConfig,
    dbs: &std::collections::BTreeMap<String, DatabaseConfig>,
) -> Result<String, BuildError> {
    let url = db.url.clone().or_else(|| {
        db.mirror_of
            .as_ref()
            .and_then(|p| dbs.get(p))
            .and_then(|p| p.url.clone())
    });
    url.ok_or_else(|| BuildError::MissingUrl {
        alias: db
            .mirror_of
            .as_ref()
            .filter(|p| dbs.get(*p).is_some_and(|p| p.url.is_none()))
            .cloned()
            .unwrap_or_else(|| name.to_owned()),
    })
}

/// Checks the apps and resolves their migrations (directories, and the config's
/// `migrations_dir`).
fn resolve_apps(
    mut apps: Vec<App>,
    migrations_dir: Option<PathBuf>,
) -> Result<Vec<App>, BuildError> {
    let mut seen = BTreeSet::new();
    for app in &apps {
        if !seen.insert(app.label.clone()) {
            return Err(BuildError::DuplicateApp {
                app: app.label.clone(),
            });
        }
        if let Some(m) = app.models.iter().find(|m| m.app_label() != app.label) {
            return Err(BuildError::ModelInWrongApp {
                app: app.label.clone(),
                model: m.to_string(),
            });
        }
    }
    if let Some(dir) = migrations_dir {
        let entries = std::fs::read_dir(&dir).map_err(|e| BuildError::Migrations {
            app: "*".into(),
            dir: dir.clone(),
            source: Box::new(e),
        })?;
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| BuildError::Migrations {
                app: "*".into(),
                dir: dir.clone(),
                source: Box::new(e),
            })?;
            let path = entry.path();
            if path.is_dir() {
                if let Some(label) = path.file_name().and_then(|n| n.to_str()) {
                    if !label.starts_with('.') {
                        found.push((label.to_owned(), path));
                    }
                }
            }
        }
        found.sort();
        for (label, path) in found {
            match apps.iter_mut().find(|a| a.label == label) {
                Some(app) if app.has_migrations() => {}
                Some(app) => app.migrations = MigrationsSpec::Dir(path),
                None => apps.push(App::new(label).migrations_dir(path)),
            }
        }
    }
    for app in &mut apps {
        if let MigrationsSpec::Dir(dir) = &app.migrations {
            let source = diesel_migrations::FileBasedMigrations::from_path(dir).map_err(|e| {
                BuildError::Migrations {
                    app: app.label.clone(),
                    dir: dir.clone(),
                    source: Box::new(e),
                }
            })?;
            app.migrations = MigrationsSpec::Source(Arc::new(source));
        }
    }
    Ok(apps)
}

/// Every alias a router declares, and every route of every declared model, must exist.
pub(crate) fn validate_routes(
    routers: &RouterChain,
    apps: &[App],
    exists: impl Fn(&str) -> bool,
) -> Result<(), BuildError> {
    for (router, alias) in routers.declared_aliases() {
        if !exists(&alias) {
            return Err(BuildError::RouterUnknownAlias { router, alias });
        }
    }
    let hints = Hints::new();
    for model in apps.iter().flat_map(|a| a.models.iter()) {
        for (action, route) in [
            ("read", routers.route_read(model, &hints)),
            ("write", routers.route_write(model, &hints)),
        ] {
            if !exists(&route.alias) {
                return Err(BuildError::RouteToUnknownAlias {
                    model: model.to_string(),
                    action,
                    alias: route.alias,
                    decided_by: route.reason.to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(all(test, multidb_sync))]
mod tests;
