//! What would run where: the pending migrations of every allowed app (forwards), or what
//! takes one app to a version (backwards, then forwards).

use diesel::migration::Migration;

use super::records::{self, Applied};
use super::{AliasMigrations, Direction, MigrateError, MigrateTo, PlannedMigration};
use crate::registry::apps::App;
use crate::registry::databases::{Databases, PooledConnection};
use crate::registry::pool::AnyBackend;
use crate::registry::router::Hints;

/// An app's migrations, sorted by version.
pub(super) type AppMigrationList = (String, Vec<Box<dyn Migration<AnyBackend>>>);

/// One step of a plan: the planned migration and, when it has files, the migration.
pub(super) struct Step<'a> {
    pub(super) planned: PlannedMigration,
    pub(super) migration: &'a dyn Migration<AnyBackend>,
}

/// A plan for one alias, with the connection it read the records through (none when the
/// alias is a SQLite file that does not exist yet: it has no records, and planning must not
/// create it).
pub(super) struct AliasPlan {
    pub(super) conn: Option<PooledConnection>,
    pub(super) applied: Applied,
}

fn version_of(m: &dyn Migration<AnyBackend>) -> String {
    m.name().version().to_string()
}

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

    /// The migrations of `app`, sorted by version.
    pub(super) fn app_migrations(&self, app: &App) -> Result<AppMigrationList, MigrateError> {
        let mut list = match app.source() {
            Some(source) => source.migrations().map_err(|source| MigrateError::Source {
                app: app.label.clone(),
                source,
            })?,
            None => Vec::new(),
        };
        list.sort_by_key(|m| version_of(&**m));
        Ok((app.label.clone(), list))
    }

    /// The migrations of every app allowed on `alias` that has migrations.
    pub(super) fn migrations_for(
        &self,
        alias: &str,
    ) -> Result<Vec<AppMigrationList>, MigrateError> {
        self.apps_allowed_on(alias)
            .into_iter()
            .filter(|a| a.source().is_some())
            .map(|a| self.app_migrations(a))
            .collect()
    }

    /// Reads the records of `alias`. Without `apply`, a SQLite file that does not exist is
    /// not created: it has no records.
    pub(super) fn read_records(&self, alias: &str, apply: bool) -> Result<AliasPlan, MigrateError> {
        let entry = self.require(alias)?;
        if !apply && entry.target.is_missing_sqlite_file() {
            return Ok(AliasPlan {
                conn: None,
                applied: Applied::new(),
            });
        }
        let mut conn = self.using(alias)?;
        let applied = records::applied(&mut conn, alias)?;
        Ok(AliasPlan {
            conn: Some(conn),
            applied,
        })
    }
}

/// The pending migrations of `lists`, app by app, each in version order.
pub(super) fn forward<'a>(
    alias: &str,
    lists: &'a [AppMigrationList],
    applied: &Applied,
) -> Vec<Step<'a>> {
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
pub(super) fn to_version<'a>(
    alias: &str,
    (app, list): &'a AppMigrationList,
    applied: &Applied,
    to: &MigrateTo,
) -> Result<Vec<Step<'a>>, MigrateError> {
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
pub(super) fn summary(alias: &str, apps: Vec<String>, steps: Vec<Step<'_>>) -> AliasMigrations {
    AliasMigrations {
        alias: alias.to_owned(),
        mirror_of: None,
        apps,
        migrations: steps.into_iter().map(|s| s.planned).collect(),
    }
}
