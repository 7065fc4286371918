//! Multi-host and multi-database support for [Diesel](https://diesel.rs).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod classify;
mod connection;
mod connection_string;
mod discovery;
mod host_connection;
#[cfg(feature = "postgres")]
mod pg;

mod any_connection;
mod app;
mod app_label_router;
mod backend_url;
mod builder;
mod config;
mod connection_manager;
mod migrate;
mod model;
mod primary_replica_router;
mod redact;
mod registry;
mod router;
#[cfg(feature = "cli")]
mod topology_report;
mod unit_of_work;

#[cfg(feature = "cli")]
pub mod cli;

pub use classify::DEFAULT_WRITING_FUNCTIONS;
pub use connection::{MultiHostConnection, StatementRoute};
pub use connection_string::{
    ConnectionString, ConnectionStringError, Host, LoadBalanceHosts, TargetSessionAttrs,
};
pub use discovery::{DiscoveryError, HostFailure, HostStatus};
pub use host_connection::{HostConnection, ServerRole};

#[cfg(feature = "postgres")]
pub use any_connection::PostgresConnection;
pub use any_connection::{AnyBackend, AnyConnection};
pub use app::{App, AppMigrations};
pub use app_label_router::AppLabelRouter;
pub use backend_url::BackendKind;
pub use builder::{BuildError, DatabasesBuilder};
pub use config::{Config, ConfigError, DatabaseConfig, DATABASE_URL_ENV};
pub use migrate::{
    AliasMigrationStatus, AliasMigrations, AppMigrationStatus, MigrateError, MigrateEvent,
    PlannedMigration, MIGRATIONS_TABLE,
};
pub use model::{Model, ModelInfo};
pub use primary_replica_router::{PrimaryReplicaRouter, ReadStrategy};
pub use registry::{Alias, Databases, PoolError, PooledConnection};
pub use router::{
    DatabaseRouter, Hints, InstanceRef, Route, RouteReason, RouterChain, DEFAULT_ALIAS,
};
pub use unit_of_work::{CommitFailure, UnitOfWork, UnitOfWorkError};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
