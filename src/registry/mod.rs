//! The registry half: named pools and aliases built from a configuration (Django's
//! `DATABASES` and `connections`), database routers, typed access per model, the unit of work,
//! migrations per alias and the command line.
//!
//! Modules, each importing only those listed before it:
//!
//! - [`config`]: the configuration as plain `serde` data (imports nothing of the registry);
//! - [`target`]: what an alias URL names (backend, connection string), checked at build;
//! - [`pool`]: pool settings, the r2d2 connection manager of an alias, [`AnyConnection`];
//! - [`apps`]: [`Model`], [`ModelInfo`], [`models!`](crate::models), [`App`];
//! - [`router`]: [`DatabaseRouter`], [`RouterChain`], [`Hints`] and the built-in routers;
//! - [`databases`]: the registry, [`Databases`], its [`Alias`]es and [`PooledConnection`];
//! - [`unit_of_work`]: [`UnitOfWork`] across aliases;
//! - [`builder`]: [`Config`] → [`Databases`], where everything is validated;
//! - [`migrate`]: plans, runs, records and shows migrations per alias;
//! - `cli` (feature `cli`): the `diesel-multidb` command line.
//!
//! "The registry" is always the [`Databases`] value.

mod alias_url;
mod apps;
mod builder;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
mod databases;
mod metrics;
mod migrate;
mod pool;
mod router;
mod unit_of_work;

pub use apps::{App, AppMigrations, Model, ModelInfo};
pub use builder::{BuildError, DatabasesBuilder};
pub use config::{Config, ConfigError, DatabaseConfig, DATABASE_URL_ENV, DEFAULT_ALIAS};
pub use databases::{Alias, Databases, PoolError, PooledConnection};
pub use migrate::{
    AliasMigrationStatus, AliasMigrations, AppMigrationStatus, Direction, MigrateError,
    MigrateEvent, MigrateTo, PlannedMigration, MIGRATIONS_TABLE,
};
#[cfg(feature = "postgres")]
pub use pool::PostgresConnection;
pub use pool::{AnyBackend, AnyConnection, ConnectError, ConnectionCustomizer};
pub use router::{
    AppLabelRouter, DatabaseRouter, Hints, InstanceRef, PrimaryReplicaRouter, ReadStrategy, Route,
    RouteReason, RouterChain,
};
pub use unit_of_work::{CommitFailure, UnitOfWork, UnitOfWorkError};
