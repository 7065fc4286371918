//! A unit of work across several aliases of the async registry: commit all, or roll back
//! all that can be.

use std::fmt;

use diesel_async::{AsyncConnection, TransactionManager};

use crate::registry::apps::Model;
use crate::registry::async_databases::{
    AsyncDatabases, AsyncPooledConnection, AsyncRegistryConnection,
};
use crate::registry::router::Hints;
use crate::registry::unit_of_work::{CommitFailure, UnitOfWorkError};

type Tm<C> = <C as AsyncConnection>::TransactionManager;

/// A transaction on each alias it touches, committed together or rolled back together as far
/// as the servers allow: the async form of [`UnitOfWork`](crate::UnitOfWork), with the same
/// caveats (it is *not* two-phase commit: a COMMIT failing in the middle leaves the aliases
/// before it committed, and the error says which).
///
/// Dropping it without [`commit`](Self::commit) or [`rollback`](Self::rollback) cannot roll
/// back (there is no async drop): its connections go back to their pools with their
/// transactions open, and the pools close them, so the servers roll them back.
pub struct AsyncUnitOfWork<'a, C: AsyncRegistryConnection> {
    databases: &'a AsyncDatabases<C>,
    open: Vec<AsyncPooledConnection<C>>,
}

impl<C: AsyncRegistryConnection> fmt::Debug for AsyncUnitOfWork<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncUnitOfWork")
            .field("aliases", &self.aliases().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a, C: AsyncRegistryConnection> AsyncUnitOfWork<'a, C> {
    pub(crate) fn new(databases: &'a AsyncDatabases<C>) -> Self {
        AsyncUnitOfWork {
            databases,
            open: Vec::new(),
        }
    }

    /// The connection of `alias` inside the unit of work, opening its transaction on first
    /// use.
    ///
    /// # Errors
    ///
    /// [`UnitOfWorkError::Connect`] or [`UnitOfWorkError::Begin`].
    pub async fn using(&mut self, alias: &str) -> Result<&mut C, UnitOfWorkError> {
        let index = match self.open.iter().position(|c| c.alias() == alias) {
            Some(i) => i,
            None => {
                let mut conn = self.databases.using(alias).await?;
                Tm::<C>::begin_transaction(&mut *conn)
                    .await
                    .map_err(|source| UnitOfWorkError::Begin {
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
    pub async fn for_write<M: Model + ?Sized>(&mut self) -> Result<&mut C, UnitOfWorkError> {
        let alias = self.databases.route_write::<M>(&Hints::new()).alias;
        self.using(&alias).await
    }

    /// The connection for reading `M` inside the unit of work.
    ///
    /// # Errors
    ///
    /// As for [`using`](Self::using).
    pub async fn for_read<M: Model + ?Sized>(&mut self) -> Result<&mut C, UnitOfWorkError> {
        let alias = self.databases.route_read::<M>(&Hints::new()).alias;
        self.using(&alias).await
    }

    /// The aliases touched so far, in the order they will be committed.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.open.iter().map(AsyncPooledConnection::alias)
    }

    /// Commits every alias, in first-use order; a failed COMMIT rolls back the aliases after
    /// it. Returns the committed aliases.
    ///
    /// # Errors
    ///
    /// [`UnitOfWorkError::Commit`] naming the failed alias, those already committed and those
    /// rolled back.
    pub async fn commit(mut self) -> Result<Vec<String>, UnitOfWorkError> {
        let mut open = std::mem::take(&mut self.open).into_iter();
        let mut committed = Vec::new();
        while let Some(mut conn) = open.next() {
            if let Err(source) = Tm::<C>::commit_transaction(&mut *conn).await {
                let failed = conn.alias().to_owned();
                // Diesel rolls back a transaction whose COMMIT failed; the pool closes a
                // connection still in one.
                drop(conn);
                let (rolled_back, rollback_failed) = roll_back(open.by_ref()).await;
                tracing::warn!(%failed, ?committed, ?rolled_back, "unit of work: commit failed");
                return Err(UnitOfWorkError::Commit(Box::new(CommitFailure {
                    committed,
                    failed,
                    source,
                    rolled_back,
                    rollback_failed,
                })));
            }
            committed.push(conn.alias().to_owned());
        }
        Ok(committed)
    }

    /// Rolls every alias back.
    ///
    /// # Errors
    ///
    /// [`UnitOfWorkError::Rollback`] listing the aliases whose rollback failed.
    pub async fn rollback(mut self) -> Result<(), UnitOfWorkError> {
        let (_, failed) = roll_back(std::mem::take(&mut self.open).into_iter()).await;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(UnitOfWorkError::Rollback { failed })
        }
    }
}

type RollbackOutcome = (Vec<String>, Vec<(String, diesel::result::Error)>);

async fn roll_back<C: AsyncRegistryConnection>(
    conns: impl Iterator<Item = AsyncPooledConnection<C>>,
) -> RollbackOutcome {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for mut conn in conns {
        match Tm::<C>::rollback_transaction(&mut *conn).await {
            Ok(()) => done.push(conn.alias().to_owned()),
            Err(e) => failed.push((conn.alias().to_owned(), e)),
        }
    }
    (done, failed)
}
