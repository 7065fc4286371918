//! One alias of the registry ([`Alias`]) and why a connection to one could not be had
//! ([`PoolError`]): shared by the sync and the async registry.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::registry::alias_url::Target;
use crate::registry::apps::ModelInfo;
use crate::registry::pool::{AttemptLog, ConnectError, PoolSettings};
use crate::registry::router::RouteReason;
use crate::BackendKind;

/// One alias of the registry: its name, backend, URL (shown redacted) and pool settings.
pub struct Alias {
    pub(crate) name: String,
    pub(crate) target: Target,
    pub(crate) mirror_of: Option<String>,
    pub(crate) settings: PoolSettings,
    /// The r2d2 pool (sync registry; the async registry keeps its pools itself).
    #[cfg(multidb_sync)]
    pub(crate) pool: Option<r2d2::Pool<crate::registry::pool::AliasManager>>,
    /// The connection attempts of the pool that serves this alias.
    pub(crate) attempts: Arc<AttemptLog>,
    /// The alias whose pool serves this one (itself, or its primary under `test_mirrors`).
    pub(crate) served_by: String,
}

impl Alias {
    pub(crate) fn new(
        name: String,
        target: Target,
        mirror_of: Option<String>,
        settings: PoolSettings,
    ) -> Self {
        Alias {
            served_by: name.clone(),
            name,
            target,
            mirror_of,
            settings,
            #[cfg(multidb_sync)]
            pool: None,
            attempts: Arc::default(),
        }
    }

    /// The alias name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend its URL names.
    pub fn backend(&self) -> BackendKind {
        self.target.kind
    }

    /// The alias this one mirrors (is a replica of), if any. Mirrors are never migrated.
    pub fn mirror_of(&self) -> Option<&str> {
        self.mirror_of.as_deref()
    }

    /// The URL as it may be shown: a PostgreSQL URL in its canonical form (key/value strings
    /// too) with the password and `sslpassword` replaced by `********`, a SQLite URL as
    /// written.
    pub fn display_url(&self) -> String {
        self.target.url.shown().to_owned()
    }

    /// The alias whose pool serves this one: itself, or its primary when
    /// [`test_mirrors`](crate::DatabasesBuilder::test_mirrors) is on.
    pub fn served_by(&self) -> &str {
        &self.served_by
    }

    /// The maximum number of pooled connections.
    pub fn max_size(&self) -> u32 {
        self.settings.max_size
    }

    /// How long a checkout waits at most: the pool's `connection_timeout`, or for a
    /// PostgreSQL alias the URL's `failover_timeout` when that is longer (see
    /// `Databases::using`).
    pub fn checkout_timeout(&self) -> Duration {
        self.settings
            .connection_timeout
            .max(self.target.failover_timeout().unwrap_or(Duration::ZERO))
    }
}

impl fmt::Debug for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alias")
            .field("name", &self.name)
            .field("backend", &self.target.kind)
            .field("url", &self.target.url)
            .field("mirror_of", &self.mirror_of)
            .field("served_by", &self.served_by)
            .field("max_size", &self.settings.max_size)
            .finish()
    }
}

/// Why a connection could not be had.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// No alias of that name is declared.
    UnknownAlias {
        /// The alias asked for.
        alias: String,
    },
    /// A router (or the chain's fallback) routed a model to an alias that is not declared
    /// (only possible for a model not declared in an [`App`](crate::App), or through hints).
    RoutedToUnknownAlias {
        /// The alias.
        alias: String,
        /// The model.
        model: ModelInfo,
        /// `"read"` or `"write"`.
        action: &'static str,
        /// The router (or fallback) that chose the alias.
        decided_by: RouteReason,
    },
    /// No connection came: the last connection attempt failed for good (authentication
    /// failed, a failing per-connection setup), or none came within the alias's
    /// [`checkout_timeout`](Alias::checkout_timeout) (the server is down or refuses, or every
    /// connection is in use).
    Checkout {
        /// The alias.
        alias: String,
        /// How long the checkout waited.
        waited: Duration,
        /// The last connection attempt's error, if one failed (`None`: every connection is
        /// in use, or attempts are still under way).
        source: Option<ConnectError>,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::UnknownAlias { alias } => write!(f, "no database `{alias}` is declared"),
            PoolError::RoutedToUnknownAlias {
                alias,
                model,
                action,
                decided_by,
            } => write!(
                f,
                "{decided_by} routed the {action} of model {model} to database `{alias}`, which is not declared"
            ),
            PoolError::Checkout {
                alias,
                waited,
                source,
            } => {
                write!(f, "cannot get a connection to database `{alias}`")?;
                if !source.as_ref().is_some_and(ConnectError::is_permanent) {
                    write!(f, " within {:.1}s", waited.as_secs_f64())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Checkout {
                source: Some(source),
                ..
            } => Some(source),
            _ => None,
        }
    }
}
