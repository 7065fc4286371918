//! Multi-host and multi-database support for [Diesel](https://diesel.rs).
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod classify;
mod connection_string;

pub use classify::DEFAULT_WRITING_FUNCTIONS;
pub use connection_string::{
    ConnectionString, ConnectionStringError, Host, LoadBalanceHosts, TargetSessionAttrs,
};
