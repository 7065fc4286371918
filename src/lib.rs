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

pub use classify::DEFAULT_WRITING_FUNCTIONS;
pub use connection::{MultiHostConnection, Route};
pub use connection_string::{
    ConnectionString, ConnectionStringError, Host, LoadBalanceHosts, TargetSessionAttrs,
};
pub use discovery::{DiscoveryError, HostFailure, HostStatus};
pub use host_connection::{HostConnection, ServerRole};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
