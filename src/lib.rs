//! Multi-host and multi-database support for [Diesel](https://diesel.rs).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod classify;
mod connection_string;

mod app_label_router;
mod model;
mod primary_replica_router;
mod redact;
mod router;

pub use classify::DEFAULT_WRITING_FUNCTIONS;
pub use connection_string::{
    ConnectionString, ConnectionStringError, Host, LoadBalanceHosts, TargetSessionAttrs,
};

pub use app_label_router::AppLabelRouter;
pub use model::{Model, ModelInfo};
pub use primary_replica_router::{PrimaryReplicaRouter, ReadStrategy};
pub use router::{
    DatabaseRouter, Hints, InstanceRef, Route, RouteReason, RouterChain, DEFAULT_ALIAS,
};
