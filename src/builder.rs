//! Validating a configuration and building the registry: [`DatabasesBuilder`].

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::app::{App, MigrationsSpec};
use crate::app_label_router::AppLabelRouter;
use crate::backend_url;
use crate::config::{Config, DatabaseConfig};
use crate::connection_manager::{AliasManager, LogErrors, StatementObserver};
use crate::redact::redact;
use crate::registry::{Alias, Databases};
use crate::router::{DatabaseRouter, Hints, RouterChain, DEFAULT_ALIAS};

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
    /// An alias's URL is not usable.
    BadUrl {
        /// The alias.
        alias: String,
        /// The URL, password redacted.
        url: String,
        /// What is wrong.
        reason: String,
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
            BuildError::BadUrl { alias, url, reason } => {
                write!(f, "database `{alias}` has a bad url `{url}`: {reason}")
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
            _ => None,
        }
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
}

impl fmt::Debug for DatabasesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabasesBuilder")
            .field("config", &self.config)
            .field("routers", &self.routers)
            .field("apps", &self.apps)
            .field("test_mirrors", &self.test_mirrors)
            .field("on_statement", &self.observer.is_some())
            .finish()
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

    /// Validates everything and builds the registry.
    ///
    /// Pools are created without connecting (`min_idle` connections are opened in the
    /// background); use [`Databases::ping`] to check the servers.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] naming what is wrong: no `default` alias; an alias without a URL or
    /// with a bad one, or of a backend not compiled in; a `mirror_of` naming an undeclared
    /// alias, itself or another mirror; a pool setting out of range; an `[apps]` entry, a
    /// router's declared aliases, or the routing of a declared model naming an undeclared
    /// alias; two apps with one label; a model declared in the wrong app; an unreadable
    /// migrations directory.
    pub fn build(self) -> Result<Databases, BuildError> {
        let DatabasesBuilder {
            config,
            mut routers,
            apps,
            test_mirrors,
            observer,
        } = self;
        let dbs = &config.databases;
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
            let mut target = backend_url::parse(&url).map_err(|reason| BuildError::BadUrl {
                alias: (*name).clone(),
                url: redact(&url),
                reason,
            })?;
            target.mirror = db.mirror_of.is_some();
            let settings = db.pool_settings();
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
                url,
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

        // Pools: a mirror in test mode shares its primary's pool.
        let mut pools: Vec<r2d2::Pool<AliasManager>> = Vec::with_capacity(aliases.len());
        for alias in &aliases {
            let s = alias.settings;
            let manager = AliasManager {
                alias: alias.name.clone(),
                target: alias.target.clone(),
                observer: observer.clone(),
            };
            let pool = r2d2::Pool::builder()
                .max_size(s.max_size)
                .min_idle(Some(s.min_idle))
                .connection_timeout(s.connection_timeout)
                .idle_timeout(s.idle_timeout)
                .max_lifetime(s.max_lifetime)
                .error_handler(Box::new(LogErrors {
                    alias: alias.name.clone(),
                }))
                .build_unchecked(manager);
            pools.push(pool);
        }
        for (i, alias) in aliases.iter_mut().enumerate() {
            let serve_from = match (&alias.mirror_of, test_mirrors) {
                (Some(primary), true) => names.iter().position(|n| *n == primary).unwrap_or(i),
                _ => i,
            };
            alias.pool = Some(pools[serve_from].clone());
            alias.served_by = names[serve_from].clone();
        }
        tracing::debug!(
            aliases = ?aliases.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            routers = ?routers,
            "database registry built"
        );
        Ok(Databases::new(aliases, routers, apps))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelInfo;
    use crate::primary_replica_router::PrimaryReplicaRouter;

    fn sqlite(name: &str) -> DatabaseConfig {
        DatabaseConfig::new(format!(
            "sqlite://{}/never-opened-{name}.sqlite3",
            std::env::temp_dir().display()
        ))
    }

    fn err(builder: DatabasesBuilder) -> String {
        let e = builder.build().expect_err("the build must fail");
        let text = format!("{e} / {e:?}");
        assert!(!text.contains("hunter2"), "a password leaked: {text}");
        e.to_string()
    }

    #[test]
    fn missing_default() {
        let c = Config::new().database("analytics", sqlite("a"));
        assert_eq!(
            err(c.builder()),
            "no `default` database is declared (add [databases.default] or set DATABASE_URL)"
        );
    }

    #[test]
    fn bad_urls_name_the_alias_and_hide_the_password() {
        let c = Config::new().database("default", sqlite("d")).database(
            "warehouse",
            DatabaseConfig::new("postgres://bob:hunter2@db:54x2/w"),
        );
        let e = err(c.builder());
        assert!(
            e.starts_with("database `warehouse` has a bad url `postgres://bob:********@db:54x2/w`"),
            "{e}"
        );
        let c = Config::new().database("default", DatabaseConfig::new("mysql://bob:hunter2@db/w"));
        assert!(err(c.builder()).contains("unsupported URL scheme `mysql`"));
        let c = Config::new().database("default", DatabaseConfig::default());
        assert!(err(c.builder()).starts_with("database `default` has no url"));
    }

    #[test]
    fn mirrors_must_name_a_declared_primary() {
        let base = || Config::new().database("default", sqlite("d"));
        let e = err(base()
            .database("replica", DatabaseConfig::mirror("primary"))
            .builder());
        assert_eq!(
            e,
            "database `replica` is a mirror of `primary`, which is not declared"
        );
        let e = err(base()
            .database("replica", DatabaseConfig::mirror("replica"))
            .builder());
        assert_eq!(e, "database `replica` is a mirror of `replica`, itself");
        let e = err(base()
            .database("r1", DatabaseConfig::mirror("default"))
            .database("r2", DatabaseConfig::mirror("r1"))
            .builder());
        assert_eq!(
            e,
            "database `r2` is a mirror of `r1`, which is itself a mirror"
        );
        // A mirror without a URL uses its primary's.
        let dbs = base()
            .database("replica", DatabaseConfig::mirror("default"))
            .build()
            .unwrap();
        let replica = dbs.alias("replica").unwrap();
        assert_eq!(
            replica.display_url(),
            dbs.alias("default").unwrap().display_url()
        );
        assert_eq!(replica.served_by(), "replica");
        let dbs = base()
            .database("replica", DatabaseConfig::mirror("default"))
            .builder()
            .test_mirrors(true)
            .build()
            .unwrap();
        assert_eq!(dbs.alias("replica").unwrap().served_by(), "default");
    }

    #[test]
    fn pool_settings_are_checked() {
        let mut d = sqlite("d");
        d.max_size = Some(0);
        assert_eq!(
            err(Config::new().database("default", d.clone()).builder()),
            "databases.default.max_size: must be at least 1"
        );
        d.max_size = Some(2);
        d.min_idle = Some(3);
        assert_eq!(
            err(Config::new().database("default", d).builder()),
            "databases.default.min_idle: 3 is more than max_size (2)"
        );
    }

    #[test]
    fn the_app_map_must_name_declared_aliases() {
        let c = Config::new()
            .database("default", sqlite("d"))
            .app("analytics", "warehouse");
        assert_eq!(
            err(c.builder()),
            "apps.analytics routes app `analytics` to database `warehouse`, which is not declared"
        );
    }

    #[test]
    fn routers_must_name_declared_aliases() {
        let c = || {
            Config::new()
                .database("default", sqlite("d"))
                .database("replica1", sqlite("r1"))
        };
        let e = err(c().builder().router(
            PrimaryReplicaRouter::new("default")
                .replica("replica1")
                .replica("replica2"),
        ));
        assert_eq!(
            e,
            "router PrimaryReplicaRouter names database `replica2`, which is not declared"
        );

        struct ToNowhere;
        impl DatabaseRouter for ToNowhere {
            fn db_for_write(&self, m: &ModelInfo, _: &Hints) -> Option<String> {
                (m.app_label() == "blog").then(|| "nowhere".to_owned())
            }
            fn name(&self) -> String {
                "ToNowhere".into()
            }
        }
        // No declared model is routed there: fine.
        c().builder().router(ToNowhere).build().unwrap();
        let e = err(c()
            .builder()
            .router(ToNowhere)
            .app(App::new("blog").model_info(ModelInfo::new("blog", "post"))));
        assert_eq!(
            e,
            "router #0 (ToNowhere) routes writes of model blog.post to database `nowhere`, which is not declared"
        );
    }

    #[test]
    fn apps_are_checked() {
        let c = || Config::new().database("default", sqlite("d"));
        assert_eq!(
            err(c().builder().app(App::new("a")).app(App::new("a"))),
            "app `a` is declared twice"
        );
        assert_eq!(
            err(c()
                .builder()
                .app(App::new("a").model_info(ModelInfo::new("b", "m")))),
            "model b.m is declared in app `a`"
        );
        let e = err(c()
            .builder()
            .app(App::new("a").migrations_dir("/nonexistent/migrations/a")));
        assert!(
            e.starts_with("cannot read the migrations of app `a` in /nonexistent/migrations/a"),
            "{e}"
        );
    }

    #[test]
    fn routers_in_code_come_before_the_app_map() {
        let dbs = Config::new()
            .database("default", sqlite("d"))
            .database("other", sqlite("o"))
            .app("blog", "other")
            .builder()
            .router(crate::AppLabelRouter::new().route("blog", "default"))
            .build()
            .unwrap();
        let post = ModelInfo::new("blog", "post");
        assert_eq!(dbs.router().db_for_write(&post, &Hints::new()), "default");
        assert_eq!(
            format!("{:?}", dbs.router()),
            "[\"AppLabelRouter\", \"AppLabelRouter\"]"
        );
    }
}
