//! A unit of work across several aliases: commit all, or roll back all that can be.

use std::fmt;

#[cfg(multidb_sync)]
use diesel::connection::TransactionManager;
#[cfg(multidb_sync)]
use diesel::Connection;

use crate::registry::alias::PoolError;
#[cfg(multidb_sync)]
use crate::registry::apps::Model;
#[cfg(multidb_sync)]
use crate::registry::databases::{Databases, PooledConnection};
#[cfg(multidb_sync)]
use crate::registry::pool::AnyConnection;
#[cfg(multidb_sync)]
use crate::registry::router::Hints;

#[cfg(multidb_sync)]
type Tm = <AnyConnection as Connection>::TransactionManager;

/// Why a unit of work failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum UnitOfWorkError {
    /// No connection to an alias could be had.
    Connect(PoolError),
    /// The transaction could not be started on an alias.
    Begin {
        /// The alias.
        alias: String,
        /// Diesel's error.
        source: diesel::result::Error,
    },
    /// A COMMIT failed. Aliases committed before it stay committed (this is not two-phase
    /// commit); the ones after it were rolled back. The details are boxed.
    Commit(Box<CommitFailure>),
    /// A ROLLBACK failed on some aliases (the others were rolled back).
    Rollback {
        /// The aliases and errors.
        failed: Vec<(String, diesel::result::Error)>,
    },
}

/// What a failed [`UnitOfWork::commit`] left behind.
#[derive(Debug)]
#[non_exhaustive]
pub struct CommitFailure {
    /// The aliases committed before the failure, in order: their changes are durable.
    pub committed: Vec<String>,
    /// The alias whose COMMIT failed (its transaction is rolled back).
    pub failed: String,
    /// Diesel's error for that COMMIT.
    pub source: diesel::result::Error,
    /// The aliases rolled back after the failure.
    pub rolled_back: Vec<String>,
    /// Aliases whose rollback failed too, with the error.
    pub rollback_failed: Vec<(String, diesel::result::Error)>,
}

impl fmt::Display for UnitOfWorkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |v: &[(String, diesel::result::Error)]| {
            v.iter()
                .map(|(a, _)| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        match self {
            UnitOfWorkError::Connect(e) => write!(f, "unit of work: {e}"),
            UnitOfWorkError::Begin { alias, source } => {
                write!(
                    f,
                    "unit of work: cannot begin a transaction on database `{alias}`: {source}"
                )
            }
            UnitOfWorkError::Commit(c) => {
                let CommitFailure {
                    committed,
                    failed,
                    source,
                    rolled_back,
                    rollback_failed,
                } = &**c;
                write!(
                    f,
                    "unit of work: commit failed on database `{failed}`: {source}; already committed: {}; rolled back: {}",
                    list(committed),
                    list(rolled_back)
                )?;
                if !rollback_failed.is_empty() {
                    write!(f, "; rollback failed: {}", names(rollback_failed))?;
                }
                Ok(())
            }
            UnitOfWorkError::Rollback { failed } => {
                write!(f, "unit of work: rollback failed on {}", names(failed))
            }
        }
    }
}

impl std::error::Error for UnitOfWorkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UnitOfWorkError::Connect(e) => Some(e),
            UnitOfWorkError::Begin { source, .. } => Some(source),
            UnitOfWorkError::Commit(c) => Some(&c.source),
            UnitOfWorkError::Rollback { failed } => failed.first().map(|(_, e)| e as _),
        }
    }
}

impl From<PoolError> for UnitOfWorkError {
    fn from(e: PoolError) -> Self {
        UnitOfWorkError::Connect(e)
    }
}

#[cfg(multidb_sync)]
/// A transaction on each alias it touches, committed together or rolled back together as far
/// as the servers allow.
///
/// The first use of an alias checks a connection out and opens a transaction on it. Then:
///
/// - [`commit`](Self::commit) commits the aliases one after the other, in the order they were
///   first used. If one COMMIT fails, the aliases after it are rolled back, but those before
///   it **stay committed**: this is *not* two-phase commit, and a crash or a failed COMMIT in
///   the middle leaves the aliases disagreeing. The error lists what was committed and what
///   was rolled back. Put the alias most likely to fail at COMMIT (deferred constraints,
///   serialization failures) first.
/// - [`rollback`](Self::rollback), or dropping the unit of work without committing, rolls
///   every alias back.
///
/// Use it where a partial commit can be detected and repaired (or tolerated); a true atomic
/// commit across servers needs PostgreSQL's `PREPARE TRANSACTION` and a transaction manager.
///
/// ```
/// use diesel::prelude::*;
/// use diesel_multidb::{Config, DatabaseConfig};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir();
/// let pid = std::process::id();
/// let databases = Config::new()
///     .database("default", DatabaseConfig::new(format!("sqlite://{}/uow-a-{pid}.sqlite3", dir.display())))
///     .database("other", DatabaseConfig::new(format!("sqlite://{}/uow-b-{pid}.sqlite3", dir.display())))
///     .build()?;
/// databases.in_unit_of_work(|uow| -> Result<(), Box<dyn std::error::Error>> {
///     diesel::sql_query("CREATE TABLE IF NOT EXISTS t (x INTEGER)").execute(uow.using("default")?)?;
///     diesel::sql_query("CREATE TABLE IF NOT EXISTS t (x INTEGER)").execute(uow.using("other")?)?;
///     Ok(())
/// })?;
/// # drop(databases);
/// # std::fs::remove_file(dir.join(format!("uow-a-{pid}.sqlite3")))?;
/// # std::fs::remove_file(dir.join(format!("uow-b-{pid}.sqlite3")))?;
/// # Ok(())
/// # }
/// ```
pub struct UnitOfWork<'a> {
    databases: &'a Databases,
    open: Vec<PooledConnection>,
}

