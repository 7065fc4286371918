//! What would run where: the pending migrations of every allowed app (forwards), or what
//! takes one app to a version (backwards, then forwards).

use diesel::backend::Backend;
use diesel::migration::Migration;

use super::records::{self, Applied, RecordsConnection};
use super::{AliasMigrations, BoxError, Direction, MigrateError, MigrateTo, PlannedMigration};
use crate::registry::alias::Alias;
use crate::registry::apps::{App, AppMigrationSource};
use crate::registry::catalog::Catalog;

/// An app's migrations, sorted by version.
pub(super) type AppMigrationList<DB> = (String, Vec<Box<dyn Migration<DB>>>);

/// One step of a plan: the planned migration and, when it has files, the migration.
pub(super) struct Step<'a, DB> {
    pub(super) planned: PlannedMigration,
    pub(super) migration: &'a dyn Migration<DB>,
}

/// A backend a registry migrates: the migrations of an app's source for it.
#[allow(unreachable_pub)]
pub trait MigrationBackend: Backend {
    /// The migrations `source` has for this backend.
    fn migrations_of(
        source: &dyn AppMigrationSource,
    ) -> Result<Vec<Box<dyn Migration<Self>>>, BoxError>;
}

/// `MigrationBackend` for a backend whose migrations Diesel's `MigrationSource` gives.
macro_rules! migration_backend {
    ($($(#[$cfg:meta])* $backend:ty;)*) => {$(
        $(#[$cfg])*
        impl MigrationBackend for $backend {
            fn migrations_of(
                source: &dyn AppMigrationSource,
            ) -> Result<Vec<Box<dyn Migration<Self>>>, BoxError> {
                diesel::migration::MigrationSource::<Self>::migrations(source)
            }
        }
    )*};
}

migration_backend! {
    #[cfg(multidb_sync)]
    crate::registry::pool::AnyBackend;
    #[cfg(feature = "async")]
    diesel::pg::Pg;
    #[cfg(feature = "async-mysql")]
    diesel::mysql::Mysql;
}

fn version_of<DB: Backend>(m: &dyn Migration<DB>) -> String {
    m.name().version().to_string()
}

/// The migrations of `app` for `DB`, sorted by version.
pub(super) fn app_migrations<DB: MigrationBackend>(
    app: &App,
) -> Result<AppMigrationList<DB>, MigrateError> {
    let mut list = match app.source() {
        Some(source) => DB::migrations_of(&**source).map_err(|source| MigrateError::Source {
            app: app.label.clone(),
            source,
        })?,
        None => Vec::new(),
    };
    list.sort_by_key(|m| version_of(&**m));
    Ok((app.label.clone(), list))
}

/// The migrations of every app allowed on `alias` that has migrations.
pub(super) fn migrations_for<DB: MigrationBackend>(
    catalog: &Catalog,
    alias: &str,
) -> Result<Vec<AppMigrationList<DB>>, MigrateError> {
    catalog
        .apps_allowed_on(alias)
        .into_iter()
        .filter(|a| a.source().is_some())
        .map(app_migrations)
        .collect()
}

/// Reads the records of `alias` through the connection `connect` gives, returned with them.
/// Without `apply`, a SQLite file that does not exist is not created (nor connected to): it
/// has no records.
pub(super) fn read_records<G, C>(
    entry: &Alias,
    apply: bool,
    connect: impl FnOnce() -> Result<G, MigrateError>,
) -> Result<(Option<G>, Applied), MigrateError>
where
    G: std::ops::DerefMut<Target = C>,
    C: RecordsConnection,
{
    if !apply && entry.target.is_missing_sqlite_file() {
        return Ok((None, Applied::new()));
    }
    let mut conn = connect()?;
    let applied = records::applied(&mut *conn, entry.name())?;
    Ok((Some(conn), applied))
}

/// The pending migrations of `lists`, app by app, each in version order.
pub(super) fn forward<'a, DB: Backend>(
    alias: &str,
    lists: &'a [AppMigrationList<DB>],
    applied: &Applied,
) -> Vec<Step<'a, DB>> {
    let mut steps = Vec::new();
    for (app, list) in lists {
        for m in list {
            let version = version_of(&**m);
            if !applied.contains(&(app.clone(), version.clone())) {
                steps.push(Step {
                    planned: PlannedMigration {
                        alias: alias.to_owned(),
                        app: app.clone(),
                        version,
                        name: m.name().to_string(),
                        direction: Direction::Forward,
                    },
                    migration: &**m,
                });
            }
        }
    }
    steps
}

/// What takes `app` on `alias` to `to`: the applied migrations after it reverted, newest
/// first, then the pending ones up to it applied, oldest first.
pub(super) fn to_version<'a, DB: Backend>(
    alias: &str,
    (app, list): &'a AppMigrationList<DB>,
    applied: &Applied,
    to: &MigrateTo,
) -> Result<Vec<Step<'a, DB>>, MigrateError> {
    let keep = match to {
        MigrateTo::Zero => None,
        // Nothing is after "the latest": nothing is reverted.
        MigrateTo::Latest => Some(char::MAX.to_string()),
        MigrateTo::Version(v) => {
            let exact: Vec<usize> = (0..list.len())
                .filter(|&i| version_of(&*list[i]) == *v || list[i].name().to_string() == *v)
                .collect();
            let matching = if exact.is_empty() {
                (0..list.len())
                    .filter(|&i| list[i].name().to_string().starts_with(v.as_str()))
                    .collect()
            } else {
                exact
            };
            match matching.as_slice() {
                [i] => Some(version_of(&*list[*i])),
                _ => {
                    return Err(MigrateError::UnknownVersion {
                        app: app.clone(),
                        version: v.clone(),
                        matches: matching.len(),
                    })
                }
            }
        }
    };
    let after = |version: &str| keep.as_deref().is_none_or(|k| version > k);
    let mut steps = Vec::new();
    // Backwards: every applied version after the target, newest first.
    let mut recorded: Vec<&String> = applied
        .iter()
        .filter(|(a, v)| a == app && after(v))
        .map(|(_, v)| v)
        .collect();
    recorded.sort();
    for version in recorded.into_iter().rev() {
        let m = list
            .iter()
            .find(|m| version_of(&***m) == *version)
            .ok_or_else(|| MigrateError::MissingMigration {
                alias: alias.to_owned(),
                app: app.clone(),
                version: version.clone(),
            })?;
        steps.push(Step {
            planned: PlannedMigration {
                alias: alias.to_owned(),
                app: app.clone(),
                version: version.clone(),
                name: m.name().to_string(),
                direction: Direction::Backward,
            },
            migration: &**m,
        });
    }
    // Forwards: every pending version up to the target.
    for m in list {
        let version = version_of(&**m);
        if !after(&version) && !applied.contains(&(app.clone(), version.clone())) {
            steps.push(Step {
                planned: PlannedMigration {
                    alias: alias.to_owned(),
                    app: app.clone(),
                    version,
                    name: m.name().to_string(),
                    direction: Direction::Forward,
                },
                migration: &**m,
            });
        }
    }
    Ok(steps)
}

/// The result of a plan or a run.
pub(super) fn summary<DB>(
    alias: &str,
    apps: Vec<String>,
    steps: Vec<Step<'_, DB>>,
) -> AliasMigrations {
    AliasMigrations {
        alias: alias.to_owned(),
        mirror_of: None,
        apps,
        migrations: steps.into_iter().map(|s| s.planned).collect(),
    }
}
