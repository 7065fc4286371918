//! Applied and pending migrations per alias and app.

use std::collections::BTreeSet;

use std::ops::DerefMut;

use super::plan::{self, MigrationBackend};
use super::records::RecordsConnection;
use super::{AliasMigrationStatus, AppMigrationStatus, MigrateError};
use crate::registry::catalog::Catalog;
#[cfg(multidb_sync)]
use crate::registry::databases::Databases;
#[cfg(multidb_sync)]
use crate::registry::pool::AnyBackend;

#[cfg(multidb_sync)]
impl Databases {
    /// Applied and pending migrations of every allowed app on `alias` (reads only; a SQLite
    /// file that does not exist yet is not created).
    ///
    /// # Errors
    ///
    /// As for [`plan`](Self::plan).
    pub fn show_migrations(&self, alias: &str) -> Result<AliasMigrationStatus, MigrateError> {
        status_of::<AnyBackend, _, _>(&self.catalog, alias, || Ok(self.using(alias)?))
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
}

/// Applied and pending migrations of every app allowed on `alias`, the records read through
/// the connection `connect` gives (not called for a mirror alias, an alias without
/// migrations or a SQLite file that does not exist yet). The sync and async registries'
/// `show_migrations`.
pub(crate) fn status_of<DB, G, C>(
    catalog: &Catalog,
    alias: &str,
    connect: impl FnOnce() -> Result<G, MigrateError>,
) -> Result<AliasMigrationStatus, MigrateError>
where
    DB: MigrationBackend,
    G: DerefMut<Target = C>,
    C: RecordsConnection,
{
    let entry = catalog.require(alias)?;
    if let Some(primary) = entry.mirror_of() {
        return Ok(AliasMigrationStatus {
            alias: alias.to_owned(),
            mirror_of: Some(primary.to_owned()),
            apps: Vec::new(),
        });
    }
    let lists = plan::migrations_for::<DB>(catalog, alias)?;
    let applied = if lists.is_empty() {
        Default::default()
    } else {
        plan::read_records(entry, false, connect)?.1
    };
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
