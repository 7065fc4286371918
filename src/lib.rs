//! Multi-host and multi-database support for [Diesel](https://diesel.rs).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod backend_kind;
mod multihost;
mod redact;
mod registry;

pub use multihost::{
    CausalToken, CausalTokenError, ConnectionString, ConnectionStringError, DiscoveryError,
    Exclusion, Host, HostConnection, HostFailure, HostStatus, LoadBalanceHosts,
    MultiHostConnection, ReadYourWrites, ServerRole, SplitBrainPolicy, StatementRoute,
    SyncHostConnection, TargetSessionAttrs, DEFAULT_WRITING_FUNCTIONS, MYSQL_WRITING_FUNCTIONS,
};

pub use backend_kind::BackendKind;
#[cfg(feature = "async")]
pub use multihost::AsyncHostConnection;
pub use registry::*;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
