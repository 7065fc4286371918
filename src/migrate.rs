//! Migrations per alias: plan, run and show, app by app, where the routers allow.
//!
//! Each alias keeps its own records in `__diesel_multidb_migrations`, keyed by
//! `(app_label, version)`, so two apps migrating into one alias never collide (Diesel's own
//! `__diesel_schema_migrations` is keyed by version only, and is not used). Each migration and
//! its record are written in one transaction, unless the migration's `metadata.toml` says
//! `run_in_transaction = false`.

use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

use diesel::migration::Migration;
use diesel::prelude::*;

use crate::any_connection::{AnyBackend, AnyConnection};
use crate::app::App;
use crate::registry::{Databases, PoolError};
use crate::router::Hints;

/// The name of the table that records applied migrations on every migrated alias.
pub const MIGRATIONS_TABLE: &str = "__diesel_multidb_migrations";

diesel::table! {
    __diesel_multidb_migrations (app_label, version) {
        app_label -> Text,
        version -> Text,
        name -> Text,
    }
}

use self::__diesel_multidb_migrations as records;

const CREATE_RECORDS: &str = "CREATE TABLE IF NOT EXISTS __diesel_multidb_migrations (\
    app_label VARCHAR(255) NOT NULL, \
    version VARCHAR(255) NOT NULL, \
    name VARCHAR(255) NOT NULL, \
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
    PRIMARY KEY (app_label, version))";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One migration of one app on one alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMigration {
    /// The alias.
    pub alias: String,
    /// The app label.
    pub app: String,
    /// The version (the directory name up to its first `_`).
    pub version: String,
    /// The full name, `<version>_<name>`.
    pub name: String,
}

impl fmt::Display for PlannedMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} on {}", self.app, self.name, self.alias)
    }
}

/// What migrating one alias does (a plan) or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMigrations {
    /// The alias.
    pub alias: String,
    /// Set when the alias is a mirror: it is skipped.
    pub mirror_of: Option<String>,
    /// The apps the routers allow on the alias, in declaration order.
    pub apps: Vec<String>,
    /// The migrations pending (in a plan) or applied (after `migrate`), in order.
    pub migrations: Vec<PlannedMigration>,
}

impl AliasMigrations {
    /// Whether the alias is skipped (a mirror).
    pub fn skipped(&self) -> bool {
        self.mirror_of.is_some()
    }
}

/// Applied and pending migrations of one app on one alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMigrationStatus {
    /// The app label.
    pub app: String,
    /// Every migration of the app, in order, with whether it is applied.
    pub migrations: Vec<(String, bool)>,
    /// Versions recorded as applied that the app's migrations no longer contain.
    pub unknown_applied: Vec<String>,
}

/// Applied and pending migrations of one alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasMigrationStatus {
    /// The alias.
    pub alias: String,
    /// Set when the alias is a mirror (then `apps` is empty).
    pub mirror_of: Option<String>,
    /// The apps the routers allow on the alias.
    pub apps: Vec<AppMigrationStatus>,
}

/// Progress of [`Databases::migrate_with`], reported as it happens.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum MigrateEvent<'a> {
    /// An alias is skipped because it mirrors another.
    Skipped {
        /// The alias.
        alias: &'a str,
        /// Its primary.
        mirror_of: &'a str,
    },
    /// Migrating an alias starts; `pending` migrations will run.
    Start {
        /// The alias.
        alias: &'a str,
        /// How many migrations will run.
        pending: usize,
    },
    /// A migration is about to run.
    Applying(&'a PlannedMigration),
    /// A migration ran and was recorded.
    Applied(&'a PlannedMigration, Duration),
}

/// Why migrating failed. Migrations recorded before the failure stay recorded.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrateError {
    /// No connection to the alias.
    Connect(PoolError),
    /// The records table could not be created or read.
    Records {
        /// The alias.
        alias: String,
        /// Diesel's error.
        source: diesel::result::Error,
    },
    /// An app's migrations could not be listed.
    Source {
        /// The app label.
        app: String,
        /// The error.
        source: BoxError,
    },
    /// A migration failed; it is rolled back (when run in a transaction) and nothing after it
    /// ran.
    Failed {
        /// The alias.
        alias: String,
        /// The app label.
        app: String,
        /// The migration's full name.
        migration: String,
        /// The error.
        source: BoxError,
    },
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::Connect(e) => e.fmt(f),
            MigrateError::Records { alias, source } => write!(
                f,
                "cannot read the migration records ({MIGRATIONS_TABLE}) of database `{alias}`: {source}"
            ),
            MigrateError::Source { app, source } => {
                write!(f, "cannot list the migrations of app `{app}`: {source}")
            }
            MigrateError::Failed {
                alias,
                app,
                migration,
                source,
            } => write!(
                f,
                "migration {app}.{migration} failed on database `{alias}`: {}",
                crate::redact::redact(&source.to_string())
            ),
        }
    }
}

impl std::error::Error for MigrateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrateError::Connect(e) => Some(e),
            MigrateError::Records { source, .. } => Some(source),
            MigrateError::Source { source, .. } | MigrateError::Failed { source, .. } => {
                Some(&**source)
            }
        }
    }
}

