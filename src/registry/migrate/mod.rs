//! Migrations per alias: plan, run and show, app by app, where the routers allow; and
//! reverting an app's migrations on one alias down to a version (or all of them).
//!
//! - `plan`: what would run where, forwards or backwards (reads the records, writes nothing,
//!   and creates no SQLite file);
//! - `run`: runs a plan, each migration with its record in one transaction;
//! - `records`: the records table;
//! - `show`: applied and pending per app.
//!
//! Each alias keeps its own records in `__diesel_multidb_migrations`, keyed by
//! `(app_label, version)`, so two apps migrating into one alias never collide (Diesel's own
//! `__diesel_schema_migrations` is keyed by version only, and is not used). Each migration and
//! its record are written in one transaction, unless the migration's `metadata.toml` says
//! `run_in_transaction = false`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::registry::alias::PoolError;

mod plan;
pub(crate) mod records;
mod run;
mod show;

#[cfg(feature = "async")]
pub(crate) use plan::MigrationBackend;
#[cfg(feature = "async")]
pub(crate) use run::{run_alias, Goal};
#[cfg(feature = "async")]
pub(crate) use show::status_of;

/// The name of the table that records applied migrations on every migrated alias.
pub const MIGRATIONS_TABLE: &str = "__diesel_multidb_migrations";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which way a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// `up.sql`: applied, then recorded.
    Forward,
    /// `down.sql`: reverted, then its record removed.
    Backward,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        })
    }
}

/// How far to migrate one app on one alias ([`Databases::migrate_app_to`](crate::Databases::migrate_app_to)),
/// Django's `migrate app 0003` and `migrate app zero`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MigrateTo {
    /// Revert every applied migration of the app.
    Zero,
    /// Apply every migration of the app (Django's `migrate app`).
    Latest,
    /// Applied up to and including this migration, none after it: later applied ones are
    /// reverted, earlier pending ones applied. Matches a version (`20240102000000`), a full
    /// name (`2024-01-02-000000_create_comments`) or the start of exactly one name
    /// (`2024-01-02`).
    Version(String),
}

/// `zero`, `latest`, or anything else as a [`MigrateTo::Version`].
impl FromStr for MigrateTo {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "zero" => MigrateTo::Zero,
            "latest" => MigrateTo::Latest,
            _ => MigrateTo::Version(s.to_owned()),
        })
    }
}

impl fmt::Display for MigrateTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateTo::Zero => f.write_str("zero"),
            MigrateTo::Latest => f.write_str("latest"),
            MigrateTo::Version(v) => f.write_str(v),
        }
    }
}

/// One migration of one app on one alias.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlannedMigration {
    /// The alias.
    pub alias: String,
    /// The app label.
    pub app: String,
    /// The version (the directory name up to its first `_`).
    pub version: String,
    /// The full name, `<version>_<name>`.
    pub name: String,
    /// Applied (`up.sql`) or reverted (`down.sql`).
    pub direction: Direction,
}

impl fmt::Display for PlannedMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.direction {
            Direction::Forward => write!(f, "{}.{} on {}", self.app, self.name, self.alias),
            Direction::Backward => {
                write!(f, "{}.{} on {} (backward)", self.app, self.name, self.alias)
            }
        }
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
    /// The migrations pending (in a plan) or run (after `migrate`), in order; a plan to a
    /// version lists the reverted ones first, newest first.
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

/// Progress of [`Databases::migrate_with`](crate::Databases::migrate_with), reported as it happens.
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
    /// A migration is about to be reverted.
    Reverting(&'a PlannedMigration),
    /// A migration was reverted and its record removed.
    Reverted(&'a PlannedMigration, Duration),
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
    /// No app of that label is declared.
    UnknownApp {
        /// The app label.
        app: String,
    },
    /// The routers do not allow the app's migrations on the alias.
    AppNotMigratedHere {
        /// The alias.
        alias: String,
        /// The app label.
        app: String,
    },
    /// A [`MigrateTo::Version`] matches no migration of the app, or several.
    UnknownVersion {
        /// The app label.
        app: String,
        /// The version asked for.
        version: String,
        /// How many migrations it matched (0, or more than 1).
        matches: usize,
    },
    /// An applied migration to revert is recorded, but the app has no such migration any
    /// more (no `down.sql` to run).
    MissingMigration {
        /// The alias.
        alias: String,
        /// The app label.
        app: String,
        /// The recorded version.
        version: String,
    },
    /// A migration failed (forwards or backwards); it is rolled back (when run in a
    /// transaction) and nothing after it ran.
    Failed {
        /// The alias.
        alias: String,
        /// The app label.
        app: String,
        /// The migration's full name.
        migration: String,
        /// Applied or reverted.
        direction: Direction,
        /// The error.
        source: BoxError,
    },
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::Connect(e) => write!(f, "cannot migrate: {e}"),
            MigrateError::Records { alias, .. } => write!(
                f,
                "cannot read the migration records ({MIGRATIONS_TABLE}) of database `{alias}`"
            ),
            MigrateError::Source { app, .. } => {
                write!(f, "cannot list the migrations of app `{app}`")
            }
            MigrateError::UnknownApp { app } => write!(f, "no app `{app}` is declared"),
            MigrateError::AppNotMigratedHere { alias, app } => write!(
                f,
                "the routers do not allow the migrations of app `{app}` on database `{alias}`"
            ),
            MigrateError::UnknownVersion {
                app,
                version,
                matches: 0,
            } => write!(f, "app `{app}` has no migration `{version}`"),
            MigrateError::UnknownVersion {
                app,
                version,
                matches,
            } => write!(
                f,
                "`{version}` matches {matches} migrations of app `{app}` (give more of the name)"
            ),
            MigrateError::MissingMigration {
                alias,
                app,
                version,
            } => write!(
                f,
                "cannot revert {app} version {version} on database `{alias}`: it is recorded as applied but the app has no such migration"
            ),
            MigrateError::Failed {
                alias,
                app,
                migration,
                direction: Direction::Forward,
                ..
            } => write!(f, "migration {app}.{migration} failed on database `{alias}`"),
            MigrateError::Failed {
                alias,
                app,
                migration,
                direction: Direction::Backward,
                ..
            } => write!(
                f,
                "reverting migration {app}.{migration} failed on database `{alias}`"
            ),
        }
    }
}

impl std::error::Error for MigrateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrateError::Connect(e) => e.source(),
            MigrateError::Records { source, .. } => Some(source),
            MigrateError::Source { source, .. } | MigrateError::Failed { source, .. } => {
                Some(&**source)
            }
            MigrateError::UnknownApp { .. }
            | MigrateError::AppNotMigratedHere { .. }
            | MigrateError::UnknownVersion { .. }
            | MigrateError::MissingMigration { .. } => None,
        }
    }
}

impl From<PoolError> for MigrateError {
    fn from(e: PoolError) -> Self {
        MigrateError::Connect(e)
    }
}
