//! Running a plan: each migration (or its revert) with its record, in one transaction unless
//! the migration opts out.

use std::time::Instant;

use std::ops::DerefMut;

use diesel::migration::Migration;

use super::plan::{self, MigrationBackend, Step};
use super::records::{self, RecordsConnection};
use super::{
    AliasMigrations, BoxError, Direction, MigrateError, MigrateEvent, MigrateTo, PlannedMigration,
};
use crate::registry::catalog::Catalog;
#[cfg(multidb_sync)]
use crate::registry::databases::Databases;
use crate::registry::metrics;
#[cfg(multidb_sync)]
use crate::registry::pool::AnyBackend;

/// What to run on an alias.
pub(crate) enum Goal<'a> {
    /// Every pending migration of every allowed app.
    Latest,
    /// One app to a version.
    App(&'a str, &'a MigrateTo),
}

#[cfg(multidb_sync)]
impl Databases {
    /// What [`migrate`](Self::migrate) would run on `alias` (a dry run: nothing is written, and
    /// a SQLite file that does not exist yet is not created).
    ///
    /// # Errors
    ///
    /// [`MigrateError`] when the alias is unknown or unreachable, or the records or the
    /// migrations cannot be read.
    pub fn plan(&self, alias: &str) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, &Goal::Latest, false, &mut |_| {})
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
        self.run(alias, &Goal::Latest, true, &mut |_| {})
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
        self.run(alias, &Goal::Latest, true, progress)
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
        names
            .iter()
            .map(|a| self.run(a, &Goal::Latest, true, progress))
            .collect()
    }

    /// What [`migrate_app_to`](Self::migrate_app_to) would run (a dry run, as
    /// [`plan`](Self::plan)): the reverted migrations first, newest first, with
    /// [`Direction::Backward`], then the applied ones.
    ///
    /// # Errors
    ///
    /// As for [`migrate_app_to`](Self::migrate_app_to).
    pub fn plan_app_to(
        &self,
        alias: &str,
        app: &str,
        to: &MigrateTo,
    ) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, &Goal::App(app, to), false, &mut |_| {})
    }

    /// Takes the migrations of `app` on `alias` to `to` (Django's `migrate app 0003` /
    /// `migrate app zero`): every applied migration after it is reverted (`down.sql`), newest
    /// first, and its record removed; every pending one up to it is applied. Each in one
    /// transaction with its record, unless the migration opts out. A mirror alias is skipped.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("doc-revert-{}", std::process::id()));
    /// # let m = dir.join("migrations/blog/2024-01-01-000000_posts");
    /// # std::fs::create_dir_all(&m)?;
    /// # std::fs::write(m.join("up.sql"), "CREATE TABLE posts (id INTEGER)")?;
    /// # std::fs::write(m.join("down.sql"), "DROP TABLE posts")?;
    /// use diesel_multidb::{Config, DatabaseConfig, MigrateTo};
    ///
    /// let url = format!("sqlite://{}", dir.join("app.sqlite3").display());
    /// let mut config = Config::new().database("default", DatabaseConfig::new(url));
    /// config.migrations_dir = Some(dir.join("migrations"));
    /// let databases = config.build()?;
    /// databases.migrate("default")?;
    /// let undone = databases.migrate_app_to("default", "blog", &MigrateTo::Zero)?;
    /// assert_eq!(undone.migrations[0].name, "2024-01-01-000000_posts");
    /// # drop(databases);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`MigrateError::UnknownApp`], [`MigrateError::AppNotMigratedHere`],
    /// [`MigrateError::UnknownVersion`], [`MigrateError::MissingMigration`] (a record to
    /// revert without its migration), [`MigrateError::Failed`] (those before it stay done),
    /// or the errors of [`plan`](Self::plan).
    pub fn migrate_app_to(
        &self,
        alias: &str,
        app: &str,
        to: &MigrateTo,
    ) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, &Goal::App(app, to), true, &mut |_| {})
    }

    /// [`migrate_app_to`](Self::migrate_app_to), reporting progress to `progress`.
    ///
    /// # Errors
    ///
    /// As for [`migrate_app_to`](Self::migrate_app_to).
    pub fn migrate_app_to_with(
        &self,
        alias: &str,
        app: &str,
        to: &MigrateTo,
        progress: &mut dyn FnMut(MigrateEvent<'_>),
    ) -> Result<AliasMigrations, MigrateError> {
        self.run(alias, &Goal::App(app, to), true, progress)
    }

    fn run(
        &self,
        alias: &str,
        goal: &Goal<'_>,
        apply: bool,
        progress: &mut dyn FnMut(MigrateEvent<'_>),
    ) -> Result<AliasMigrations, MigrateError> {
        run_alias::<AnyBackend, _, _>(&self.catalog, alias, goal, apply, progress, || {
            Ok(self.using(alias)?)
        })
    }
}

/// Plans (and with `apply`, runs) `goal` on `alias`, on the connection `connect` gives (asked
/// for only when an app migrates there; not at all for a SQLite file a plan would create).
pub(crate) fn run_alias<DB, G, C>(
    catalog: &Catalog,
    alias: &str,
    goal: &Goal<'_>,
    apply: bool,
    progress: &mut dyn FnMut(MigrateEvent<'_>),
    connect: impl FnOnce() -> Result<G, MigrateError>,
) -> Result<AliasMigrations, MigrateError>
where
    DB: MigrationBackend,
    G: DerefMut<Target = C>,
    C: RecordsConnection<Backend = DB>,
{
    let entry = catalog.require(alias)?;
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
    let lists = match goal {
        Goal::Latest => plan::migrations_for::<DB>(catalog, alias)?,
        Goal::App(label, _) => {
            let app = catalog
                .apps
                .iter()
                .find(|a| a.label == *label)
                .ok_or_else(|| MigrateError::UnknownApp {
                    app: (*label).to_owned(),
                })?;
            if !catalog
                .apps_allowed_on(alias)
                .iter()
                .any(|a| a.label == *label)
            {
                return Err(MigrateError::AppNotMigratedHere {
                    alias: alias.to_owned(),
                    app: (*label).to_owned(),
                });
            }
            vec![plan::app_migrations::<DB>(app)?]
        }
    };
    let apps: Vec<String> = lists.iter().map(|(a, _)| a.clone()).collect();
    if lists.is_empty() {
        // No app migrates here: not even the records table is created.
        progress(MigrateEvent::Start { alias, pending: 0 });
        return Ok(plan::summary::<DB>(alias, apps, Vec::new()));
    }
    let (conn, applied) = plan::read_records(entry, apply, connect)?;
    let steps = match goal {
        Goal::Latest => plan::forward(alias, &lists, &applied),
        Goal::App(_, to) => plan::to_version(alias, &lists[0], &applied, to)?,
    };
    if apply {
        progress(MigrateEvent::Start {
            alias,
            pending: steps.len(),
        });
        if let Some(mut conn) = conn {
            if steps
                .iter()
                .any(|s| s.planned.direction == Direction::Forward)
            {
                records::create(&mut *conn, alias)?;
            }
            for step in &steps {
                run_step(&mut *conn, step, progress)?;
            }
        }
    }
    Ok(plan::summary(alias, apps, steps))
}

fn run_step<C: RecordsConnection>(
    conn: &mut C,
    step: &Step<'_, C::Backend>,
    progress: &mut dyn FnMut(MigrateEvent<'_>),
) -> Result<(), MigrateError> {
    let planned = &step.planned;
    let span = tracing::info_span!(
        "migration",
        alias = %planned.alias,
        app = %planned.app,
        migration = %planned.name,
        direction = %planned.direction,
    );
    let _entered = span.enter();
    progress(match planned.direction {
        Direction::Forward => MigrateEvent::Applying(planned),
        Direction::Backward => MigrateEvent::Reverting(planned),
    });
    let started = Instant::now();
    run_one(conn, planned, step.migration).map_err(|source| MigrateError::Failed {
        alias: planned.alias.clone(),
        app: planned.app.clone(),
        migration: planned.name.clone(),
        direction: planned.direction,
        source,
    })?;
    let took = started.elapsed();
    metrics::migration(
        &planned.alias,
        &planned.app,
        direction_label(planned.direction),
    );
    match planned.direction {
        Direction::Forward => {
            tracing::info!(elapsed_ms = took.as_millis() as u64, "migration applied");
            progress(MigrateEvent::Applied(planned, took));
        }
        Direction::Backward => {
            tracing::info!(elapsed_ms = took.as_millis() as u64, "migration reverted");
            progress(MigrateEvent::Reverted(planned, took));
        }
    }
    Ok(())
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::Forward => "forward",
        Direction::Backward => "backward",
    }
}

/// Runs (or reverts) one migration and writes (or removes) its record, in one transaction
/// unless the migration opts out.
fn run_one<C: RecordsConnection>(
    conn: &mut C,
    planned: &PlannedMigration,
    migration: &dyn Migration<C::Backend>,
) -> Result<(), BoxError> {
    let once = |c: &mut C| -> Result<(), BoxError> {
        match planned.direction {
            Direction::Forward => {
                migration.run(c)?;
                c.insert(planned)?;
            }
            Direction::Backward => {
                migration.revert(c)?;
                c.delete(planned)?;
            }
        }
        Ok(())
    };
    if migration.metadata().run_in_transaction() {
        conn.transaction::<_, BoxError, _>(once)
    } else {
        once(conn)
    }
}
