//! The multi-host half: one Diesel connection over a primary and its standbys.
//!
//! - [`url`]: the connection-string grammar ([`ConnectionString`]).
//! - [`classify`]: may this SQL run on a standby?
//! - [`topology`]: what the process knows of each host (no I/O), and its sync shell
//!   (discovery, the monitor's host workers).
//! - [`core`]: the routing core of one connection (no I/O): where a statement goes, what
//!   an outcome means, read-your-writes floors.
//! - [`position`]: WAL positions and causal tokens.
//! - [`backend`]: what a wrapped connection type must offer, one file per backend.
//! - [`connection`]: [`MultiHostConnection`], the sync shell.

pub(crate) mod backend;
pub(crate) mod classify;
pub(crate) mod connection;
pub(crate) mod core;
pub(crate) mod metrics;
pub(crate) mod position;
pub(crate) mod topology;
pub(crate) mod url;

#[cfg(feature = "async")]
pub use backend::AsyncHostConnection;
pub use backend::{HostConnection, SyncHostConnection};
pub use classify::mysql::MYSQL_WRITING_FUNCTIONS;
pub use classify::DEFAULT_WRITING_FUNCTIONS;
pub use connection::{MultiHostConnection, StatementRoute};
pub use position::{CausalToken, CausalTokenError};
pub use topology::{DiscoveryError, Exclusion, HostFailure, HostStatus, ServerRole};
pub use url::{
    ConnectionString, ConnectionStringError, Host, LoadBalanceHosts, ReadYourWrites,
    SplitBrainPolicy, TargetSessionAttrs,
};