#[cfg(multidb_sync)]
impl fmt::Debug for UnitOfWork<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("aliases", &self.aliases().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(multidb_sync)]
impl<'a> UnitOfWork<'a> {
    pub(crate) fn new(databases: &'a Databases) -> Self {
        UnitOfWork {
            databases,
            open: Vec::new(),
        }
    }

    /// The connection of `alias` inside the unit of work, opening its transaction on first use.
    ///
    /// # Errors
    ///
    /// [`UnitOfWorkError::Connect`] or [`UnitOfWorkError::Begin`].
    pub fn using(&mut self, alias: &str) -> Result<&mut AnyConnection, UnitOfWorkError> {
        let index = match self.open.iter().position(|c| c.alias() == alias) {
            Some(i) => i,
            None => {
                let mut conn = self.databases.using(alias)?;
                Tm::begin_transaction(&mut conn).map_err(|source| UnitOfWorkError::Begin {
                    alias: alias.to_owned(),
                    source,
                })?;
                self.open.push(conn);
                self.open.len() - 1
            }
        };
        Ok(&mut self.open[index])
    }

    /// The connection for writing `M` inside the unit of work.
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using).
    pub fn for_write<M: Model + ?Sized>(&mut self) -> Result<&mut AnyConnection, UnitOfWorkError> {
        self.for_write_hinted::<M>(&Hints::new())
    }

    /// [`for_write`](Self::for_write) with hints.
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using).
    pub fn for_write_hinted<M: Model + ?Sized>(
        &mut self,
        hints: &Hints,
    ) -> Result<&mut AnyConnection, UnitOfWorkError> {
        let alias = self.databases.route_write::<M>(hints).alias;
        self.using(&alias)
    }

    /// The connection for reading `M` inside the unit of work (reads see the unit's own
    /// uncommitted writes only when they are routed to the same alias).
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using).
    pub fn for_read<M: Model + ?Sized>(&mut self) -> Result<&mut AnyConnection, UnitOfWorkError> {
        let alias = self.databases.route_read::<M>(&Hints::new()).alias;
        self.using(&alias)
    }

    /// The aliases touched so far, in the order they will be committed.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.open.iter().map(PooledConnection::alias)
    }

    /// Commits every alias, in first-use order; see the type's docs for what a failure
    /// leaves behind. Returns the committed aliases.
    ///
    /// # Errors
    ///
    /// [`UnitOfWorkError::Commit`] naming the failed alias, those already committed and those
    /// rolled back.
    pub fn commit(mut self) -> Result<Vec<String>, UnitOfWorkError> {
        let mut open = std::mem::take(&mut self.open).into_iter();
        let mut committed = Vec::new();
        for mut conn in open.by_ref() {
            match Tm::commit_transaction(&mut conn) {
                Ok(()) => committed.push(conn.alias().to_owned()),
                Err(source) => {
                    let failed = conn.alias().to_owned();
                    // Diesel rolls back a transaction whose COMMIT failed; make sure.
                    if in_transaction(&mut conn) {
                        let _ = Tm::rollback_transaction(&mut conn);
                    }
                    let (rolled_back, rollback_failed) = roll_back(open.by_ref());
                    tracing::warn!(%failed, ?committed, ?rolled_back, "unit of work: commit failed");
                    return Err(UnitOfWorkError::Commit(Box::new(CommitFailure {
                        committed,
                        failed,
                        source,
                        rolled_back,
                        rollback_failed,
                    })));
                }
            }
        }
        Ok(committed)
    }

    /// Rolls every alias back.
    ///
    /// # Errors
    ///
    /// [`UnitOfWorkError::Rollback`] listing the aliases whose rollback failed.
    pub fn rollback(mut self) -> Result<(), UnitOfWorkError> {
        let (_, failed) = roll_back(std::mem::take(&mut self.open).into_iter());
        if failed.is_empty() {
            Ok(())
        } else {
            Err(UnitOfWorkError::Rollback { failed })
        }
    }
}

#[cfg(multidb_sync)]
impl Databases {
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
}

#[cfg(multidb_sync)]
fn in_transaction(conn: &mut AnyConnection) -> bool {
    use diesel::connection::TransactionManagerStatus;
    match Tm::transaction_manager_status_mut(conn) {
        TransactionManagerStatus::Valid(v) => v.transaction_depth().is_some(),
        TransactionManagerStatus::InError => true,
    }
}

#[cfg(multidb_sync)]
type RollbackOutcome = (Vec<String>, Vec<(String, diesel::result::Error)>);

#[cfg(multidb_sync)]
fn roll_back(conns: impl Iterator<Item = PooledConnection>) -> RollbackOutcome {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for mut conn in conns {
        match Tm::rollback_transaction(&mut conn) {
            Ok(()) => done.push(conn.alias().to_owned()),
            Err(e) => failed.push((conn.alias().to_owned(), e)),
        }
    }
    (done, failed)
}

#[cfg(multidb_sync)]
impl Drop for UnitOfWork<'_> {
    fn drop(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let (_, failed) = roll_back(std::mem::take(&mut self.open).into_iter());
        for (alias, e) in failed {
            tracing::warn!(%alias, error = %e, "unit of work dropped: rollback failed");
        }
    }
}
