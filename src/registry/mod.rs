//! The registry half: named pools and aliases built from a configuration (Django's
//! `DATABASES` and `connections`), database routers, typed access per model, the unit of work,
//! migrations per alias and the command line.
//!
//! Modules, each importing only those listed before it:
//!
//! - [`config`]: the configuration as plain `serde` data (imports nothing of the registry);
//! - [`target`]: what an alias URL names (backend, connection string), checked at build;
//! - [`pool`]: pool settings, connection errors, the r2d2 connection manager of an alias,
//!   [`AnyConnection`];
//! - [`alias`]: [`Alias`] and [`PoolError`], shared by both registries;
//! - [`apps`]: [`Model`], [`ModelInfo`], [`models!`](crate::models), [`App`];
//! - [`router`]: [`DatabaseRouter`], [`RouterChain`], [`Hints`] and the built-in routers;
//! - [`catalog`]: what both registries share: aliases, router chain, apps, routing;
//! - [`databases`]: the registry, [`Databases`], and [`PooledConnection`] (r2d2; needs a
//!   sync backend feature: `postgres`, `sqlite` or `mysql`);
//! - `async_databases` (feature `async`): the async registry, [`AsyncDatabases`] (deadpool or
//!   bb8 pools of diesel-async connections), and `async_unit_of_work`;
//! - [`unit_of_work`]: [`UnitOfWork`] across aliases;
//! - [`builder`]: [`Config`] → [`Databases`], where everything is validated;
//! - [`migrate`]: plans, runs, records and shows migrations per alias;
//! - `cli` (feature `cli`): the `diesel-multidb` command line.
//!
//! "The registry" is always the [`Databases`] value.

mod alias;
mod alias_url;
mod apps;
#[cfg(feature = "async")]
mod async_databases;
#[cfg(feature = "async")]
mod async_unit_of_work;
mod builder;
mod catalog;
#[cfg(all(feature = "cli", multidb_sync))]
pub mod cli;
mod config;
#[cfg(multidb_sync)]
mod databases;
mod metrics;
mod migrate;
mod pool;
mod router;
mod unit_of_work;

pub use alias::{Alias, PoolError};
pub use apps::{App, AppMigrationSource, AppMigrations, Model, ModelInfo};
#[cfg(feature = "async")]
pub use async_databases::{AsyncDatabases, AsyncPooledConnection, AsyncRegistryConnection};
#[cfg(feature = "async")]
pub use async_unit_of_work::AsyncUnitOfWork;
pub use builder::{BuildError, DatabasesBuilder};
pub use config::{Config, ConfigError, DatabaseConfig, DATABASE_URL_ENV, DEFAULT_ALIAS};
#[cfg(multidb_sync)]
pub use databases::{Databases, PooledConnection};
pub use migrate::{
    AliasMigrationStatus, AliasMigrations, AppMigrationStatus, Direction, MigrateError,
    MigrateEvent, MigrateTo, PlannedMigration, MIGRATIONS_TABLE,
};
pub use pool::ConnectError;
#[cfg(feature = "postgres")]
pub use pool::PostgresConnection;
#[cfg(multidb_sync)]
pub use pool::{AnyBackend, AnyConnection, ConnectionCustomizer};
pub use router::{
    AppLabelRouter, DatabaseRouter, Hints, InstanceRef, PrimaryReplicaRouter, ReadStrategy, Route,
    RouteReason, RouterChain,
};
#[cfg(multidb_sync)]
pub use unit_of_work::UnitOfWork;
pub use unit_of_work::{CommitFailure, UnitOfWorkError};