impl From<PoolError> for MigrateError {
    fn from(e: PoolError) -> Self {
        MigrateError::Connect(e)
    }
}

type AppMigrationList = (String, Vec<Box<dyn Migration<AnyBackend>>>);

impl Databases {
    /// The apps whose migrations the routers allow on `alias`
    /// (`allow_migrate(alias, app_label, None, {})`), in declaration order.
    pub fn apps_allowed_on(&self, alias: &str) -> Vec<&App> {
        self.apps()
            .iter()
            .filter(|a| {
                self.router()
                    .allow_migrate(alias, &a.label, None, &Hints::new())
            })
            .collect()
    }

    fn migrations_for(&self, alias: &str) -> Result<Vec<AppMigrationList>, MigrateError> {
        let mut out = Vec::new();
        for app in self.apps_allowed_on(alias) {
            let Some(source) = app.source() else { continue };
            let mut list = source.migrations().map_err(|source| MigrateError::Source {
                app: app.label.clone(),
                source,
            })?;
            list.sort_by_key(|m| m.name().version().to_string());
            out.push((app.label.clone(), list));
        }
        Ok(out)
    }

    /// What [`migrate`](Self::migrate) would run on `alias` (a dry run; nothing is written).
    ///
    /// # Errors
    ///
    /// [`MigrateError`] when the alias is unknown or unreachable, or the records or the
    /// migrations cannot be read.
    pub fn plan(&self, alias: &str) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, false, &mut |_| {})
    }

    /// [`plan`](Self::plan) for every alias, in order.
    ///
    /// # Errors
    ///
    /// As for [`plan`](Self::plan), for the first alias that fails.
    pub fn plan_all(&self) -> Result<Vec<AliasMigrations>, MigrateError> {
        self.aliases().map(|a| self.plan(a.name())).collect()
    }

    /// Runs, on `alias`, the pending migrations of every app the routers allow there, app by
    /// app in declaration order, each app's in version order. A mirror alias is skipped.
    ///
    /// # Errors
    ///
    /// [`MigrateError::Failed`] naming the alias, app and migration that failed (the ones
    /// before it stay applied and recorded), or the errors of [`plan`](Self::plan).
    pub fn migrate(&self, alias: &str) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, true, &mut |_| {})
    }

    /// [`migrate`](Self::migrate), reporting progress to `progress`.
    ///
    /// # Errors
    ///
    /// As for [`migrate`](Self::migrate).
    pub fn migrate_with(
        &self,
        alias: &str,
        progress: &mut dyn FnMut(MigrateEvent<'_>),
    ) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, true, progress)
    }

    /// [`migrate`](Self::migrate) on every alias in order, stopping at the first failure.
    ///
    /// # Errors
    ///
    /// As for [`migrate`](Self::migrate).
    pub fn migrate_all(&self) -> Result<Vec<AliasMigrations>, MigrateError> {
        self.migrate_all_with(&mut |_| {})
    }

    /// [`migrate_all`](Self::migrate_all), reporting progress to `progress`.
    ///
    /// # Errors
    ///
    /// As for [`migrate`](Self::migrate).
    pub fn migrate_all_with(
        &self,
        progress: &mut dyn FnMut(MigrateEvent<'_>),
    ) -> Result<Vec<AliasMigrations>, MigrateError> {
        let names: Vec<String> = self.aliases().map(|a| a.name().to_owned()).collect();
        names.iter().map(|a| self.run(a, true, progress)).collect()
    }

    /// Applied and pending migrations of every allowed app on `alias`.
    ///
    /// # Errors
    ///
    /// As for [`plan`](Self::plan).
    pub fn show_migrations(&self, alias: &str) -> Result<AliasMigrationStatus, MigrateError> {
        let entry = self.require(alias)?;
        if let Some(primary) = entry.mirror_of() {
            return Ok(AliasMigrationStatus {
                alias: alias.to_owned(),
                mirror_of: Some(primary.to_owned()),
                apps: Vec::new(),
            });
        }
        let lists = self.migrations_for(alias)?;
        let mut conn = self.using(alias)?;
        let applied = applied(&mut conn, alias)?;
        let apps = lists
            .into_iter()
            .map(|(app, list)| {
                let known: BTreeSet<String> = list
                    .iter()
                    .map(|m| m.name().version().to_string())
                    .collect();
                let migrations = list
                    .iter()
                    .map(|m| {
                        let v = m.name().version().to_string();
                        (m.name().to_string(), applied.contains(&(app.clone(), v)))
                    })
                    .collect();
                let unknown_applied = applied
                    .iter()
                    .filter(|(a, v)| *a == app && !known.contains(v))
                    .map(|(_, v)| v.clone())
                    .collect();
                AppMigrationStatus {
                    app,
                    migrations,
                    unknown_applied,
                }
            })
            .collect();
        Ok(AliasMigrationStatus {
            alias: alias.to_owned(),
            mirror_of: None,
            apps,
        })
    }

    /// [`show_migrations`](Self::show_migrations) for every alias, in order.
    ///
    /// # Errors
    ///
    /// As for [`plan`](Self::plan), for the first alias that fails.
    pub fn show_all_migrations(&self) -> Result<Vec<AliasMigrationStatus>, MigrateError> {
        self.aliases()
            .map(|a| self.show_migrations(a.name()))
            .collect()
    }

    fn run(
        &self,
        alias: &str,
        apply: bool,
        progress: &mut dyn FnMut(MigrateEvent<'_>),
    ) -> Result<AliasMigrations, MigrateError> {
        let entry = self.require(alias)?;
        if let Some(primary) = entry.mirror_of() {
            progress(MigrateEvent::Skipped {
                alias,
                mirror_of: primary,
            });
            return Ok(AliasMigrations {
                alias: alias.to_owned(),
                mirror_of: Some(primary.to_owned()),
                apps: Vec::new(),
                migrations: Vec::new(),
            });
        }
        let lists = self.migrations_for(alias)?;
        let apps = lists.iter().map(|(a, _)| a.clone()).collect();
        if lists.is_empty() {
            // No app migrates here: not even the records table is created.
            progress(MigrateEvent::Start { alias, pending: 0 });
            return Ok(AliasMigrations {
                alias: alias.to_owned(),
                mirror_of: None,
                apps,
                migrations: Vec::new(),
            });
        }
        let mut conn = self.using(alias)?;
        let applied = applied(&mut conn, alias)?;
        let mut pending: Vec<(PlannedMigration, &dyn Migration<AnyBackend>)> = Vec::new();
        for (app, list) in &lists {
            for m in list {
                let version = m.name().version().to_string();
                if !applied.contains(&(app.clone(), version.clone())) {
                    pending.push((
                        PlannedMigration {
                            alias: alias.to_owned(),
                            app: app.clone(),
                            version,
                            name: m.name().to_string(),
                        },
                        &**m,
                    ));
                }
            }
        }
        if apply {
            progress(MigrateEvent::Start {
                alias,
                pending: pending.len(),
            });
            if !pending.is_empty() {
                create_records(&mut conn, alias)?;
            }
            for (planned, migration) in &pending {
                progress(MigrateEvent::Applying(planned));
                let started = Instant::now();
                run_one(&mut conn, planned, *migration).map_err(|source| MigrateError::Failed {
                    alias: alias.to_owned(),
                    app: planned.app.clone(),
                    migration: planned.name.clone(),
                    source,
                })?;
                tracing::info!(alias, app = %planned.app, migration = %planned.name, "migration applied");
                progress(MigrateEvent::Applied(planned, started.elapsed()));
            }
        }
        Ok(AliasMigrations {
            alias: alias.to_owned(),
            mirror_of: None,
            apps,
            migrations: pending.into_iter().map(|(p, _)| p).collect(),
        })
    }
}

/// Runs one migration and records it, in one transaction unless the migration opts out.
fn run_one(
    conn: &mut AnyConnection,
    planned: &PlannedMigration,
    migration: &dyn Migration<AnyBackend>,
) -> Result<(), BoxError> {
    let record = |c: &mut AnyConnection| {
        diesel::insert_into(records::table)
            .values((
                records::app_label.eq(&planned.app),
                records::version.eq(&planned.version),
                records::name.eq(&planned.name),
            ))
            .execute(c)
    };
    if migration.metadata().run_in_transaction() {
        conn.transaction::<_, BoxError, _>(|c| {
            migration.run(c)?;
            record(c)?;
            Ok(())
        })
    } else {
        migration.run(conn)?;
        record(conn)?;
        Ok(())
    }
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    present: bool,
}

/// Creates the records table if it does not exist.
fn create_records(conn: &mut AnyConnection, alias: &str) -> Result<(), MigrateError> {
    diesel::sql_query(CREATE_RECORDS)
        .execute(conn)
        .map(drop)
        .map_err(|source| MigrateError::Records {
            alias: alias.to_owned(),
            source,
        })
}

/// The `(app, version)` pairs recorded on the alias (none when the records table does not
/// exist yet: reading never writes).
fn applied(
    conn: &mut AnyConnection,
    alias: &str,
) -> Result<BTreeSet<(String, String)>, MigrateError> {
    let err = |source| MigrateError::Records {
        alias: alias.to_owned(),
        source,
    };
    let probe = match conn.backend_kind() {
        crate::BackendKind::Postgres => {
            "SELECT (to_regclass('__diesel_multidb_migrations') IS NOT NULL) AS present"
        }
        crate::BackendKind::Sqlite => {
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' \
             AND name = '__diesel_multidb_migrations') AS present"
        }
    };
    let present = diesel::sql_query(probe)
        .get_result::<Present>(conn)
        .map_err(err)?;
    if !present.present {
        return Ok(BTreeSet::new());
    }
    let rows = records::table
        .select((records::app_label, records::version))
        .load::<(String, String)>(conn)
        .map_err(err)?;
    Ok(rows.into_iter().collect())
}
